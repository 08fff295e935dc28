//! Digests in warg's text form (`sha256:<lowercase hex>`) and the identifiers built on them:
//! record ids, log ids and key ids.
//!
//! Parsing accepts exactly one form: the algorithm `sha256`, one colon, 64 lowercase hex
//! digits. Uppercase hex and other algorithms are refused, as the reference refuses them, so
//! every digest has one text form and text comparisons are digest comparisons.

use std::fmt;
use std::str::FromStr;

use sha2::{Digest as _, Sha256};

/// Why a digest string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DigestError {
    /// The text has no `algorithm:` prefix.
    #[error("digest {0:?} has no `sha256:` prefix")]
    MissingAlgorithm(String),
    /// An algorithm other than `sha256`.
    #[error("unsupported hash algorithm {0:?} (only sha256 is supported)")]
    UnsupportedAlgorithm(String),
    /// The hex part is not 64 lowercase hex digits.
    #[error("digest {0:?} is not 64 lowercase hex digits after `sha256:`")]
    BadHex(String),
}

fn clip(text: &str) -> String {
    text.chars().take(100).collect()
}

/// A SHA-256 digest in warg's text form.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest([u8; 32]);

impl Digest {
    /// Wraps 32 raw bytes.
    pub const fn from_bytes(bytes: [u8; 32]) -> Self {
        Digest(bytes)
    }

    /// The SHA-256 of `data`.
    pub fn of(data: &[u8]) -> Self {
        Digest(Sha256::digest(data).into())
    }

    /// The SHA-256 of the concatenation of `parts`.
    pub fn of_parts(parts: &[&[u8]]) -> Self {
        let mut hasher = Sha256::new();
        for part in parts {
            hasher.update(part);
        }
        Digest(hasher.finalize().into())
    }

    /// The raw bytes.
    pub const fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The same bytes as a Merkle hash.
    pub fn to_hash(self) -> cairn_log::Hash {
        cairn_log::Hash::from_bytes(self.0)
    }
}

impl From<cairn_log::Hash> for Digest {
    fn from(hash: cairn_log::Hash) -> Self {
        Digest(hash.to_bytes())
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Written in one piece from the stack: digests are formatted for every stored row
        // and every answer, and `hex::encode` builds a string a character at a time.
        let mut text = [0u8; 71];
        text[..7].copy_from_slice(b"sha256:");
        hex::encode_to_slice(self.0, &mut text[7..]).expect("room for 64 hex digits");
        f.write_str(std::str::from_utf8(&text).expect("hex digits are ASCII"))
    }
}

/// The value of each lowercase hex digit, by byte; `INVALID` for every other byte.
const HEX_VALUES: [u8; 256] = {
    let mut values = [INVALID; 256];
    let mut digit = 0;
    while digit < 16 {
        values[b"0123456789abcdef"[digit] as usize] = digit as u8;
        digit += 1;
    }
    values
};
const INVALID: u8 = 0xff;

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl FromStr for Digest {
    type Err = DigestError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let Some((algorithm, hex_part)) = text.split_once(':') else {
            return Err(DigestError::MissingAlgorithm(clip(text)));
        };
        if algorithm != "sha256" {
            return Err(DigestError::UnsupportedAlgorithm(clip(algorithm)));
        }
        if hex_part.len() != 64 {
            return Err(DigestError::BadHex(clip(text)));
        }
        let mut bytes = [0u8; 32];
        for (byte, pair) in bytes.iter_mut().zip(hex_part.as_bytes().chunks_exact(2)) {
            let (high, low) = (HEX_VALUES[pair[0] as usize], HEX_VALUES[pair[1] as usize]);
            if high == INVALID || low == INVALID {
                return Err(DigestError::BadHex(clip(text)));
            }
            *byte = high << 4 | low;
        }
        Ok(Digest(bytes))
    }
}

macro_rules! text_serde {
    ($name:ident) => {
        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.collect_str(self)
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let text =
                    <std::borrow::Cow<'de, str> as serde::Deserialize>::deserialize(deserializer)?;
                text.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}
pub(crate) use text_serde;

text_serde!(Digest);

macro_rules! digest_newtype {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(pub Digest);

        impl $name {
            /// The underlying digest.
            pub const fn digest(&self) -> &Digest {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0, f)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.0)
            }
        }

        impl FromStr for $name {
            type Err = DigestError;
            fn from_str(text: &str) -> Result<Self, Self::Err> {
                text.parse().map($name)
            }
        }

        text_serde!($name);
    };
}

digest_newtype!(
    /// The id of a record: SHA-256 of a domain prefix and the record's exact protobuf bytes.
    /// It is also the record's fetch token and the next record's `prev`.
    RecordId
);

digest_newtype!(
    /// The id of a log: the operator log's fixed id, or the hash of a package name.
    LogId
);

digest_newtype!(
    /// The fingerprint of a public key: SHA-256 of the key's text form.
    KeyId
);

impl RecordId {
    /// The id of a package record with these exact protobuf bytes.
    pub fn package_record(content_bytes: &[u8]) -> Self {
        RecordId(Digest::of_parts(&[
            b"WARG-PACKAGE-LOG-RECORD-V0:",
            content_bytes,
        ]))
    }

    /// The id of an operator record with these exact protobuf bytes.
    pub fn operator_record(content_bytes: &[u8]) -> Self {
        RecordId(Digest::of_parts(&[
            b"WARG-OPERATOR-LOG-RECORD-V0:",
            content_bytes,
        ]))
    }
}

impl LogId {
    /// The operator log's id.
    pub fn operator_log() -> Self {
        LogId(Digest::of(b"WARG-OPERATOR-LOG-ID-V0"))
    }

    /// The id of a package's log.
    pub fn package_log(name: &crate::PackageName) -> Self {
        let mut input = b"WARG-PACKAGE-LOG-ID-V0:WARG-PACKAGE-ID-V0".to_vec();
        crate::prefix::write_str(&mut input, name.as_str());
        LogId(Digest::of(&input))
    }
}
