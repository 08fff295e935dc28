//! Proof bundles in warg's protobuf form (`proto/warg/transparency/proofs.proto`), which the
//! API carries as base64 inside JSON.
//!
//! ```text
//! LogProofBundle     { uint32 log_length = 1; repeated uint32 consistent_lengths = 2;
//!                      repeated uint32 included_indices = 3; repeated HashEntry hashes = 4; }
//! HashEntry          { uint32 index = 1; bytes hash = 2; }
//! MapProofBundle     { repeated MapInclusionProof proofs = 1; }
//! MapInclusionProof  { repeated OptionalHash hashes = 1; }
//! OptionalHash       { optional bytes hash = 1; }
//! ```
//!
//! The proofs themselves, and their verification, are `cairn-log`'s.

use cairn_log::{Hash, LogProofBundle, MapProof, MAP_HEIGHT};

use crate::protobuf::{Reader, WireError, Writer};

/// Why a proof bundle could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProofDecodeError {
    /// Not valid protobuf.
    #[error(transparent)]
    Wire(#[from] WireError),
    /// A hash that is not 32 bytes.
    #[error("a proof hash has {0} bytes, not 32")]
    HashLength(usize),
    /// A map proof with more siblings than the map has levels.
    #[error("a map proof has {0} siblings, more than {MAP_HEIGHT}")]
    TooManySiblings(usize),
}

fn hash_from(bytes: &[u8]) -> Result<Hash, ProofDecodeError> {
    Hash::from_slice(bytes).map_err(|_| ProofDecodeError::HashLength(bytes.len()))
}

/// Encodes a log proof bundle.
pub fn encode_log_bundle(bundle: &LogProofBundle) -> Vec<u8> {
    let mut w = Writer::new();
    w.varint_field(1, u64::from(bundle.log_length));
    w.packed_u32_field(2, &bundle.consistent_lengths);
    w.packed_u32_field(3, &bundle.included_indices);
    for (index, hash) in &bundle.hashes {
        w.message_field(4, |w| {
            w.varint_field(1, u64::from(*index));
            w.bytes_field(2, hash.as_bytes());
        });
    }
    w.finish()
}

/// Decodes a log proof bundle. The values are not checked here; verification checks them.
pub fn decode_log_bundle(bytes: &[u8]) -> Result<LogProofBundle, ProofDecodeError> {
    let mut bundle = LogProofBundle::default();
    let mut reader = Reader::new(bytes);
    while let Some((field, value)) = reader.next_field()? {
        match field {
            1 => bundle.log_length = value.uint32(field)?,
            2 => value.repeated_u32(field, &mut bundle.consistent_lengths)?,
            3 => value.repeated_u32(field, &mut bundle.included_indices)?,
            4 => {
                let (mut index, mut hash) = (0, None);
                let mut entry = Reader::new(value.bytes(field)?);
                while let Some((field, value)) = entry.next_field()? {
                    match field {
                        1 => index = value.uint32(field)?,
                        2 => hash = Some(hash_from(value.bytes(field)?)?),
                        _ => {}
                    }
                }
                bundle
                    .hashes
                    .push((index, hash.ok_or(ProofDecodeError::HashLength(0))?));
            }
            _ => {}
        }
    }
    Ok(bundle)
}

/// Encodes map proofs, in order, as one bundle.
pub fn encode_map_bundle(proofs: &[MapProof]) -> Vec<u8> {
    let mut w = Writer::new();
    for proof in proofs {
        w.message_field(1, |w| {
            for sibling in &proof.siblings {
                w.message_field(1, |w| {
                    if let Some(hash) = sibling {
                        w.present_bytes_field(1, hash.as_bytes());
                    }
                });
            }
        });
    }
    w.finish()
}

/// Decodes a map proof bundle.
pub fn decode_map_bundle(bytes: &[u8]) -> Result<Vec<MapProof>, ProofDecodeError> {
    let mut proofs = Vec::new();
    let mut reader = Reader::new(bytes);
    while let Some((field, value)) = reader.next_field()? {
        if field != 1 {
            continue;
        }
        let mut siblings = Vec::new();
        let mut proof = Reader::new(value.bytes(field)?);
        while let Some((field, value)) = proof.next_field()? {
            if field != 1 {
                continue;
            }
            if siblings.len() == MAP_HEIGHT {
                return Err(ProofDecodeError::TooManySiblings(MAP_HEIGHT + 1));
            }
            let mut hash = None;
            let mut optional = Reader::new(value.bytes(field)?);
            while let Some((field, value)) = optional.next_field()? {
                if field == 1 {
                    hash = Some(hash_from(value.bytes(field)?)?);
                }
            }
            siblings.push(hash);
        }
        proofs.push(MapProof { siblings });
    }
    Ok(proofs)
}
