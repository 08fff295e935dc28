//! Skeletons: a component's bytes with each nested module and component replaced by a
//! reference to its fragment.
//!
//! Encoding (see `docs/split-format.md` for the full rules):
//!
//! ```text
//! skeleton := "\0csk" 01 00 00 00  piece*
//! piece    := 0x00 len:u32leb  bytes[len]          ; literal bytes, copied verbatim
//!           | 0x01 size:u32leb digest[32]          ; a core module: the module blob
//!           | 0x02 size:u32leb digest[32]          ; a component: its skeleton blob
//! ```
//!
//! A skeleton is canonical: literals are non-empty and never adjacent, integers are minimal
//! LEB128, and the pieces, read as a component, frame correctly: the literals hold the
//! preamble and every section header byte for byte as in the original (so non-minimal size
//! encodings survive), every core module section (id 1) and component section (id 4) is
//! followed by exactly one reference whose size is the section's size, and every other
//! section's payload lies in literals. [`Skeleton::decode`] refuses anything else, so a
//! component has exactly one skeleton.

use crate::binary::{
    read_u32_leb, COMPONENT_SECTION, COMPONENT_VERSION, CORE_MODULE_SECTION, PREAMBLE_LEN,
    WASM_MAGIC,
};
use crate::digest::BlobId;

/// The 8 bytes every skeleton starts with.
pub const SKELETON_MAGIC: [u8; 8] = *b"\0csk\x01\0\0\0";

const LITERAL: u8 = 0x00;
const MODULE_REF: u8 = 0x01;
const COMPONENT_REF: u8 = 0x02;

/// One piece of a skeleton.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Piece<'a> {
    /// Bytes copied verbatim into the joined binary.
    Literal(&'a [u8]),
    /// A core module: the module blob with this digest, `size` bytes long.
    Module {
        /// Size of the module in bytes.
        size: u32,
        /// BlobId of the module blob.
        digest: BlobId,
    },
    /// A nested component: the skeleton blob with this digest, joining to `size` bytes.
    Component {
        /// Size of the joined nested component in bytes.
        size: u32,
        /// BlobId of the nested component's skeleton blob.
        digest: BlobId,
    },
}

/// Why a skeleton blob was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SkeletonError {
    /// The blob does not start with [`SKELETON_MAGIC`].
    #[error("not a cairn skeleton (bad magic or version)")]
    BadMagic,
    /// The blob ends inside a piece.
    #[error("skeleton truncated at offset {offset}")]
    Truncated {
        /// Offset in the skeleton blob.
        offset: usize,
    },
    /// A piece tag other than 0, 1 or 2.
    #[error("unknown piece tag {tag:#04x} at offset {offset}")]
    UnknownPiece {
        /// The tag found.
        tag: u8,
        /// Offset in the skeleton blob.
        offset: usize,
    },
    /// The encoding is valid but not the canonical one (an empty or split literal, a
    /// non-minimal integer).
    #[error("non-canonical skeleton encoding at offset {offset}: {why}")]
    NotCanonical {
        /// Offset in the skeleton blob.
        offset: usize,
        /// What rule is broken.
        why: &'static str,
    },
    /// The pieces do not frame a component as the split would have produced it.
    #[error("skeleton does not describe a well-framed component at joined offset {offset}: {why}")]
    BadFraming {
        /// Offset in the joined component.
        offset: u64,
        /// What is wrong.
        why: &'static str,
    },
}

/// A decoded, validated skeleton.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skeleton<'a> {
    pieces: Vec<Piece<'a>>,
    joined_size: u64,
}

impl<'a> Skeleton<'a> {
    /// Decodes and validates a skeleton blob.
    pub fn decode(bytes: &'a [u8]) -> Result<Self, SkeletonError> {
        if bytes.len() < SKELETON_MAGIC.len() || bytes[..SKELETON_MAGIC.len()] != SKELETON_MAGIC {
            return Err(SkeletonError::BadMagic);
        }
        let mut pos = SKELETON_MAGIC.len();
        let mut pieces = Vec::new();
        let mut framing = FramingCheck::default();
        while pos < bytes.len() {
            let tag_offset = pos;
            let tag = bytes[pos];
            pos += 1;
            let (value, leb_len) = read_canonical_u32(bytes, pos)?;
            pos += leb_len;
            let piece = match tag {
                LITERAL => {
                    let end = pos
                        .checked_add(value as usize)
                        .filter(|&end| end <= bytes.len())
                        .ok_or(SkeletonError::Truncated {
                            offset: bytes.len(),
                        })?;
                    if value == 0 {
                        return Err(SkeletonError::NotCanonical {
                            offset: tag_offset,
                            why: "empty literal",
                        });
                    }
                    if matches!(pieces.last(), Some(Piece::Literal(_))) {
                        return Err(SkeletonError::NotCanonical {
                            offset: tag_offset,
                            why: "two adjacent literals",
                        });
                    }
                    let literal = &bytes[pos..end];
                    pos = end;
                    framing.literal(literal)?;
                    Piece::Literal(literal)
                }
                MODULE_REF | COMPONENT_REF => {
                    let digest_bytes: [u8; 32] = bytes
                        .get(pos..pos + 32)
                        .ok_or(SkeletonError::Truncated {
                            offset: bytes.len(),
                        })?
                        .try_into()
                        .expect("slice of 32");
                    pos += 32;
                    let digest = BlobId::from_bytes(digest_bytes);
                    if tag == MODULE_REF {
                        framing.reference(CORE_MODULE_SECTION, value)?;
                        Piece::Module {
                            size: value,
                            digest,
                        }
                    } else {
                        framing.reference(COMPONENT_SECTION, value)?;
                        Piece::Component {
                            size: value,
                            digest,
                        }
                    }
                }
                tag => {
                    return Err(SkeletonError::UnknownPiece {
                        tag,
                        offset: tag_offset,
                    })
                }
            };
            pieces.push(piece);
        }
        let joined_size = framing.finish()?;
        Ok(Skeleton {
            pieces,
            joined_size,
        })
    }

    /// The pieces in join order.
    pub fn pieces(&self) -> &[Piece<'a>] {
        &self.pieces
    }

    /// Size in bytes of the component this skeleton joins to.
    pub fn joined_size(&self) -> u64 {
        self.joined_size
    }
}

fn read_canonical_u32(bytes: &[u8], pos: usize) -> Result<(u32, usize), SkeletonError> {
    let (value, len) = read_u32_leb(&bytes[pos..], pos).map_err(|_| SkeletonError::Truncated {
        offset: bytes.len(),
    })?;
    if len != leb_len(value) {
        return Err(SkeletonError::NotCanonical {
            offset: pos,
            why: "non-minimal LEB128 integer",
        });
    }
    Ok((value, len))
}

fn leb_len(value: u32) -> usize {
    match value {
        0..=0x7f => 1,
        0x80..=0x3fff => 2,
        0x4000..=0x1f_ffff => 3,
        0x20_0000..=0xfff_ffff => 4,
        _ => 5,
    }
}

fn write_u32_leb(out: &mut Vec<u8>, mut value: u32) {
    loop {
        let byte = (value & 0x7f) as u8;
        value >>= 7;
        if value == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

/// Builds a skeleton blob piece by piece, as the split walks a component.
#[derive(Debug)]
pub(crate) struct SkeletonWriter {
    bytes: Vec<u8>,
}

impl SkeletonWriter {
    pub(crate) fn new() -> Self {
        SkeletonWriter {
            bytes: SKELETON_MAGIC.to_vec(),
        }
    }

    /// Appends a literal. The caller never passes an empty literal nor two in a row: the
    /// split emits the bytes between two fragments as one literal, and those always hold at
    /// least a section header.
    pub(crate) fn literal(&mut self, literal: &[u8]) {
        debug_assert!(!literal.is_empty());
        self.bytes.push(LITERAL);
        write_u32_leb(&mut self.bytes, literal.len() as u32);
        self.bytes.extend_from_slice(literal);
    }

    pub(crate) fn module(&mut self, size: u32, digest: &BlobId) {
        self.reference(MODULE_REF, size, digest);
    }

    pub(crate) fn component(&mut self, size: u32, digest: &BlobId) {
        self.reference(COMPONENT_REF, size, digest);
    }

    fn reference(&mut self, tag: u8, size: u32, digest: &BlobId) {
        self.bytes.push(tag);
        write_u32_leb(&mut self.bytes, size);
        self.bytes.extend_from_slice(digest.as_bytes());
    }

    pub(crate) fn finish(self) -> Vec<u8> {
        self.bytes
    }
}

/// Follows the framing of the joined component while a skeleton is decoded.
#[derive(Debug, Default)]
struct FramingCheck {
    /// Bytes of the joined component seen so far.
    position: u64,
    state: FramingState,
}

#[derive(Debug, Default)]
enum FramingState {
    /// Inside the 8-byte preamble, this many bytes in.
    #[default]
    Preamble,
    /// At a section boundary: the next byte is a section id.
    SectionId,
    /// Reading a section's size; `header` holds the LEB128 bytes read so far.
    SectionSize { id: u8, header: Vec<u8> },
    /// Inside a literal section payload, with this many bytes left.
    Payload { left: u64 },
    /// A module or component section header was read; a reference must follow.
    Reference { id: u8, size: u32 },
}

impl FramingCheck {
    fn fail(&self, why: &'static str) -> SkeletonError {
        SkeletonError::BadFraming {
            offset: self.position,
            why,
        }
    }

    fn literal(&mut self, mut bytes: &[u8]) -> Result<(), SkeletonError> {
        while !bytes.is_empty() {
            match &mut self.state {
                FramingState::Preamble => {
                    let at = self.position as usize;
                    let take = (PREAMBLE_LEN - at).min(bytes.len());
                    let expected = [WASM_MAGIC, COMPONENT_VERSION].concat();
                    if bytes[..take] != expected[at..at + take] {
                        return Err(self.fail("the preamble is not a component's"));
                    }
                    if at + take == PREAMBLE_LEN {
                        self.state = FramingState::SectionId;
                    }
                    self.advance(take, &mut bytes);
                }
                FramingState::SectionId => {
                    self.state = FramingState::SectionSize {
                        id: bytes[0],
                        header: Vec::with_capacity(5),
                    };
                    self.advance(1, &mut bytes);
                }
                FramingState::SectionSize { id, header } => {
                    let id = *id;
                    header.push(bytes[0]);
                    let size = match read_u32_leb(header, 0) {
                        Ok((size, _)) => Some(size),
                        Err(crate::SplitError::Truncated { .. }) => None,
                        Err(_) => return Err(self.fail("malformed section size")),
                    };
                    if let Some(size) = size {
                        self.state = if id == CORE_MODULE_SECTION || id == COMPONENT_SECTION {
                            FramingState::Reference { id, size }
                        } else if size == 0 {
                            FramingState::SectionId
                        } else {
                            FramingState::Payload {
                                left: u64::from(size),
                            }
                        };
                    }
                    self.advance(1, &mut bytes);
                }
                FramingState::Payload { left } => {
                    let take = (*left).min(bytes.len() as u64);
                    *left -= take;
                    if *left == 0 {
                        self.state = FramingState::SectionId;
                    }
                    self.advance(take as usize, &mut bytes);
                }
                FramingState::Reference { .. } => {
                    return Err(self.fail("a module or component section holds literal bytes"))
                }
            }
        }
        Ok(())
    }

    fn advance(&mut self, n: usize, bytes: &mut &[u8]) {
        self.position += n as u64;
        *bytes = &bytes[n..];
    }

    fn reference(&mut self, section_id: u8, size: u32) -> Result<(), SkeletonError> {
        match self.state {
            FramingState::Reference { id, size: declared } if id == section_id => {
                if declared != size {
                    return Err(self.fail("a reference's size differs from its section's"));
                }
                self.position += u64::from(size);
                self.state = FramingState::SectionId;
                Ok(())
            }
            FramingState::Reference { .. } => {
                Err(self.fail("a reference of the wrong kind for its section"))
            }
            _ => Err(self.fail("a reference outside a module or component section")),
        }
    }

    fn finish(self) -> Result<u64, SkeletonError> {
        match self.state {
            FramingState::SectionId => Ok(self.position),
            FramingState::Preamble => Err(self.fail("the skeleton ends inside the preamble")),
            _ => Err(self.fail("the skeleton ends inside a section")),
        }
    }
}
