//! ECDSA P-256 keys, key ids and signatures in warg's text forms, and the signing domains.
//!
//! * public key: `ecdsa-p256:` + base64 of the SEC1 point; always printed compressed (33 bytes);
//! * private key: `ecdsa-p256:` + base64 of the 32-byte big-endian scalar; never printed by
//!   `Debug`;
//! * key id: `sha256:` + hex SHA-256 of the public key's text form;
//! * signature: `ecdsa-p256:` + base64 of the DER signature over SHA-256 of the message.
//!
//! Verification uses `ring` (the fastest well-kept P-256 verifier available; see the crate's
//! benchmark) and accepts both low-S and high-S signatures, as the reference does. Key parsing
//! and deterministic (RFC 6979) signing use the pure-Rust `p256` crate.

use std::fmt;
use std::str::FromStr;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use p256::ecdsa::signature::Signer as _;

use crate::digest::{text_serde, Digest, KeyId};

const PREFIX: &str = "ecdsa-p256:";

/// The longest DER encoding of a P-256 signature (two 33-byte integers plus headers).
const MAX_DER_SIGNATURE: usize = 72;

/// What a signature signs. The message signed is the domain's prefix followed by the content.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SigningDomain {
    /// The protobuf bytes of a package record.
    PackageRecord,
    /// The protobuf bytes of an operator record.
    OperatorRecord,
    /// The prefix encoding of a timestamped checkpoint.
    Checkpoint,
}

impl SigningDomain {
    /// The exact bytes put in front of the content.
    pub fn prefix(self) -> &'static [u8] {
        match self {
            SigningDomain::PackageRecord => b"WARG-PACKAGE-RECORD-SIGNATURE-V0:",
            SigningDomain::OperatorRecord => b"WARG-OPERATOR-RECORD-SIGNATURE-V0:",
            SigningDomain::Checkpoint => b"WARG-CHECKPOINT-SIGNATURE-V0:",
        }
    }

    fn message(self, content: &[u8]) -> Vec<u8> {
        [self.prefix(), content].concat()
    }
}

/// Why a key or signature was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// Not `ecdsa-p256:` followed by base64.
    #[error("{what} must be `ecdsa-p256:` followed by base64")]
    BadText {
        /// "public key", "private key" or "signature".
        what: &'static str,
    },
    /// The bytes are not a point on P-256.
    #[error("not a valid P-256 public key")]
    BadPublicKey,
    /// The bytes are not a valid P-256 scalar.
    #[error("not a valid P-256 private key")]
    BadPrivateKey,
    /// The signature is longer than any DER P-256 signature.
    #[error("signature of {0} bytes is longer than a P-256 signature can be")]
    SignatureTooLong(usize),
    /// The system's random number generator failed.
    #[error("cannot generate a key: the system random number generator failed")]
    Random,
}

/// A signature did not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("signature verification failed")]
pub struct BadSignature;

fn decode_text(text: &str, what: &'static str) -> Result<Vec<u8>, KeyError> {
    let b64 = text
        .strip_prefix(PREFIX)
        .ok_or(KeyError::BadText { what })?;
    BASE64.decode(b64).map_err(|_| KeyError::BadText { what })
}

/// An ECDSA P-256 public key.
#[derive(Clone)]
pub struct PublicKey {
    key: p256::ecdsa::VerifyingKey,
    /// The SEC1 uncompressed point, as `ring` takes it.
    uncompressed: [u8; 65],
    /// The canonical text form (compressed point).
    text: String,
}

impl PublicKey {
    fn from_verifying_key(key: p256::ecdsa::VerifyingKey) -> Self {
        let uncompressed: [u8; 65] = key
            .to_encoded_point(false)
            .as_bytes()
            .try_into()
            .expect("an uncompressed P-256 point has 65 bytes");
        let text = format!(
            "{PREFIX}{}",
            BASE64.encode(key.to_encoded_point(true).as_bytes())
        );
        PublicKey {
            key,
            uncompressed,
            text,
        }
    }

    /// Parses a SEC1 point, compressed or not.
    pub fn from_sec1_bytes(bytes: &[u8]) -> Result<Self, KeyError> {
        let key = p256::ecdsa::VerifyingKey::from_sec1_bytes(bytes)
            .map_err(|_| KeyError::BadPublicKey)?;
        Ok(Self::from_verifying_key(key))
    }

    /// The key's id: SHA-256 of its text form.
    pub fn fingerprint(&self) -> KeyId {
        KeyId(Digest::of(self.text.as_bytes()))
    }

    /// Verifies a signature over `domain`'s prefix followed by `content`.
    pub fn verify(
        &self,
        domain: SigningDomain,
        content: &[u8],
        signature: &Signature,
    ) -> Result<(), BadSignature> {
        self.verify_message(&domain.message(content), signature)
    }

    /// Verifies a signature over exactly `message` (hashed with SHA-256). Prefer
    /// [`PublicKey::verify`], which adds the domain separation every warg signature uses.
    pub fn verify_message(
        &self,
        message: &[u8],
        signature: &Signature,
    ) -> Result<(), BadSignature> {
        ring::signature::UnparsedPublicKey::new(
            &ring::signature::ECDSA_P256_SHA256_ASN1,
            &self.uncompressed,
        )
        .verify(message, &signature.der)
        .map_err(|_| BadSignature)
    }

    /// The key as the pure-Rust `p256` crate's type.
    pub fn to_p256(&self) -> &p256::ecdsa::VerifyingKey {
        &self.key
    }
}

impl PartialEq for PublicKey {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}

impl Eq for PublicKey {}

impl FromStr for PublicKey {
    type Err = KeyError;
    fn from_str(text: &str) -> Result<Self, KeyError> {
        Self::from_sec1_bytes(&decode_text(text, "public key")?)
    }
}

impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", self.text)
    }
}

text_serde!(PublicKey);

/// An ECDSA P-256 private key. Its `Debug` form shows only the public key's id.
#[derive(Clone)]
pub struct PrivateKey {
    key: p256::ecdsa::SigningKey,
    public: PublicKey,
}

impl PrivateKey {
    /// A new random key from the operating system's random number generator.
    pub fn generate() -> Result<Self, KeyError> {
        use ring::rand::SecureRandom as _;
        let rng = ring::rand::SystemRandom::new();
        loop {
            let mut scalar = [0u8; 32];
            rng.fill(&mut scalar).map_err(|_| KeyError::Random)?;
            // Fewer than 1 in 2^32 scalars are out of range; draw again.
            if let Ok(key) = Self::from_scalar_bytes(&scalar) {
                return Ok(key);
            }
        }
    }

    /// A key from its 32-byte big-endian scalar.
    pub fn from_scalar_bytes(bytes: &[u8]) -> Result<Self, KeyError> {
        let key =
            p256::ecdsa::SigningKey::from_slice(bytes).map_err(|_| KeyError::BadPrivateKey)?;
        let public = PublicKey::from_verifying_key(*key.verifying_key());
        Ok(PrivateKey { key, public })
    }

    /// The matching public key.
    pub fn public_key(&self) -> &PublicKey {
        &self.public
    }

    /// Signs `domain`'s prefix followed by `content` (deterministic RFC 6979 nonces).
    pub fn sign(&self, domain: SigningDomain, content: &[u8]) -> Signature {
        self.sign_message(&domain.message(content))
    }

    /// Signs exactly `message`. Prefer [`PrivateKey::sign`].
    pub fn sign_message(&self, message: &[u8]) -> Signature {
        let signature: p256::ecdsa::Signature = self.key.sign(message);
        Signature {
            der: signature.to_der().as_bytes().to_vec(),
        }
    }

    /// The text form, `ecdsa-p256:` + base64 of the scalar. Handle with care.
    pub fn to_secret_text(&self) -> String {
        format!("{PREFIX}{}", BASE64.encode(self.key.to_bytes()))
    }
}

impl FromStr for PrivateKey {
    type Err = KeyError;
    fn from_str(text: &str) -> Result<Self, KeyError> {
        let bytes = decode_text(text.trim(), "private key")?;
        if bytes.len() != 32 {
            return Err(KeyError::BadPrivateKey);
        }
        Self::from_scalar_bytes(&bytes)
    }
}

impl fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PrivateKey(for {})", self.public.fingerprint())
    }
}

/// A DER-encoded ECDSA P-256 signature.
#[derive(Clone, PartialEq, Eq)]
pub struct Signature {
    der: Vec<u8>,
}

impl Signature {
    /// Wraps DER bytes; whether they are a valid signature is decided by verification.
    pub fn from_der(der: &[u8]) -> Result<Self, KeyError> {
        if der.len() > MAX_DER_SIGNATURE {
            return Err(KeyError::SignatureTooLong(der.len()));
        }
        Ok(Signature { der: der.to_vec() })
    }

    /// The DER bytes.
    pub fn as_der(&self) -> &[u8] {
        &self.der
    }
}

impl FromStr for Signature {
    type Err = KeyError;
    fn from_str(text: &str) -> Result<Self, KeyError> {
        if text.len() > PREFIX.len() + 4 * MAX_DER_SIGNATURE.div_ceil(3) {
            return Err(KeyError::BadText { what: "signature" });
        }
        Self::from_der(&decode_text(text, "signature")?)
    }
}

impl fmt::Display for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{PREFIX}{}", BASE64.encode(&self.der))
    }
}

impl fmt::Debug for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Signature({self})")
    }
}

text_serde!(Signature);
