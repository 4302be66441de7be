//! Identities and tokens: the server signs JSON Web Tokens with its own
//! Ed25519 key, and a client's [`Identity`] is derived from the token's
//! issuer and subject, so the same token always means the same identity.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::identity::{Identity, Timestamp};

/// The JOSE header of every token this server issues.
const HEADER: &str = r#"{"alg":"EdDSA","typ":"JWT"}"#;

/// Why a token was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// The text is not a token of the form `header.payload.signature`.
    #[error("malformed token: {0}")]
    Malformed(String),
    /// The signature does not match: the token was altered or signed by another server.
    #[error("the token's signature is not this server's")]
    BadSignature,
}

/// The claims of a token.
#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    iss: String,
    sub: String,
    iat: i64,
}

/// The identity a token with this issuer and subject stands for.
pub fn identity_for(issuer: &str, subject: &str) -> Identity {
    let mut hash = Sha256::new();
    hash.update(b"worldline-identity\0");
    hash.update(issuer.as_bytes());
    hash.update(b"\0");
    hash.update(subject.as_bytes());
    Identity::from_bytes(hash.finalize().into())
}

/// A server's signing key and name: issues and verifies tokens.
#[derive(Clone)]
pub struct Authority {
    issuer: String,
    key: SigningKey,
}

impl Authority {
    /// An authority with a fresh random key.
    pub fn generate(issuer: impl Into<String>) -> Self {
        Self::from_secret(issuer, rand::random())
    }

    /// An authority with a stored key (see [`secret`](Self::secret)).
    pub fn from_secret(issuer: impl Into<String>, secret: [u8; 32]) -> Self {
        Self {
            issuer: issuer.into(),
            key: SigningKey::from_bytes(&secret),
        }
    }

    /// The key's secret bytes, for storing.
    pub fn secret(&self) -> [u8; 32] {
        self.key.to_bytes()
    }

    /// A new identity (with a random subject) and the token that proves it.
    pub fn new_identity(&self) -> (Identity, String) {
        let subject: [u8; 16] = rand::random();
        let subject = crate::identity::hex(&subject);
        let token = self.issue(&subject);
        (identity_for(&self.issuer, &subject), token)
    }

    /// A token for `subject` from this issuer.
    pub fn issue(&self, subject: &str) -> String {
        let claims = Claims {
            iss: self.issuer.clone(),
            sub: subject.to_owned(),
            iat: Timestamp::now().to_micros_since_epoch() / 1_000_000,
        };
        let payload = serde_json::to_vec(&claims).expect("claims serialize");
        let signed = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(HEADER),
            URL_SAFE_NO_PAD.encode(payload)
        );
        let signature = self.key.sign(signed.as_bytes());
        format!("{signed}.{}", URL_SAFE_NO_PAD.encode(signature.to_bytes()))
    }

    /// The identity a token proves, if this server signed it.
    pub fn verify(&self, token: &str) -> Result<Identity, AuthError> {
        let malformed = |why: &str| AuthError::Malformed(why.to_owned());
        if token.contains(|c: char| c.is_ascii_whitespace()) {
            // A token never holds any: it was copied with `Bearer ` or a line break.
            return Err(malformed(
                "it contains whitespace; send the token alone, without `Bearer ` or a line break",
            ));
        }
        let mut parts = token.split('.');
        let (Some(header), Some(payload), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(malformed("expected three dot-separated parts"));
        };
        let signature: [u8; 64] = URL_SAFE_NO_PAD
            .decode(signature)
            .ok()
            .and_then(|bytes| bytes.try_into().ok())
            .ok_or_else(|| malformed("the signature is not 64 base64url bytes"))?;
        let signed = &token[..header.len() + 1 + payload.len()];
        self.key
            .verifying_key()
            .verify(signed.as_bytes(), &Signature::from_bytes(&signature))
            .map_err(|_| AuthError::BadSignature)?;
        let header = URL_SAFE_NO_PAD
            .decode(header)
            .map_err(|_| malformed("the header is not base64url"))?;
        if header != HEADER.as_bytes() {
            return Err(malformed("unexpected header"));
        }
        let claims: Claims = URL_SAFE_NO_PAD
            .decode(payload)
            .ok()
            .and_then(|json| serde_json::from_slice(&json).ok())
            .ok_or_else(|| malformed("the payload is not base64url JSON claims"))?;
        Ok(identity_for(&claims.iss, &claims.sub))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_proves_the_identity_it_was_issued_for() {
        let authority = Authority::generate("worldline-test");
        let (identity, token) = authority.new_identity();
        assert_eq!(authority.verify(&token), Ok(identity));
        let (other, _) = authority.new_identity();
        assert_ne!(identity, other);
    }

    #[test]
    fn the_same_key_verifies_after_a_restart() {
        let authority = Authority::generate("worldline-test");
        let (identity, token) = authority.new_identity();
        let restarted = Authority::from_secret("worldline-test", authority.secret());
        assert_eq!(restarted.verify(&token), Ok(identity));
    }

    #[test]
    fn altered_foreign_and_garbage_tokens_are_refused() {
        let authority = Authority::generate("worldline-test");
        let (_, token) = authority.new_identity();
        let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
        parts[1] = URL_SAFE_NO_PAD.encode(r#"{"iss":"worldline-test","sub":"admin","iat":0}"#);
        assert_eq!(
            authority.verify(&parts.join(".")),
            Err(AuthError::BadSignature)
        );
        let (_, foreign) = Authority::generate("worldline-test").new_identity();
        assert_eq!(authority.verify(&foreign), Err(AuthError::BadSignature));
        assert_eq!(
            authority.verify(&format!("{token}\n")),
            Err(AuthError::Malformed(
                "it contains whitespace; send the token alone, without `Bearer ` or a line break"
                    .into()
            ))
        );
        for garbage in [
            "",
            "a.b",
            "a.b.c.d",
            "x.y.z",
            &format!("{}.{}.!!", parts[0], parts[1]),
        ] {
            assert!(
                matches!(authority.verify(garbage), Err(AuthError::Malformed(_))),
                "{garbage:?}"
            );
        }
    }
}
