//! Joining blobs back into the original binary, verifying every blob as it streams.
//!
//! The join walks the tree from the manifest's root: it copies a skeleton's literals, streams
//! each core module from the [`BlobSource`] while hashing it, and descends into nested
//! skeletons. Every blob is checked against its digest and size, every skeleton is decoded
//! and validated, and the order in which blobs are first used must be exactly the manifest's,
//! so a successful join proves that the output is the binary the manifest's tree digest names.
//!
//! Bytes are written as they are verified blob by blob: when a join fails, the output holds a
//! prefix that must be discarded (the CLI writes to a temporary file and renames it only on
//! success).

use std::collections::HashMap;
use std::io::{self, Read, Write};

use sha2::{Digest as _, Sha256};

use crate::digest::BlobId;
use crate::limits::MAX_NESTING_DEPTH;
use crate::manifest::{BlobEntry, BlobKind, Manifest};
use crate::skeleton::{Piece, Skeleton, SkeletonError};
use crate::split::Split;

/// Where a join reads blobs from: a directory, a fragment cache, a network client.
pub trait BlobSource {
    /// Opens the blob `entry` for reading. The join checks its size and digest itself.
    fn open(&mut self, entry: &BlobEntry) -> io::Result<Box<dyn Read + '_>>;

    /// Whether the source already knows that `entry`'s bytes match its digest (it saw a
    /// join verify them, and they have not changed since). The join then checks only their
    /// size. The default is no: every blob is hashed.
    fn known_intact(&mut self, entry: &BlobEntry) -> bool {
        let _ = entry;
        false
    }

    /// Told when a blob was read in full and matched its size and digest.
    fn verified(&mut self, entry: &BlobEntry) {
        let _ = entry;
    }
}

impl BlobSource for Split<'_> {
    fn open(&mut self, entry: &BlobEntry) -> io::Result<Box<dyn Read + '_>> {
        match self.blob(&entry.digest) {
            Some(blob) => Ok(Box::new(&blob.bytes[..])),
            None => Err(io::Error::new(io::ErrorKind::NotFound, "no such blob")),
        }
    }
}

impl BlobSource for HashMap<BlobId, Vec<u8>> {
    fn open(&mut self, entry: &BlobEntry) -> io::Result<Box<dyn Read + '_>> {
        match self.get(&entry.digest) {
            Some(bytes) => Ok(Box::new(&bytes[..])),
            None => Err(io::Error::new(io::ErrorKind::NotFound, "no such blob")),
        }
    }
}

/// Why a join failed.
#[derive(Debug, thiserror::Error)]
pub enum JoinError {
    /// The source could not provide a blob.
    #[error("cannot read {kind} blob {digest}")]
    Read {
        /// The blob's kind.
        kind: &'static str,
        /// The blob's digest.
        digest: BlobId,
        /// The underlying error.
        source: io::Error,
    },
    /// The output could not be written.
    #[error("cannot write the joined output")]
    Write(#[source] io::Error),
    /// A blob's bytes do not hash to its digest.
    #[error("blob {expected} is corrupt: its bytes hash to {actual}")]
    DigestMismatch {
        /// The digest the manifest names.
        expected: BlobId,
        /// The digest of the bytes read.
        actual: BlobId,
    },
    /// A blob is shorter or longer than the manifest says.
    #[error("blob {digest} should have {expected} bytes but has {actual_description}")]
    SizeMismatch {
        /// The blob's digest.
        digest: BlobId,
        /// The size the manifest names.
        expected: u64,
        /// What was found ("12 bytes", "more").
        actual_description: String,
    },
    /// A skeleton blob is not a valid skeleton.
    #[error("skeleton {digest} is invalid")]
    Skeleton {
        /// The skeleton's digest.
        digest: BlobId,
        /// What is wrong with it.
        source: SkeletonError,
    },
    /// A skeleton refers to a blob the manifest does not list, or lists with another kind or
    /// size.
    #[error(
        "a skeleton refers to {kind} {digest} of {size} bytes, which the manifest does not list"
    )]
    UnlistedBlob {
        /// The kind the reference implies.
        kind: &'static str,
        /// The referenced digest.
        digest: BlobId,
        /// The referenced size.
        size: u64,
    },
    /// The tree's blobs are not used in the manifest's order (or some are never used).
    #[error("the manifest does not list the tree's blobs in join order (at position {position})")]
    NotInJoinOrder {
        /// Position in the manifest where the order broke.
        position: usize,
    },
    /// Skeletons nest deeper than the format allows.
    #[error("skeletons nest more than {max} levels deep")]
    NestingTooDeep {
        /// The limit.
        max: usize,
    },
    /// A skeleton blob is larger than any valid skeleton of this size could be.
    #[error("skeleton {digest} of {size} bytes is larger than the {joined} bytes it would join to allow")]
    SkeletonTooLarge {
        /// The skeleton's digest.
        digest: BlobId,
        /// Its size according to the manifest.
        size: u64,
        /// The joined size it stands for.
        joined: u64,
    },
}

/// What a successful join did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JoinSummary {
    /// Bytes written to the output.
    pub bytes_written: u64,
    /// Blobs read from the source (a skeleton or module used twice is read twice).
    pub blobs_read: u64,
}

/// Joins the binary `manifest` describes from the blobs in `source`, writing it to `out`.
///
/// The caller should compare [`Manifest::tree_digest`] with the tree digest it trusts before
/// or after; the join guarantees that the output is exactly the binary that digest names.
pub fn join<W: Write>(
    manifest: &Manifest,
    source: &mut dyn BlobSource,
    out: &mut W,
) -> Result<JoinSummary, JoinError> {
    let mut joiner = Joiner {
        entries: manifest
            .blobs()
            .iter()
            .enumerate()
            .map(|(position, entry)| (entry.digest, (position, *entry)))
            .collect(),
        manifest,
        next_new_position: 0,
        skeletons: HashMap::new(),
        buffer: vec![0u8; COPY_BUFFER_SIZE],
        summary: JoinSummary {
            bytes_written: 0,
            blobs_read: 0,
        },
        source,
        out,
    };
    let root = *manifest.root();
    joiner.blob(&root, 0)?;
    if joiner.next_new_position != manifest.blobs().len() {
        return Err(JoinError::NotInJoinOrder {
            position: joiner.next_new_position,
        });
    }
    if joiner.summary.bytes_written != manifest.size() {
        return Err(JoinError::SizeMismatch {
            digest: root.digest,
            expected: manifest.size(),
            actual_description: format!("{} joined bytes", joiner.summary.bytes_written),
        });
    }
    Ok(joiner.summary)
}

const COPY_BUFFER_SIZE: usize = 256 * 1024;

struct Joiner<'m, 's, W> {
    manifest: &'m Manifest,
    entries: HashMap<BlobId, (usize, BlobEntry)>,
    /// Position in the manifest of the next blob that has not been used yet.
    next_new_position: usize,
    /// Skeleton blobs already read and verified, by digest.
    skeletons: HashMap<BlobId, Vec<u8>>,
    buffer: Vec<u8>,
    summary: JoinSummary,
    source: &'s mut dyn BlobSource,
    out: &'s mut W,
}

impl<W: Write> Joiner<'_, '_, W> {
    /// Looks up a referenced blob and checks it is used in manifest order.
    fn lookup(
        &mut self,
        kind: BlobKind,
        digest: BlobId,
        size: u64,
    ) -> Result<BlobEntry, JoinError> {
        let unlisted = || JoinError::UnlistedBlob {
            kind: kind.as_str(),
            digest,
            size,
        };
        let &(position, entry) = self.entries.get(&digest).ok_or_else(unlisted)?;
        if entry.kind != kind || (kind == BlobKind::Module && entry.size != size) {
            return Err(unlisted());
        }
        self.note_use(position)?;
        Ok(entry)
    }

    fn note_use(&mut self, position: usize) -> Result<(), JoinError> {
        if position == self.next_new_position {
            self.next_new_position += 1;
        } else if position > self.next_new_position {
            return Err(JoinError::NotInJoinOrder {
                position: self.next_new_position,
            });
        }
        Ok(())
    }

    fn blob(&mut self, entry: &BlobEntry, depth: usize) -> Result<(), JoinError> {
        match entry.kind {
            BlobKind::Module => {
                if depth == 0 {
                    self.note_use(0)?;
                }
                self.copy_module(entry)
            }
            BlobKind::Skeleton => {
                if depth == 0 {
                    self.note_use(0)?;
                }
                self.skeleton(entry, depth, None)
            }
        }
    }

    fn skeleton(
        &mut self,
        entry: &BlobEntry,
        depth: usize,
        expected_joined: Option<u64>,
    ) -> Result<(), JoinError> {
        if depth > MAX_NESTING_DEPTH {
            return Err(JoinError::NestingTooDeep {
                max: MAX_NESTING_DEPTH,
            });
        }
        // A skeleton is at most about 4 times its joined size (a 38-byte reference and a
        // literal header stand for a 10-byte module section) plus its magic; refuse
        // a larger one before reading it.
        let joined = expected_joined.unwrap_or(self.manifest.size());
        if entry.size > joined.saturating_mul(4).saturating_add(64) {
            return Err(JoinError::SkeletonTooLarge {
                digest: entry.digest,
                size: entry.size,
                joined,
            });
        }
        let bytes = match self.skeletons.remove(&entry.digest) {
            Some(bytes) => bytes,
            None => self.read_skeleton(entry)?,
        };
        let result = self.join_skeleton(entry, &bytes, depth, expected_joined);
        self.skeletons.insert(entry.digest, bytes);
        result
    }

    fn join_skeleton(
        &mut self,
        entry: &BlobEntry,
        bytes: &[u8],
        depth: usize,
        expected_joined: Option<u64>,
    ) -> Result<(), JoinError> {
        let skeleton = Skeleton::decode(bytes).map_err(|source| JoinError::Skeleton {
            digest: entry.digest,
            source,
        })?;
        if let Some(expected) = expected_joined {
            if skeleton.joined_size() != expected {
                return Err(JoinError::Skeleton {
                    digest: entry.digest,
                    source: SkeletonError::BadFraming {
                        offset: skeleton.joined_size(),
                        why: "the skeleton joins to another size than its reference says",
                    },
                });
            }
        }
        for piece in skeleton.pieces() {
            match *piece {
                Piece::Literal(literal) => self.write(literal)?,
                Piece::Module { size, digest } => {
                    let entry = self.lookup(BlobKind::Module, digest, u64::from(size))?;
                    self.copy_module(&entry)?;
                }
                Piece::Component { size, digest } => {
                    let entry = self.lookup(BlobKind::Skeleton, digest, u64::from(size))?;
                    self.skeleton(&entry, depth + 1, Some(u64::from(size)))?;
                }
            }
        }
        Ok(())
    }

    fn write(&mut self, bytes: &[u8]) -> Result<(), JoinError> {
        self.out.write_all(bytes).map_err(JoinError::Write)?;
        self.summary.bytes_written += bytes.len() as u64;
        Ok(())
    }

    fn read_skeleton(&mut self, entry: &BlobEntry) -> Result<Vec<u8>, JoinError> {
        let mut bytes = Vec::with_capacity(entry.size as usize);
        self.stream(entry, |chunk| {
            bytes.extend_from_slice(chunk);
            Ok(())
        })?;
        Ok(bytes)
    }

    fn copy_module(&mut self, entry: &BlobEntry) -> Result<(), JoinError> {
        let out = &mut *self.out;
        let mut written = 0;
        let result = Self::stream_blob(
            &mut *self.source,
            &mut self.buffer,
            &mut self.summary,
            entry,
            |chunk| {
                written += chunk.len() as u64;
                out.write_all(chunk).map_err(JoinError::Write)
            },
        );
        self.summary.bytes_written += written;
        result
    }

    fn stream(
        &mut self,
        entry: &BlobEntry,
        sink: impl FnMut(&[u8]) -> Result<(), JoinError>,
    ) -> Result<(), JoinError> {
        Self::stream_blob(
            &mut *self.source,
            &mut self.buffer,
            &mut self.summary,
            entry,
            sink,
        )
    }

    /// Reads one blob through `sink`, checking its size as it goes and its digest at the end.
    fn stream_blob(
        source: &mut dyn BlobSource,
        buffer: &mut [u8],
        summary: &mut JoinSummary,
        entry: &BlobEntry,
        mut sink: impl FnMut(&[u8]) -> Result<(), JoinError>,
    ) -> Result<(), JoinError> {
        let read_error = |source| JoinError::Read {
            kind: entry.kind.as_str(),
            digest: entry.digest,
            source,
        };
        let intact = source.known_intact(entry);
        let mut reader = source.open(entry).map_err(read_error)?;
        summary.blobs_read += 1;
        let mut hasher = (!intact).then(Sha256::new);
        let mut seen: u64 = 0;
        loop {
            let n = match reader.read(buffer) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(read_error(e)),
            };
            seen += n as u64;
            if seen > entry.size {
                return Err(JoinError::SizeMismatch {
                    digest: entry.digest,
                    expected: entry.size,
                    actual_description: "more".to_owned(),
                });
            }
            if let Some(hasher) = &mut hasher {
                hasher.update(&buffer[..n]);
            }
            sink(&buffer[..n])?;
        }
        if seen != entry.size {
            return Err(JoinError::SizeMismatch {
                digest: entry.digest,
                expected: entry.size,
                actual_description: format!("{seen} bytes"),
            });
        }
        if let Some(hasher) = hasher {
            let actual = BlobId::from_bytes(hasher.finalize().into());
            if actual != entry.digest {
                return Err(JoinError::DigestMismatch {
                    expected: entry.digest,
                    actual,
                });
            }
            drop(reader);
            source.verified(entry);
        }
        Ok(())
    }
}
