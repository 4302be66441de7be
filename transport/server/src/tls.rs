//! The server's QUIC certificate: self-signed, created on first start and
//! kept in the data directory so that clients can pin its fingerprint.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use sha2::{Digest, Sha256};
use worldline_host::{check_secret_file, write_secret_file};
use worldline_transport::{QUIC_ACK_ELICITING_THRESHOLD, QUIC_ALPN};

use crate::error::ServerError;

/// Where, under the data directory, the certificate and its key live.
const CERT_FILE: &str = "quic-cert.der";
const KEY_FILE: &str = "quic-key.der";

/// The names the self-signed certificate is valid for.
const CERT_NAMES: [&str; 2] = ["localhost", "127.0.0.1"];

/// A certificate and its private key.
pub(crate) struct Certificate {
    pub(crate) cert: CertificateDer<'static>,
    key: PrivatePkcs8KeyDer<'static>,
}

impl Certificate {
    /// Reads the certificate from `data_dir`, creating it there first if
    /// there is none.
    pub(crate) fn load_or_create(data_dir: &Path) -> Result<Self, ServerError> {
        let cert_path = data_dir.join(CERT_FILE);
        let key_path = data_dir.join(KEY_FILE);
        let io = |what: &Path| {
            let path = what.display().to_string();
            move |source| ServerError::Io { path, source }
        };
        if cert_path.exists() && key_path.exists() {
            check_secret_file(&key_path)?;
            let cert = worldline_host::read_regular_file(&cert_path).map_err(io(&cert_path))?;
            let key = worldline_host::read_regular_file(&key_path).map_err(io(&key_path))?;
            let certificate = Self {
                cert: CertificateDer::from(cert),
                key: PrivatePkcs8KeyDer::from(key),
            };
            certificate.check()?;
            return Ok(certificate);
        }
        let generated = rcgen::generate_simple_self_signed(CERT_NAMES.map(String::from).to_vec())
            .map_err(|e| ServerError::Tls(format!("creating a certificate: {e}")))?;
        let cert = generated.cert.der().to_vec();
        let key = generated.signing_key.serialize_der();
        write_secret_file(&key_path, &key)?;
        // The certificate is public, but goes through the same atomic write.
        write_secret_file(&cert_path, &cert)?;
        Ok(Self {
            cert: CertificateDer::from(cert),
            key: PrivatePkcs8KeyDer::from(key),
        })
    }

    /// Checks a certificate read from the data directory, naming the file
    /// at fault: the key must load, and the certificate parse and be the
    /// key's.
    fn check(&self) -> Result<(), ServerError> {
        let provider = rustls::crypto::ring::default_provider();
        provider
            .key_provider
            .load_private_key(PrivateKeyDer::Pkcs8(self.key.clone_key()))
            .map_err(|e| ServerError::Certificate {
                file: KEY_FILE,
                reason: format!("not a private key (PKCS #8 DER) this server can use: {e}"),
            })?;
        self.tls_config().map_err(|e| ServerError::Certificate {
            file: CERT_FILE,
            reason: format!("not a certificate (DER) for the key in {KEY_FILE}: {e}"),
        })?;
        Ok(())
    }

    /// A TLS 1.3 server configuration presenting this certificate.
    fn tls_config(&self) -> Result<rustls::ServerConfig, rustls::Error> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        rustls::ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .with_no_client_auth()
            .with_single_cert(
                vec![self.cert.clone()],
                PrivateKeyDer::Pkcs8(self.key.clone_key()),
            )
    }

    /// The SHA-256 of the certificate, which clients pin.
    pub(crate) fn fingerprint(&self) -> [u8; 32] {
        Sha256::digest(&self.cert).into()
    }

    /// A quinn server configuration presenting this certificate, closing
    /// connections silent for `idle_timeout` and sending keep-alives at a
    /// third of it (so a listening client needs none of its own).
    pub(crate) fn quic_server_config(
        &self,
        idle_timeout: Duration,
    ) -> Result<quinn::ServerConfig, ServerError> {
        let mut tls = self
            .tls_config()
            .map_err(|e| ServerError::Tls(format!("loading the certificate: {e}")))?;
        tls.alpn_protocols = vec![QUIC_ALPN.to_vec()];
        tls.max_early_data_size = 0;
        let crypto = quinn::crypto::rustls::QuicServerConfig::try_from(tls)
            .map_err(|e| ServerError::Tls(e.to_string()))?;
        let mut config = quinn::ServerConfig::with_crypto(Arc::new(crypto));
        let mut transport = quinn::TransportConfig::default();
        let idle = quinn::IdleTimeout::try_from(idle_timeout)
            .map_err(|_| ServerError::Tls(format!("idle timeout {idle_timeout:?} is too long")))?;
        transport
            .max_idle_timeout(Some(idle))
            .keep_alive_interval(Some(idle_timeout / 3))
            .max_concurrent_uni_streams(0u8.into())
            .max_concurrent_bidi_streams(1u8.into())
            .stream_receive_window(QUIC_STREAM_RECEIVE_WINDOW.into());
        let mut acks = quinn::AckFrequencyConfig::default();
        acks.ack_eliciting_threshold(QUIC_ACK_ELICITING_THRESHOLD.into());
        transport.ack_frequency_config(Some(acks));
        config.transport_config(Arc::new(transport));
        Ok(config)
    }
}

/// How many bytes a QUIC client may send on its stream ahead of what the
/// server has read: what the QUIC stack holds for a connection whose
/// message waits for room (see `crate::incoming`). Calls are small; at a
/// round trip of 10 ms this still takes 25 MB/s from one client.
const QUIC_STREAM_RECEIVE_WINDOW: u32 = 256 << 10;

/// Formats a fingerprint as 64 lowercase hex digits.
pub fn fingerprint_hex(fingerprint: &[u8; 32]) -> String {
    fingerprint.iter().map(|b| format!("{b:02x}")).collect()
}
