//! Where one hop of a request goes: a parsed absolute `http`/`https` URL.

use std::fmt;
use std::net::IpAddr;

use url::{Host, Position, Url};

/// The two schemes outbound requests may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scheme {
    /// Plain HTTP.
    Http,
    /// HTTP over TLS.
    Https,
}

impl Scheme {
    /// The port a URL of this scheme uses when it names none.
    pub(crate) fn default_port(self) -> u16 {
        match self {
            Scheme::Http => 80,
            Scheme::Https => 443,
        }
    }
}

/// The host of a URL: a (lowercase, ASCII) DNS name or an IP literal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum TargetHost {
    /// A DNS name, as the URL spelled it after normalisation.
    Name(String),
    /// An IP literal.
    Ip(IpAddr),
}

/// A checked absolute URL and the parts the policy looks at.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    /// The URL's scheme.
    pub(crate) scheme: Scheme,
    /// The URL's host.
    pub(crate) host: TargetHost,
    /// The effective port (the scheme's default when the URL names none).
    pub(crate) port: u16,
    /// The whole URL.
    pub(crate) url: Url,
}

/// Why a URL cannot be a target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum TargetError {
    /// Not a URL at all.
    Malformed(String),
    /// A URL whose scheme is not `http` or `https`.
    Scheme(String),
    /// A URL with a user name or password.
    Userinfo,
    /// A URL without a host.
    NoHost,
}

impl fmt::Display for TargetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TargetError::Malformed(why) => write!(f, "not an absolute URL ({why})"),
            TargetError::Scheme(scheme) => {
                write!(f, "the scheme `{scheme}` is not `http` or `https`")
            }
            TargetError::Userinfo => f.write_str("a user name or password in the URL"),
            TargetError::NoHost => f.write_str("no host in the URL"),
        }
    }
}

impl Target {
    /// Parses an absolute URL text.
    pub(crate) fn parse(text: &str) -> Result<Self, TargetError> {
        let url = Url::parse(text).map_err(|err| TargetError::Malformed(err.to_string()))?;
        Self::from_url(url)
    }

    /// Checks a parsed URL (a first request or a redirect's `Location`).
    pub(crate) fn from_url(mut url: Url) -> Result<Self, TargetError> {
        let scheme = match url.scheme() {
            "http" => Scheme::Http,
            "https" => Scheme::Https,
            other => return Err(TargetError::Scheme(other.to_owned())),
        };
        if !url.username().is_empty() || url.password().is_some() {
            return Err(TargetError::Userinfo);
        }
        let host = match url.host() {
            Some(Host::Domain(name)) => TargetHost::Name(name.to_owned()),
            Some(Host::Ipv4(ip)) => TargetHost::Ip(IpAddr::V4(ip)),
            Some(Host::Ipv6(ip)) => TargetHost::Ip(IpAddr::V6(ip)),
            None => return Err(TargetError::NoHost),
        };
        let port = url.port().unwrap_or(scheme.default_port());
        url.set_fragment(None);
        Ok(Self {
            scheme,
            host,
            port,
            url,
        })
    }

    /// The host as a URL writes it (`example.com`, `127.0.0.1`, `[::1]`).
    pub(crate) fn host_text(&self) -> &str {
        self.url.host_str().unwrap_or_default()
    }

    /// The `Host` header: the host, and the port when it is not the
    /// scheme's default.
    pub(crate) fn host_header(&self) -> String {
        match self.url.port() {
            Some(port) => format!("{}:{port}", self.host_text()),
            None => self.host_text().to_owned(),
        }
    }

    /// The request target of an HTTP/1.1 request line: path and query.
    pub(crate) fn path_and_query(&self) -> &str {
        &self.url[Position::BeforePath..Position::AfterQuery]
    }

    /// True when both targets share scheme, host and port.
    pub(crate) fn same_origin(&self, other: &Target) -> bool {
        self.scheme == other.scheme && self.host == other.host && self.port == other.port
    }
}

impl fmt::Display for Target {
    /// The scheme, host and port, as `https://example.com:443`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = match self.scheme {
            Scheme::Http => "http",
            Scheme::Https => "https",
        };
        write!(f, "{scheme}://{}:{}", self.host_text(), self.port)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_of_a_url() {
        let target = Target::parse("HTTPS://Example.COM:8443/a/b?c=d#frag").expect("valid");
        assert_eq!(target.scheme, Scheme::Https);
        assert_eq!(target.host, TargetHost::Name("example.com".into()));
        assert_eq!(target.port, 8443);
        assert_eq!(target.host_header(), "example.com:8443");
        assert_eq!(target.path_and_query(), "/a/b?c=d");
        assert_eq!(target.to_string(), "https://example.com:8443");

        let target = Target::parse("http://[::1]").expect("valid");
        assert_eq!(target.host, TargetHost::Ip("::1".parse().expect("ip")));
        assert_eq!(target.port, 80);
        assert_eq!(target.host_header(), "[::1]");
        assert_eq!(target.path_and_query(), "/");

        let target = Target::parse("http://0x7f.1:80/").expect("valid");
        assert_eq!(
            target.host,
            TargetHost::Ip("127.0.0.1".parse().expect("ip"))
        );
    }

    #[test]
    fn refused_urls() {
        assert!(matches!(
            Target::parse("ftp://example.com/"),
            Err(TargetError::Scheme(_))
        ));
        assert!(matches!(
            Target::parse("/relative"),
            Err(TargetError::Malformed(_))
        ));
        assert!(matches!(
            Target::parse("http://"),
            Err(TargetError::Malformed(_))
        ));
        assert_eq!(
            Target::parse("http://user:pw@example.com/").err(),
            Some(TargetError::Userinfo)
        );
        assert_eq!(
            Target::parse("http://user@example.com/").err(),
            Some(TargetError::Userinfo)
        );
    }
}
