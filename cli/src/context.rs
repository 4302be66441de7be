//! What every command that talks to a server shares: the global options,
//! the configuration file, and the server's HTTP API as the user's identity.

use std::path::PathBuf;

use clap::Args;
use worldline_host::{SecretFileError, check_secret_file};
use worldline_transport::http_api::NewIdentity;

use crate::api::Api;
use crate::config::{Config, SavedIdentity, config_path};
use crate::hint::{hinted, message_of};

/// Options every command accepts.
#[derive(Args, Debug)]
pub struct GlobalArgs {
    /// The server's HTTP address, for the commands that talk to a server
    /// (not `start` or `init`; `bench` only when given here, not from the
    /// environment) [default: the config file's `default_server`, else http://127.0.0.1:3000]
    #[arg(long, global = true, env = "WORLDLINE_SERVER", value_name = "URL")]
    pub server: Option<String>,
    /// The configuration file, with your identities, for the commands that
    /// talk to a server (not `start` or `init`) [default: $XDG_CONFIG_HOME/worldline/config.toml or ~/.config/worldline/config.toml]
    #[arg(long, global = true, env = "WORLDLINE_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Whether `--server` was given on the command line (not taken from
    /// `WORLDLINE_SERVER`): benchmarks use an existing server only then.
    #[arg(skip)]
    pub server_on_command_line: bool,
}

/// Fails unless `server` (normalised) is an `http://` or `https://` URL:
/// a WebSocket URL (which the server prints for clients) or another scheme
/// is named as the mistake it is, not as a server that cannot be reached.
fn check_server_scheme(server: &str) -> anyhow::Result<()> {
    let (scheme, rest) = server.split_once("://").unwrap_or(("http", server));
    let authority = rest.split('/').next().unwrap_or(rest);
    match scheme {
        "http" | "https" => Ok(()),
        "ws" | "wss" => {
            let http = if scheme == "wss" { "https" } else { "http" };
            Err(hinted(
                format!(
                    "the server address `{server}` is a WebSocket URL; --server (or \
                     WORLDLINE_SERVER) takes the server's HTTP address"
                ),
                format!("pass --server {http}://{authority} (WebSocket clients use the same port)"),
            ))
        }
        _ => Err(hinted(
            format!("the server address `{server}` is not an http:// or https:// URL"),
            "pass the server's HTTP address, such as http://127.0.0.1:3000",
        )),
    }
}

/// The loaded configuration and the server a command talks to.
pub struct Context {
    path: PathBuf,
    /// The configuration file's contents.
    pub config: Config,
    /// The server's URL, normalised.
    pub server: String,
}

impl Context {
    /// Loads the configuration named by the global options.
    pub fn load(global: &GlobalArgs) -> anyhow::Result<Self> {
        let path = config_path(global.config.as_deref())?;
        let config = Config::load(&path)?;
        // A config written by an older version may be readable by others;
        // one without identities holds no token, so no secret.
        if !config.identities.is_empty()
            && let Err(exposed @ SecretFileError::Exposed { .. }) = check_secret_file(&path)
        {
            eprintln!("warning: {exposed}");
            if let Some(hint) = exposed.chmod_hint() {
                eprintln!("hint: {hint}");
            }
        }
        let server = config.server(global.server.as_deref());
        check_server_scheme(&server)?;
        Ok(Self {
            path,
            config,
            server,
        })
    }

    /// Writes the configuration back.
    pub fn save(&self) -> anyhow::Result<()> {
        self.config.save(&self.path)
    }

    /// Where the configuration file is.
    pub fn path(&self) -> &std::path::Path {
        &self.path
    }

    /// The API as the default identity on this server, or anonymously if there is none.
    pub fn api(&self) -> Api {
        let token = self
            .config
            .default_identity(&self.server)
            .map(|i| i.token.clone());
        Api::new(&self.server, token)
    }

    /// The API as the default identity on this server, asking the server
    /// for a new identity (and saving it) if the user has none there yet.
    pub fn api_as_identity(&mut self) -> anyhow::Result<Api> {
        if self.config.default_identity(&self.server).is_none() {
            self.check_writable()?;
            let issued = Api::new(&self.server, None).new_identity()?;
            let identity = issued.identity.clone();
            self.remember(issued, true)?;
            eprintln!(
                "Created identity {identity} on {} (saved in {})",
                self.server,
                self.path.display()
            );
        }
        Ok(self.api())
    }

    /// Fails, before an identity is asked for, if the configuration file
    /// cannot be written: an identity the server issued but that could not
    /// be saved is lost.
    pub fn check_writable(&self) -> anyhow::Result<()> {
        self.save().map_err(|err| {
            hinted(
                format!(
                    "cannot write the configuration file {}, where a new identity would be \
                     saved: {}",
                    self.path.display(),
                    message_of(&err)
                ),
                "pass --config FILE (or set WORLDLINE_CONFIG) naming a file you can write; \
                 no identity was created",
            )
        })
    }

    /// Saves an identity the server issued.
    pub fn remember(&mut self, issued: NewIdentity, make_default: bool) -> anyhow::Result<()> {
        let identity = SavedIdentity {
            identity: issued.identity,
            token: issued.token,
            server: self.server.clone(),
            default: false,
            other: toml::Table::new(),
        };
        let name = identity.identity.clone();
        self.config.add_identity(identity, make_default);
        self.save().map_err(|err| {
            hinted(
                format!(
                    "the server created identity {name}, but it could not be saved in {}: {}",
                    self.path.display(),
                    message_of(&err)
                ),
                "it is lost (its token was not kept); make the configuration file writable, \
                 or pass --config FILE, and a new identity will be created next time",
            )
        })
    }
}
