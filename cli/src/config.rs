//! The per-user configuration file: the default server and the identities
//! (with their tokens) this user holds on each server.
//!
//! It lives at `$WORLDLINE_CONFIG`, else `$XDG_CONFIG_HOME/worldline/config.toml`,
//! else `~/.config/worldline/config.toml`, and is written with mode 0600
//! because tokens are secrets (in a directory created with mode 0700 if
//! it was missing).

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};

use worldline_host::{create_private_dir_all, write_secret_file};

use crate::hint::hinted;

/// The server used when neither `--server` nor the config file names one.
pub const DEFAULT_SERVER: &str = "http://127.0.0.1:3000";

/// The contents of the configuration file.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Config {
    /// The server commands talk to unless `--server` says otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_server: Option<String>,
    /// Every identity this user holds.
    #[serde(default, rename = "identity")]
    pub identities: Vec<SavedIdentity>,
    /// Keys this version does not know (written by a newer one, or by
    /// hand): kept as they are when the file is written back.
    #[serde(flatten)]
    pub other: toml::Table,
}

/// An identity issued by one server, and the token that proves it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SavedIdentity {
    /// 64 hex digits.
    pub identity: String,
    /// The token the server signed.
    pub token: String,
    /// The server that issued it (tokens are valid on that server only).
    pub server: String,
    /// Whether this is the identity used on its server by default.
    #[serde(default)]
    pub default: bool,
    /// Keys this version does not know, kept as they are.
    #[serde(flatten)]
    pub other: toml::Table,
}

/// Where the configuration file is.
pub fn config_path(explicit: Option<&Path>) -> anyhow::Result<PathBuf> {
    if let Some(path) = explicit {
        return Ok(path.to_owned());
    }
    if let Some(dir) = std::env::var_os("XDG_CONFIG_HOME").filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(dir).join("worldline/config.toml"));
    }
    let home = std::env::var_os("HOME")
        .context("neither XDG_CONFIG_HOME nor HOME is set; pass --config FILE")?;
    Ok(PathBuf::from(home).join(".config/worldline/config.toml"))
}

/// The longest config file read: far more than any number of identities
/// needs, and a bound on what a wrong `--config` makes the command read.
const MAX_CONFIG_BYTES: u64 = 1 << 20;

/// The text of the config file at `path`, refusing a pipe or a socket
/// before opening it and a file over [`MAX_CONFIG_BYTES`].
fn read_config_text(path: &Path) -> std::io::Result<String> {
    use std::io::Read as _;
    use std::os::unix::fs::FileTypeExt as _;

    let kind = std::fs::metadata(path)?.file_type();
    if kind.is_fifo() || kind.is_socket() {
        return Err(std::io::Error::other(
            "it is a pipe or a socket, not a config file",
        ));
    }
    let mut text = String::new();
    std::fs::File::open(path)?
        .take(MAX_CONFIG_BYTES + 1)
        .read_to_string(&mut text)?;
    if text.len() as u64 > MAX_CONFIG_BYTES {
        return Err(std::io::Error::other(format!(
            "it is longer than {MAX_CONFIG_BYTES} bytes, which no config file is"
        )));
    }
    Ok(text)
}

impl Config {
    /// Reads the file at `path`; a missing file is an empty configuration.
    /// A pipe or a socket is refused (reading one would wait for a writer),
    /// and so is a file longer than [`MAX_CONFIG_BYTES`] (such as a device
    /// that never ends).
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        match read_config_text(path) {
            Ok(text) => toml::from_str(&text).map_err(|e| {
                hinted(
                    format!("the config file {} is not valid: {e}", path.display()),
                    format!(
                        "fix {} (it holds your identities' tokens: moving it aside loses \
                         them), or pass --config FILE to use another one",
                        path.display()
                    ),
                )
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(e) if e.kind() == std::io::ErrorKind::IsADirectory => Err(hinted(
                format!("the config file {} is a directory", path.display()),
                "pass --config FILE naming a file (made if it does not exist)".to_owned(),
            )),
            Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
        }
    }

    /// Writes the file at `path` (replacing it atomically), readable by its
    /// owner only. A symbolic link is followed: the file it points to is
    /// replaced, and the link stays. Anything but a regular file there (a
    /// device such as `/dev/null`, a directory, a FIFO) is refused, never
    /// replaced.
    pub fn save(&self, path: &Path) -> anyhow::Result<()> {
        let resolved;
        let path = match std::fs::canonicalize(path) {
            Ok(target) => {
                if !std::fs::metadata(&target)
                    .with_context(|| format!("reading {}", target.display()))?
                    .is_file()
                {
                    bail!(
                        "{} is not a regular file (a device, a directory or a pipe), and will \
                         not be replaced by one",
                        path.display()
                    );
                }
                resolved = target;
                resolved.as_path()
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                // A link to a file not made yet: the file is made there.
                resolved = link_target(path)?;
                resolved.as_path()
            }
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            create_private_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        let text = toml::to_string_pretty(self).context("encoding the configuration")?;
        Ok(write_secret_file(path, text.as_bytes())?)
    }

    /// The server to talk to: `explicit` (from `--server`), else the configured default.
    pub fn server(&self, explicit: Option<&str>) -> String {
        let server = explicit
            .or(self.default_server.as_deref())
            .unwrap_or(DEFAULT_SERVER);
        normalize_server(server)
    }

    /// The default identity on `server`, if this user holds one there.
    pub fn default_identity(&self, server: &str) -> Option<&SavedIdentity> {
        let mut on_server = self
            .identities
            .iter()
            .filter(|i| same_server(&i.server, server));
        let first = on_server.clone().next();
        on_server.find(|i| i.default).or(first)
    }

    /// Remembers a new identity; it becomes the default on its server if
    /// it is the first there or `make_default` is set.
    pub fn add_identity(&mut self, identity: SavedIdentity, make_default: bool) {
        let first = self.default_identity(&identity.server).is_none();
        let server = identity.server.clone();
        let name = identity.identity.clone();
        self.identities.push(identity);
        if first || make_default {
            self.set_default(&server, &name)
                .expect("the identity was just added");
        }
    }

    /// The one identity on `server` whose hex starts with `prefix` (an
    /// optional `0x`, any case).
    pub fn find(&self, server: &str, prefix: &str) -> anyhow::Result<&SavedIdentity> {
        let prefix = prefix.trim_start_matches("0x").to_ascii_lowercase();
        let matching: Vec<&SavedIdentity> = self
            .identities
            .iter()
            .filter(|i| same_server(&i.server, server) && i.identity.starts_with(&prefix))
            .collect();
        let hint = "`worldline identity list` shows the saved identities";
        if prefix.is_empty() {
            return Err(hinted(
                "the identity's prefix is empty: give the first hex digits of one",
                hint,
            ));
        }
        match matching.as_slice() {
            [one] => Ok(one),
            [] => Err(hinted(
                format!("no identity on {server} starts with `{prefix}`"),
                hint,
            )),
            _ => Err(hinted(
                format!(
                    "{} identities on {server} start with `{prefix}`; give more digits",
                    matching.len()
                ),
                hint,
            )),
        }
    }

    /// Makes the identity whose hex starts with `prefix` the default on
    /// `server`; the prefix must pick exactly one identity.
    pub fn set_default(&mut self, server: &str, prefix: &str) -> anyhow::Result<String> {
        let chosen = self.find(server, prefix)?.identity.clone();
        for identity in self
            .identities
            .iter_mut()
            .filter(|i| same_server(&i.server, server))
        {
            identity.default = identity.identity == chosen;
        }
        Ok(chosen)
    }
}

/// Whether the URLs `a` and `b` name the same server (see [`normalize_server`]).
fn same_server(a: &str, b: &str) -> bool {
    normalize_server(a) == normalize_server(b)
}

/// A server URL without a trailing slash; `host:port` gets `http://`, and
/// the scheme and the host are lowercased (URLs compare them without
/// regard to case), so that `HTTP://LOCALHOST:3000/` and
/// `http://localhost:3000` name the same server and share its identities.
pub fn normalize_server(server: &str) -> String {
    let server = server.trim().trim_end_matches('/');
    let (scheme, rest) = server.split_once("://").unwrap_or(("http", server));
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    // A user name or password before the host keeps its case.
    let (user, host) = authority.split_at(authority.rfind('@').map_or(0, |at| at + 1));
    format!(
        "{}://{user}{}{path}",
        scheme.to_ascii_lowercase(),
        host.to_ascii_lowercase()
    )
}
/// Where writing `path`, which does not exist, makes the file: `path`
/// itself, or, if it is a symbolic link (to a file not made yet, perhaps
/// through other links), the end of its links.
fn link_target(path: &Path) -> anyhow::Result<PathBuf> {
    /// More links than this in a row are a loop (Linux stops at 40 too).
    const MAX_LINKS: usize = 40;
    let mut path = path.to_path_buf();
    for _ in 0..MAX_LINKS {
        match std::fs::symlink_metadata(&path) {
            Ok(metadata) if metadata.file_type().is_symlink() => {
                let target = std::fs::read_link(&path)
                    .with_context(|| format!("reading the link {}", path.display()))?;
                path = match path.parent() {
                    Some(dir) => dir.join(target),
                    None => target,
                };
            }
            _ => return Ok(path),
        }
    }
    bail!("{} is a loop of symbolic links", path.display())
}

#[cfg(test)]
mod tests {
    use super::*;

    // Rewriting the file (a new identity, a new default) used to drop every
    // key this version does not know, such as one a newer version wrote.
    #[test]
    fn keys_this_version_does_not_know_survive_a_rewrite() {
        let dir =
            std::env::temp_dir().join(format!("worldline-config-keys-{}", std::process::id()));
        let path = dir.join("config.toml");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            &path,
            "default_server = \"http://a:1\"\ncolor = \"never\"\n\n[future]\nlevel = 3\n\n\
             [[identity]]\nidentity = \"ab\"\ntoken = \"t\"\nserver = \"http://a:1\"\n\
             label = \"laptop\"\n",
        )
        .unwrap();
        let mut config = Config::load(&path).unwrap();
        config.add_identity(
            SavedIdentity {
                identity: "cd".into(),
                token: "u".into(),
                server: "http://a:1".into(),
                default: false,
                other: toml::Table::new(),
            },
            true,
        );
        config.save(&path).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let again: toml::Table = toml::from_str(&text).unwrap();
        assert_eq!(again["color"].as_str(), Some("never"), "{text}");
        assert_eq!(again["future"]["level"].as_integer(), Some(3), "{text}");
        assert_eq!(
            again["identity"][0]["label"].as_str(),
            Some("laptop"),
            "{text}"
        );
        assert_eq!(Config::load(&path).unwrap().identities.len(), 2);
        std::fs::remove_dir_all(dir).unwrap();
    }
}
