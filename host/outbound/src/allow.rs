//! The owner's allow-list: which hosts and ports outbound requests may reach.
//!
//! Parsed from the `--allow-http` text, a comma-separated list of entries:
//! an exact DNS name (`api.example.com`), `*.` and a domain of two or more
//! labels for any of its subdomains (`*.example.org`, which does not match
//! `example.org` itself), or an IP literal (`127.0.0.1`, `[::1]`), each with
//! an optional `:port`. An entry without a port allows port 80 for `http`
//! and 443 for `https`, nothing else.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::guard::address_refusal;
use crate::target::{Target, TargetHost};

/// What to do about a refused `--allow-http` text, the same for the server
/// refusing a publish and for the command line refusing it before the upload.
pub const ALLOW_LIST_HINT: &str =
    "list hosts as `api.example.com,*.example.org:443` (a port is optional)";

/// The longest DNS name, in bytes (without a trailing dot).
const MAX_NAME_LEN: usize = 253;
/// The longest DNS label, in bytes.
const MAX_LABEL_LEN: usize = 63;

/// The hosts and ports a database's procedures may send requests to.
///
/// `Display` gives the canonical text back (entries lowercased, trailing
/// dots dropped, duplicates removed), which parses to the same list; serde
/// stores that text. The empty text is [`AllowList::none`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct AllowList {
    entries: Vec<HostPattern>,
}

/// An entry of an [`AllowList`] that names an address the address guard
/// refuses whatever the list says (see [`AllowList::guarded_entries`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuardedEntry {
    /// The entry, in its canonical text (`127.0.0.1:8080`, `localhost`).
    pub entry: String,
    /// Why the guard refuses the address, in its own words ([`address_refusal`]),
    /// such as `loopback` or `cloud metadata`.
    pub reason: &'static str,
}

/// One entry of an [`AllowList`].
#[derive(Debug, Clone, PartialEq, Eq)]
struct HostPattern {
    host: HostMatch,
    port: Option<u16>,
}

/// What an entry's host part matches.
#[derive(Debug, Clone, PartialEq, Eq)]
enum HostMatch {
    /// Exactly this (lowercase) DNS name.
    Name(String),
    /// Any name ending in `.` and this (lowercase) suffix.
    Subdomains(String),
    /// Exactly this IP literal.
    Ip(IpAddr),
}

/// Why an allow-list entry was refused. Every case names the entry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AllowListError {
    /// An empty entry (two commas in a row, or a trailing comma).
    #[error("HTTP allow-list entry {position} is empty (a stray comma?)")]
    Empty {
        /// The entry's position, counting from 1.
        position: usize,
    },
    /// The entry is a URL with a scheme.
    #[error("HTTP allow-list entry `{entry}`: give a host, not a URL (drop the `scheme://`)")]
    Scheme {
        /// The entry as given.
        entry: String,
    },
    /// The entry has a path, query or fragment.
    #[error("HTTP allow-list entry `{entry}`: give a host and an optional port, without a path")]
    Path {
        /// The entry as given.
        entry: String,
    },
    /// The entry is not ASCII.
    #[error(
        "HTTP allow-list entry `{entry}`: only ASCII host names are supported; write the `xn--` form"
    )]
    NonAscii {
        /// The entry as given.
        entry: String,
    },
    /// The entry is `*` alone, which would allow every host.
    #[error("HTTP allow-list entry `{entry}`: `*` alone would allow every host; name the hosts")]
    WildcardAlone {
        /// The entry as given.
        entry: String,
    },
    /// A wildcard over a single label (`*.com`), which allows too much.
    #[error(
        "HTTP allow-list entry `{entry}`: `*.` must be followed by a domain of two or more labels, such as `*.example.org`"
    )]
    WildcardTooBroad {
        /// The entry as given.
        entry: String,
    },
    /// A `*` anywhere but as the whole first label.
    #[error(
        "HTTP allow-list entry `{entry}`: `*` may only stand as the whole first label, as in `*.example.org`"
    )]
    WildcardPlacement {
        /// The entry as given.
        entry: String,
    },
    /// The port is not a number from 1 to 65535.
    #[error("HTTP allow-list entry `{entry}`: the port must be a number from 1 to 65535")]
    BadPort {
        /// The entry as given.
        entry: String,
    },
    /// The host is not a valid DNS name or IP literal.
    #[error("HTTP allow-list entry `{entry}`: not a valid host ({reason})")]
    BadHost {
        /// The entry as given.
        entry: String,
        /// What is wrong with it.
        reason: &'static str,
    },
}

impl AllowList {
    /// The list that allows nothing: every request is `denied`.
    pub fn none() -> Self {
        Self::default()
    }

    /// Parses the `--allow-http` text. The empty (or all-blank) text is
    /// [`AllowList::none`]; otherwise every comma-separated entry must be
    /// valid.
    pub fn parse(text: &str) -> Result<Self, AllowListError> {
        if text.trim().is_empty() {
            return Ok(Self::none());
        }
        let mut entries: Vec<HostPattern> = Vec::new();
        for (index, raw) in text.split(',').enumerate() {
            let pattern = parse_entry(raw.trim(), index + 1)?;
            if !entries.contains(&pattern) {
                entries.push(pattern);
            }
        }
        Ok(Self { entries })
    }

    /// True when the list allows nothing.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The entries the address guard refuses to connect to whatever the
    /// list says: IP literals [`address_refusal`] refuses, and the name
    /// `localhost`, which resolves to loopback. Requests to them are denied
    /// unless the server's [`PrivateOverride`](crate::PrivateOverride)
    /// names the exact address and port. Names that merely resolve to such
    /// an address are refused too, but only resolution tells.
    pub fn guarded_entries(&self) -> Vec<GuardedEntry> {
        self.entries
            .iter()
            .filter_map(|pattern| {
                let reason = match &pattern.host {
                    HostMatch::Ip(ip) => address_refusal(*ip),
                    HostMatch::Name(name) if name == "localhost" => {
                        address_refusal(IpAddr::V4(Ipv4Addr::LOCALHOST))
                    }
                    HostMatch::Name(_) | HostMatch::Subdomains(_) => None,
                }?;
                Some(GuardedEntry {
                    entry: pattern.to_string(),
                    reason,
                })
            })
            .collect()
    }

    /// True when some entry allows the target's host and effective port.
    pub(crate) fn permits(&self, target: &Target) -> bool {
        self.entries.iter().any(|entry| entry.permits(target))
    }
}

impl HostPattern {
    fn permits(&self, target: &Target) -> bool {
        let port_ok = match self.port {
            Some(port) => port == target.port,
            None => target.port == target.scheme.default_port(),
        };
        port_ok
            && match (&self.host, &target.host) {
                (HostMatch::Name(name), TargetHost::Name(host)) => name == bare_name(host),
                (HostMatch::Subdomains(suffix), TargetHost::Name(host)) => bare_name(host)
                    .strip_suffix(suffix.as_str())
                    .is_some_and(|head| head.len() > 1 && head.ends_with('.')),
                (HostMatch::Ip(ip), TargetHost::Ip(host)) => ip == host,
                _ => false,
            }
    }
}

/// A request host without its trailing dot (`example.com.` is `example.com`).
fn bare_name(host: &str) -> &str {
    host.strip_suffix('.').unwrap_or(host)
}

fn parse_entry(entry: &str, position: usize) -> Result<HostPattern, AllowListError> {
    let owned = || entry.to_owned();
    if entry.is_empty() {
        return Err(AllowListError::Empty { position });
    }
    if !entry.is_ascii() {
        return Err(AllowListError::NonAscii { entry: owned() });
    }
    if entry.contains("://") {
        return Err(AllowListError::Scheme { entry: owned() });
    }
    if entry.contains(['/', '?', '#']) {
        return Err(AllowListError::Path { entry: owned() });
    }
    let (host, port) = split_host_port(entry)?;
    let port = port.map(|text| parse_port(text, entry)).transpose()?;
    let host = match host {
        HostText::Ip(ip) => HostMatch::Ip(ip),
        HostText::Name(name) => parse_name(name, entry)?,
    };
    Ok(HostPattern { host, port })
}

/// An entry's host part, before validation.
enum HostText<'a> {
    Ip(IpAddr),
    Name(&'a str),
}

fn split_host_port(entry: &str) -> Result<(HostText<'_>, Option<&str>), AllowListError> {
    let bad = |reason| AllowListError::BadHost {
        entry: entry.to_owned(),
        reason,
    };
    if let Some(rest) = entry.strip_prefix('[') {
        let (inside, after) = rest
            .split_once(']')
            .ok_or(bad("an opening `[` without its `]`"))?;
        let ip = Ipv6Addr::from_str(inside).map_err(|_| bad("not an IPv6 address inside `[]`"))?;
        let port = match after {
            "" => None,
            _ => Some(after.strip_prefix(':').ok_or(bad("text after `]`"))?),
        };
        return Ok((HostText::Ip(IpAddr::V6(ip)), port));
    }
    if let Ok(ip) = Ipv6Addr::from_str(entry) {
        return Ok((HostText::Ip(IpAddr::V6(ip)), None));
    }
    if entry.matches(':').count() > 1 {
        return Err(bad(
            "an IPv6 address with a port goes in brackets, as `[::1]:8080`",
        ));
    }
    let (host, port) = match entry.split_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (entry, None),
    };
    let host = match std::net::Ipv4Addr::from_str(host) {
        Ok(ip) => HostText::Ip(IpAddr::V4(ip)),
        Err(_) => HostText::Name(host),
    };
    Ok((host, port))
}

fn parse_port(text: &str, entry: &str) -> Result<u16, AllowListError> {
    let bad = || AllowListError::BadPort {
        entry: entry.to_owned(),
    };
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    match text.parse::<u16>() {
        Ok(0) | Err(_) => Err(bad()),
        Ok(port) => Ok(port),
    }
}

fn parse_name(host: &str, entry: &str) -> Result<HostMatch, AllowListError> {
    let host = host.to_ascii_lowercase();
    let host = bare_name(&host);
    if host == "*" {
        return Err(AllowListError::WildcardAlone {
            entry: entry.to_owned(),
        });
    }
    if let Some(suffix) = host.strip_prefix("*.") {
        check_name(suffix, entry)?;
        if !suffix.contains('.') {
            return Err(AllowListError::WildcardTooBroad {
                entry: entry.to_owned(),
            });
        }
        return Ok(HostMatch::Subdomains(suffix.to_owned()));
    }
    check_name(host, entry)?;
    Ok(HostMatch::Name(host.to_owned()))
}

/// Checks a lowercase DNS name: letters, digits and hyphens in labels of
/// 1 to 63 bytes, at most 253 bytes in all, not ending in a numeric label
/// (which a URL would read as an IPv4 address).
fn check_name(name: &str, entry: &str) -> Result<(), AllowListError> {
    let bad = |reason| AllowListError::BadHost {
        entry: entry.to_owned(),
        reason,
    };
    if name.contains('*') {
        return Err(AllowListError::WildcardPlacement {
            entry: entry.to_owned(),
        });
    }
    if name.is_empty() {
        return Err(bad("the host is empty"));
    }
    if name.len() > MAX_NAME_LEN {
        return Err(bad("longer than 253 bytes"));
    }
    for label in name.split('.') {
        if label.is_empty() {
            return Err(bad("an empty label (`..` or a leading dot)"));
        }
        if label.len() > MAX_LABEL_LEN {
            return Err(bad("a label longer than 63 bytes"));
        }
        if !label
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            return Err(bad(
                "only letters, digits, `-` and `.` may appear in a name",
            ));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(bad("a label starts or ends with `-`"));
        }
    }
    let last = name.rsplit('.').next().unwrap_or(name);
    if last.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad(
            "a numeric last label; write IPv4 addresses as four numbers",
        ));
    }
    Ok(())
}

impl fmt::Display for AllowList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (index, entry) in self.entries.iter().enumerate() {
            if index > 0 {
                f.write_str(",")?;
            }
            write!(f, "{entry}")?;
        }
        Ok(())
    }
}

impl fmt::Display for HostPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.host {
            HostMatch::Name(name) => f.write_str(name)?,
            HostMatch::Subdomains(suffix) => write!(f, "*.{suffix}")?,
            HostMatch::Ip(IpAddr::V4(ip)) => write!(f, "{ip}")?,
            HostMatch::Ip(IpAddr::V6(ip)) => write!(f, "[{ip}]")?,
        }
        match self.port {
            Some(port) => write!(f, ":{port}"),
            None => Ok(()),
        }
    }
}

impl FromStr for AllowList {
    type Err = AllowListError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::parse(text)
    }
}

impl TryFrom<String> for AllowList {
    type Error = AllowListError;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        Self::parse(&text)
    }
}

impl From<AllowList> for String {
    fn from(list: AllowList) -> Self {
        list.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(url: &str) -> Target {
        Target::parse(url).expect("a valid test URL")
    }

    fn allows(list: &str, url: &str) -> bool {
        AllowList::parse(list)
            .expect("a valid list")
            .permits(&target(url))
    }

    #[test]
    fn exact_names_match_only_themselves_on_default_ports() {
        assert!(allows("api.example.com", "http://api.example.com/x"));
        assert!(allows("api.example.com", "https://API.example.com./x"));
        assert!(!allows("api.example.com", "http://api.example.com:443/"));
        assert!(!allows("api.example.com", "https://api.example.com:80/"));
        assert!(!allows("api.example.com", "https://api.example.com:8443/"));
        assert!(!allows("api.example.com", "https://x.api.example.com/"));
        assert!(!allows("api.example.com", "https://example.com/"));
        assert!(!allows(
            "api.example.com",
            "https://api.example.com.evil.net/"
        ));
    }

    #[test]
    fn ports_given_match_either_scheme() {
        assert!(allows("example.net:8080", "http://example.net:8080/"));
        assert!(allows("example.net:8080", "https://example.net:8080/"));
        assert!(!allows("example.net:8080", "http://example.net/"));
        assert!(allows("example.net:443", "https://example.net/"));
        assert!(!allows("example.net:443", "http://example.net/"));
    }

    #[test]
    fn wildcards_match_subdomains_but_not_the_domain() {
        let list = "*.example.org:443";
        assert!(allows(list, "https://a.example.org/"));
        assert!(allows(list, "https://a.b.example.org/"));
        assert!(!allows(list, "https://example.org/"));
        assert!(!allows(list, "https://badexample.org/"));
        assert!(!allows(list, "https://a.example.org.evil.net/"));
        assert!(!allows(list, "http://a.example.org/"));
    }

    #[test]
    fn ip_literals_match_exactly() {
        assert!(allows("127.0.0.1:8080", "http://127.0.0.1:8080/"));
        assert!(!allows("127.0.0.1:8080", "http://127.0.0.2:8080/"));
        assert!(allows("[::1]:8080", "http://[::1]:8080/"));
        assert!(allows("::1", "http://[0:0::1]/"));
        assert!(!allows("127.0.0.1", "http://localhost/"));
        assert!(!allows("localhost", "http://127.0.0.1/"));
    }

    #[test]
    fn urls_are_matched_as_a_browser_parses_them() {
        let list = "api.example.com,127.0.0.1:8080,xn--bcher-kva.example";
        assert!(allows(list, "HTTP://API.EXAMPLE.COM./"));
        assert!(allows(list, "http://api%2eexample%2ecom/"));
        assert!(allows(list, "http://b\u{fc}cher.example/"));
        for form in ["127.1", "0x7f.1", "2130706433", "0177.0.0.1"] {
            assert!(allows(list, &format!("http://{form}:8080/")), "{form}");
        }
        assert!(!allows(list, "http://[::ffff:127.0.0.1]:8080/"));
        assert!(!allows(list, "http://[::ffff:7f00:1]:8080/"));
        assert!(!allows(list, "http://evil.example\\@api.example.com/"));
    }

    #[test]
    fn display_is_canonical_and_round_trips() {
        let list = AllowList::parse(
            " API.Example.com , *.example.org:443,example.net:8080,127.0.0.1:8080,[::1],api.example.com.",
        )
        .expect("valid");
        let text = list.to_string();
        assert_eq!(
            text,
            "api.example.com,*.example.org:443,example.net:8080,127.0.0.1:8080,[::1]"
        );
        assert_eq!(AllowList::parse(&text), Ok(list.clone()));
        let json = serde_json::to_string(&list).expect("serialises");
        assert_eq!(json, format!("\"{text}\""));
        assert_eq!(serde_json::from_str::<AllowList>(&json).ok(), Some(list));
        assert!(serde_json::from_str::<AllowList>("\"*\"").is_err());
    }

    #[test]
    fn entries_the_guard_always_refuses_are_named_with_its_reason() {
        let list = AllowList::parse(
            "api.example.com,localhost:8080,LOCALHOST.,127.0.0.1,10.1.2.3:443,169.254.169.254,\
             [::1]:80,[fd00:ec2::254],8.8.8.8,*.example.org,localhost.example.com",
        )
        .expect("valid");
        let guarded: Vec<(String, &str)> = list
            .guarded_entries()
            .into_iter()
            .map(|g| (g.entry, g.reason))
            .collect();
        let expected = [
            ("localhost:8080", "loopback"),
            ("localhost", "loopback"),
            ("127.0.0.1", "loopback"),
            ("10.1.2.3:443", "private (RFC 1918)"),
            ("169.254.169.254", "cloud metadata"),
            ("[::1]:80", "loopback"),
            ("[fd00:ec2::254]", "cloud metadata"),
        ];
        let expected: Vec<(String, &str)> = expected
            .iter()
            .map(|(e, r)| ((*e).to_owned(), *r))
            .collect();
        assert_eq!(guarded, expected);
        assert!(AllowList::none().guarded_entries().is_empty());
    }

    #[test]
    fn none_is_empty_text() {
        assert!(AllowList::none().is_empty());
        assert_eq!(AllowList::none().to_string(), "");
        assert_eq!(AllowList::parse(""), Ok(AllowList::none()));
        assert_eq!(AllowList::parse("  "), Ok(AllowList::none()));
        assert!(!AllowList::none().permits(&target("http://example.com/")));
    }

    #[test]
    fn bad_entries_are_refused_naming_the_entry() {
        use AllowListError as E;
        let err = |text: &str| AllowList::parse(text).expect_err(text);
        assert_eq!(err("a.com,,b.com"), E::Empty { position: 2 });
        assert_eq!(err("a.com,"), E::Empty { position: 2 });
        type Expected = fn(String) -> E;
        let cases: &[(&str, Expected)] = &[
            ("https://a.com", |entry| E::Scheme { entry }),
            ("a.com/path", |entry| E::Path { entry }),
            ("a.com?q", |entry| E::Path { entry }),
            ("bücher.de", |entry| E::NonAscii { entry }),
            ("*", |entry| E::WildcardAlone { entry }),
            ("*:443", |entry| E::WildcardAlone { entry }),
            ("*.com", |entry| E::WildcardTooBroad { entry }),
            ("*.com:443", |entry| E::WildcardTooBroad { entry }),
            ("a.*.com", |entry| E::WildcardPlacement { entry }),
            ("*a.com", |entry| E::WildcardPlacement { entry }),
            ("*.*.a.com", |entry| E::WildcardPlacement { entry }),
            ("a.com:0", |entry| E::BadPort { entry }),
            ("a.com:65536", |entry| E::BadPort { entry }),
            ("a.com:", |entry| E::BadPort { entry }),
            ("a.com:+80", |entry| E::BadPort { entry }),
            ("a.com:http", |entry| E::BadPort { entry }),
            ("[::1]:0", |entry| E::BadPort { entry }),
        ];
        for (text, expected) in cases {
            assert_eq!(err(text), expected((*text).to_owned()), "{text}");
        }
        for text in [
            "a..com",
            ".a.com",
            "-a.com",
            "a-.com",
            "a_b.com",
            "user@a.com",
            "1.2.3",
            "127.1",
            "::1:80:x",
            "[::1",
            "[1.2.3.4]",
            "[::1]x",
            ":80",
        ] {
            assert!(
                matches!(err(text), E::BadHost { ref entry, .. } if entry == text),
                "{text}: {:?}",
                err(text)
            );
        }
        let long_label = format!("{}.com", "a".repeat(64));
        assert!(matches!(err(&long_label), E::BadHost { .. }));
        let long_name = format!("{}com", "abcdefghi.".repeat(26));
        assert!(matches!(err(&long_name), E::BadHost { .. }));
        assert!(
            err("*.example.org:0")
                .to_string()
                .contains("`*.example.org:0`")
        );
    }
}
