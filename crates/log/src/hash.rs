//! The 32-byte SHA-256 hash type and the domain-separated hashing shared by the log and the map.
//!
//! Leaves and branches are hashed with different one-byte prefixes (`0x00` and `0x01`, RFC 6962
//! section 2.1), so a leaf can never be passed off as an interior node. Nothing here may ever
//! hash without one of those prefixes, except the fixed empty-log root.

use std::fmt;
use std::str::FromStr;

use sha2::{Digest, Sha256};

use crate::error::HashError;

/// Length in bytes of every hash in this crate.
pub const HASH_LEN: usize = 32;

/// A SHA-256 digest: a leaf hash, a node hash or a root.
///
/// `Display` prints 64 lowercase hex digits without an algorithm prefix; warg's text form is
/// `sha256:` followed by this.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Hash([u8; HASH_LEN]);

impl Hash {
    /// Wraps 32 raw digest bytes.
    pub const fn from_bytes(bytes: [u8; HASH_LEN]) -> Self {
        Hash(bytes)
    }

    /// Reads a hash from a byte slice, which must be exactly 32 bytes long.
    pub fn from_slice(bytes: &[u8]) -> Result<Self, HashError> {
        let array: [u8; HASH_LEN] = bytes.try_into().map_err(|_| HashError::WrongLength {
            actual: bytes.len(),
        })?;
        Ok(Hash(array))
    }

    /// The raw digest bytes.
    pub const fn as_bytes(&self) -> &[u8; HASH_LEN] {
        &self.0
    }

    /// The raw digest bytes, by value.
    pub const fn to_bytes(self) -> [u8; HASH_LEN] {
        self.0
    }

    /// Plain SHA-256 of `data`, with no domain prefix.
    pub fn sha256(data: &[u8]) -> Self {
        Hash(Sha256::digest(data).into())
    }

    /// Bit `index` of the digest, counting from the most significant bit of byte 0 (bit 0).
    /// `index` must be below 256.
    pub(crate) fn bit(&self, index: usize) -> bool {
        (self.0[index / 8] >> (7 - index % 8)) & 1 == 1
    }
}

impl fmt::Display for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::LowerHex::fmt(self, f)
    }
}

impl fmt::LowerHex for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for byte in self.0 {
            write!(f, "{byte:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Hash({self})")
    }
}

impl FromStr for Hash {
    type Err = HashError;

    /// Parses exactly 64 lowercase hex digits. Uppercase is rejected, as warg rejects it, so
    /// that every hash has one text form.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.as_bytes();
        if text.len() != 2 * HASH_LEN {
            return Err(HashError::WrongHexLength { actual: text.len() });
        }
        let mut bytes = [0u8; HASH_LEN];
        for (byte, pair) in bytes.iter_mut().zip(text.chunks_exact(2)) {
            *byte = (lower_hex_digit(pair[0])? << 4) | lower_hex_digit(pair[1])?;
        }
        Ok(Hash(bytes))
    }
}

fn lower_hex_digit(digit: u8) -> Result<u8, HashError> {
    match digit {
        b'0'..=b'9' => Ok(digit - b'0'),
        b'a'..=b'f' => Ok(digit - b'a' + 10),
        _ => Err(HashError::InvalidHexDigit),
    }
}

impl From<[u8; HASH_LEN]> for Hash {
    fn from(bytes: [u8; HASH_LEN]) -> Self {
        Hash(bytes)
    }
}

impl From<Hash> for [u8; HASH_LEN] {
    fn from(hash: Hash) -> Self {
        hash.0
    }
}

impl TryFrom<&[u8]> for Hash {
    type Error = HashError;

    fn try_from(bytes: &[u8]) -> Result<Self, Self::Error> {
        Hash::from_slice(bytes)
    }
}

impl AsRef<[u8]> for Hash {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

const LEAF_PREFIX: u8 = 0x00;
const BRANCH_PREFIX: u8 = 0x01;

/// Hash of a leaf holding `data`: `SHA256(0x00 ‖ data)`. Used by both the log and the map.
pub fn leaf_hash(data: &[u8]) -> Hash {
    let mut hasher = Sha256::new();
    hasher.update([LEAF_PREFIX]);
    hasher.update(data);
    Hash(hasher.finalize().into())
}

/// Hash of an interior node: `SHA256(0x01 ‖ left ‖ right)`. Used by both the log and the map.
pub fn branch_hash(left: &Hash, right: &Hash) -> Hash {
    let mut message = [0u8; 1 + 2 * HASH_LEN];
    message[0] = BRANCH_PREFIX;
    message[1..1 + HASH_LEN].copy_from_slice(&left.0);
    message[1 + HASH_LEN..].copy_from_slice(&right.0);
    Hash(Sha256::digest(message).into())
}

/// Root of the log with no leaves: `SHA256("")`, i.e.
/// `e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855`.
pub fn empty_log_root() -> Hash {
    Hash::sha256(b"")
}
