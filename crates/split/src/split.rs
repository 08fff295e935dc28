//! Splitting a binary into its skeletons and fragments.

use std::borrow::Cow;
use std::collections::HashSet;

use crate::binary::{
    binary_kind, check_module_framing, BinaryKind, Sections, COMPONENT_SECTION, CORE_MODULE_SECTION,
};
use crate::digest::{BlobId, TreeDigest};
use crate::error::SplitError;
use crate::limits::{MAX_FRAGMENTS, MAX_INPUT_SIZE, MAX_NESTING_DEPTH};
use crate::manifest::{BlobEntry, BlobKind, Manifest};
use crate::skeleton::SkeletonWriter;

/// One blob of a split: a core module (borrowed from the input) or a skeleton.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blob<'a> {
    /// What the blob holds.
    pub kind: BlobKind,
    /// SHA-256 of [`Blob::bytes`].
    pub digest: BlobId,
    /// The blob's bytes.
    pub bytes: Cow<'a, [u8]>,
}

impl Blob<'_> {
    /// The blob's manifest entry.
    pub fn entry(&self) -> BlobEntry {
        BlobEntry {
            kind: self.kind,
            digest: self.digest,
            size: self.bytes.len() as u64,
        }
    }
}

/// The result of splitting one binary: its unique blobs in join order and its manifest.
#[derive(Debug, Clone)]
pub struct Split<'a> {
    kind: BinaryKind,
    blobs: Vec<Blob<'a>>,
    manifest: Manifest,
}

impl<'a> Split<'a> {
    /// Whether the input was a core module or a component.
    pub fn kind(&self) -> BinaryKind {
        self.kind
    }

    /// Every distinct blob, root first, in join order (the manifest's order).
    pub fn blobs(&self) -> &[Blob<'a>] {
        &self.blobs
    }

    /// The manifest listing the blobs.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// The tree digest of the input.
    pub fn tree_digest(&self) -> TreeDigest {
        self.manifest.tree_digest()
    }

    /// The blob with this digest, if the split has it.
    pub fn blob(&self, digest: &BlobId) -> Option<&Blob<'a>> {
        self.blobs.iter().find(|blob| blob.digest == *digest)
    }
}

/// Splits a core module or a component.
///
/// A core module becomes one blob: itself. A component becomes its skeleton plus, for each
/// core module section, the module, and for each component section, that component split in
/// turn. The result depends on the input bytes alone.
pub fn split(input: &[u8]) -> Result<Split<'_>, SplitError> {
    if input.len() as u64 > MAX_INPUT_SIZE {
        return Err(SplitError::TooLarge {
            size: input.len() as u64,
            max: MAX_INPUT_SIZE,
        });
    }
    let kind = binary_kind(input, 0)?;
    let root = match kind {
        BinaryKind::Module => {
            check_module_framing(input, 0)?;
            Node::Module {
                digest: BlobId::of(input),
                bytes: input,
            }
        }
        BinaryKind::Component => {
            // Checking first means that malformed input is refused before anything is
            // allocated.
            check_component(input, 0, 0, &mut 0)?;
            split_component(input, 0)?
        }
    };
    let mut blobs = Vec::new();
    let mut seen = HashSet::new();
    root.list(&mut blobs, &mut seen);
    let entries = blobs.iter().map(Blob::entry).collect();
    let manifest = Manifest::new(input.len() as u64, entries)
        .expect("a split's own listing is a valid manifest");
    Ok(Split {
        kind,
        blobs,
        manifest,
    })
}

/// The tree of one split before it is listed in join order.
enum Node<'a> {
    Module {
        digest: BlobId,
        bytes: &'a [u8],
    },
    Component {
        digest: BlobId,
        skeleton: Vec<u8>,
        children: Vec<Node<'a>>,
    },
}

impl<'a> Node<'a> {
    fn digest(&self) -> BlobId {
        match self {
            Node::Module { digest, .. } | Node::Component { digest, .. } => *digest,
        }
    }

    /// Appends this node's blobs, depth first, skipping blobs already listed.
    fn list(self, blobs: &mut Vec<Blob<'a>>, seen: &mut HashSet<BlobId>) {
        if !seen.insert(self.digest()) {
            return;
        }
        match self {
            Node::Module { digest, bytes } => blobs.push(Blob {
                kind: BlobKind::Module,
                digest,
                bytes: Cow::Borrowed(bytes),
            }),
            Node::Component {
                digest,
                skeleton,
                children,
            } => {
                blobs.push(Blob {
                    kind: BlobKind::Skeleton,
                    digest,
                    bytes: Cow::Owned(skeleton),
                });
                for child in children {
                    child.list(blobs, seen);
                }
            }
        }
    }
}

/// Checks everything the split relies on, without allocating: the framing of every binary
/// in the tree, the kinds of nested binaries, the nesting depth and the fragment count.
fn check_component(
    bytes: &[u8],
    offset: usize,
    depth: usize,
    fragments: &mut usize,
) -> Result<(), SplitError> {
    for section in Sections::new(bytes, offset) {
        let section = section?;
        if section.id != CORE_MODULE_SECTION && section.id != COMPONENT_SECTION {
            continue;
        }
        *fragments += 1;
        if *fragments > MAX_FRAGMENTS {
            return Err(SplitError::TooManyFragments {
                offset: section.start,
                max: MAX_FRAGMENTS,
            });
        }
        if section.id == CORE_MODULE_SECTION {
            check_module_framing(section.payload, section.payload_start)?;
            continue;
        }
        match binary_kind(section.payload, section.payload_start)? {
            BinaryKind::Component => {}
            BinaryKind::Module => {
                return Err(SplitError::ModuleWhereComponentExpected {
                    offset: section.payload_start,
                })
            }
        }
        if depth + 1 > MAX_NESTING_DEPTH {
            return Err(SplitError::NestingTooDeep {
                offset: section.payload_start,
                max: MAX_NESTING_DEPTH,
            });
        }
        check_component(section.payload, section.payload_start, depth + 1, fragments)?;
    }
    Ok(())
}

/// Splits the component `bytes`, found at absolute `offset`, which [`check_component`]
/// has accepted.
fn split_component<'a>(bytes: &'a [u8], offset: usize) -> Result<Node<'a>, SplitError> {
    let mut skeleton = SkeletonWriter::new();
    let mut children = Vec::new();
    let mut literal_start = 0;
    for section in Sections::new(bytes, offset) {
        let section = section?;
        if section.id != CORE_MODULE_SECTION && section.id != COMPONENT_SECTION {
            continue;
        }
        let local_payload_start = section.payload_start - offset;
        skeleton.literal(&bytes[literal_start..local_payload_start]);
        literal_start = section.end() - offset;
        let size = section.payload.len() as u32;
        if section.id == CORE_MODULE_SECTION {
            let digest = BlobId::of(section.payload);
            skeleton.module(size, &digest);
            children.push(Node::Module {
                digest,
                bytes: section.payload,
            });
        } else {
            let child = split_component(section.payload, section.payload_start)?;
            skeleton.component(size, &child.digest());
            children.push(child);
        }
    }
    if literal_start < bytes.len() {
        skeleton.literal(&bytes[literal_start..]);
    }
    let skeleton = skeleton.finish();
    Ok(Node::Component {
        digest: BlobId::of(&skeleton),
        skeleton,
        children,
    })
}
