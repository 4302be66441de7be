//! The TLS client configuration: rustls with the ring provider and the
//! system's root certificates, loaded once per process on first use.

use std::sync::Arc;

use rustls::{ClientConfig, RootCertStore};
use tokio::sync::OnceCell;
use tokio_rustls::TlsConnector;

static CONNECTOR: OnceCell<Result<TlsConnector, String>> = OnceCell::const_new();

/// The process-wide TLS connector, or why it cannot be built (no system
/// root certificates could be loaded).
pub(crate) async fn connector() -> Result<TlsConnector, String> {
    CONNECTOR
        .get_or_init(|| async {
            tokio::task::spawn_blocking(build)
                .await
                .unwrap_or_else(|err| Err(format!("loading the root certificates failed: {err}")))
        })
        .await
        .clone()
}

fn build() -> Result<TlsConnector, String> {
    let loaded = rustls_native_certs::load_native_certs();
    let mut roots = RootCertStore::empty();
    let (added, _ignored) = roots.add_parsable_certificates(loaded.certs);
    if added == 0 {
        let errors: Vec<String> = loaded.errors.iter().map(ToString::to_string).collect();
        return Err(format!(
            "no system root certificates could be loaded ({})",
            errors.join("; ")
        ));
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|err| format!("the TLS configuration is refused: {err}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsConnector::from(Arc::new(config)))
}
