//! The hash type: its one text form and reading it from bytes.

use cairn_log::{Hash, HashError};

const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

#[test]
fn a_hash_displays_as_64_lowercase_hex_digits() {
    assert_eq!(Hash::sha256(b"").to_string(), EMPTY_SHA256);
    assert_eq!(
        format!("{:?}", Hash::sha256(b"")),
        format!("Hash({EMPTY_SHA256})")
    );
}

#[test]
fn a_hash_parses_back_from_its_display() {
    let hash = Hash::sha256(b"cairn");
    assert_eq!(hash.to_string().parse::<Hash>(), Ok(hash));
}

#[test]
fn uppercase_or_short_hex_is_refused() {
    assert_eq!(
        EMPTY_SHA256.to_uppercase().parse::<Hash>(),
        Err(HashError::InvalidHexDigit)
    );
    assert_eq!(
        EMPTY_SHA256[..62].parse::<Hash>(),
        Err(HashError::WrongHexLength { actual: 62 })
    );
    assert_eq!(
        format!("sha256:{EMPTY_SHA256}").parse::<Hash>(),
        Err(HashError::WrongHexLength { actual: 71 })
    );
}

#[test]
fn a_hash_is_read_only_from_exactly_32_bytes() {
    assert_eq!(
        Hash::from_slice(&[0; 31]),
        Err(HashError::WrongLength { actual: 31 })
    );
    assert_eq!(
        Hash::from_slice(&[0; 33]),
        Err(HashError::WrongLength { actual: 33 })
    );
    assert_eq!(Hash::from_slice(&[9; 32]), Ok(Hash::from_bytes([9; 32])));
}
