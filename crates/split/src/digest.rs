//! Digests that name blobs and whole split trees.
//!
//! A [`BlobId`] is the plain SHA-256 of one blob's bytes (a core module fragment or a
//! skeleton). A [`TreeDigest`] names a whole split tree; it is computed over a domain-separated
//! listing (see [`crate::manifest`]) and so never equals the plain digest of any file.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest as _, Sha256};

const PREFIX: &str = "sha256:";

/// Why a digest string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid digest {text:?}: expected `sha256:` followed by 64 lowercase hex digits")]
pub struct DigestParseError {
    text: String,
}

fn parse_sha256(text: &str) -> Result<[u8; 32], DigestParseError> {
    let err = || DigestParseError {
        text: text.chars().take(80).collect(),
    };
    let hex_part = text.strip_prefix(PREFIX).ok_or_else(err)?;
    if hex_part.len() != 64
        || !hex_part
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    {
        return Err(err());
    }
    let mut out = [0u8; 32];
    hex::decode_to_slice(hex_part, &mut out).map_err(|_| err())?;
    Ok(out)
}

macro_rules! sha256_name {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name([u8; 32]);

        impl $name {
            /// Wraps 32 raw digest bytes.
            pub const fn from_bytes(bytes: [u8; 32]) -> Self {
                Self(bytes)
            }

            /// The 32 raw digest bytes.
            pub const fn as_bytes(&self) -> &[u8; 32] {
                &self.0
            }

            /// The 64 lowercase hex digits, without the `sha256:` prefix.
            pub fn to_hex(&self) -> String {
                hex::encode(self.0)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{PREFIX}{}", hex::encode(self.0))
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({self})", stringify!($name))
            }
        }

        impl FromStr for $name {
            type Err = DigestParseError;
            fn from_str(text: &str) -> Result<Self, Self::Err> {
                parse_sha256(text).map(Self)
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.collect_str(self)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
                text.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

sha256_name!(
    /// The SHA-256 of one blob's bytes, written `sha256:<hex>`.
    BlobId
);

sha256_name!(
    /// The identity of a whole split tree, written `sha256:<hex>`. See [`crate::manifest`].
    TreeDigest
);

impl BlobId {
    /// The SHA-256 of `bytes`.
    pub fn of(bytes: &[u8]) -> Self {
        Self(Sha256::digest(bytes).into())
    }
}

/// The prefix of a raw CIDv1 over SHA-256: version 1, multicodec `raw` (0x55), multihash
/// `sha2-256` (0x12) of 32 bytes (0x20).
const CID_PREFIX: [u8; 4] = [0x01, 0x55, 0x12, 0x20];
const BASE32: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";

/// Why a CID was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a raw CIDv1 over SHA-256 (`bafkrei...`)")]
pub struct CidError;

impl BlobId {
    /// The blob's raw CIDv1 in base32 (`bafkrei...`), the IPFS name of the same bytes.
    pub fn to_cid(&self) -> String {
        let mut bytes = CID_PREFIX.to_vec();
        bytes.extend_from_slice(&self.0);
        let mut text = String::from("b");
        let (mut buffer, mut bits) = (0u32, 0u32);
        for byte in bytes {
            buffer = (buffer << 8) | u32::from(byte);
            bits += 8;
            while bits >= 5 {
                bits -= 5;
                text.push(BASE32[((buffer >> bits) & 31) as usize] as char);
            }
        }
        if bits > 0 {
            text.push(BASE32[((buffer << (5 - bits)) & 31) as usize] as char);
        }
        text
    }

    /// Reads a raw CIDv1 over SHA-256 in base32 (`bafkrei...`).
    pub fn from_cid(text: &str) -> Result<Self, CidError> {
        let body = text.strip_prefix('b').ok_or(CidError)?;
        // 36 bytes are 288 bits: 58 base32 digits, the last carrying 2 padding bits.
        if body.len() != 58 {
            return Err(CidError);
        }
        let mut bytes = Vec::with_capacity(36);
        let (mut buffer, mut bits) = (0u32, 0u32);
        for c in body.bytes() {
            let value = BASE32.iter().position(|&d| d == c).ok_or(CidError)? as u32;
            buffer = (buffer << 5) | value;
            bits += 5;
            if bits >= 8 {
                bits -= 8;
                bytes.push((buffer >> bits) as u8);
                buffer &= (1 << bits) - 1;
            }
        }
        if buffer != 0 || bytes.len() != 36 || bytes[..4] != CID_PREFIX {
            return Err(CidError);
        }
        Ok(BlobId(bytes[4..].try_into().expect("32 bytes")))
    }
}
