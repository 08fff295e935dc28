//! The split manifest and the tree digest.
//!
//! A manifest lists every blob a join needs, each once, in join order (the order in which a
//! depth-first join first reads them), with its kind, size and digest. The first blob is the
//! root: a skeleton for a component, the module itself for a core module.
//!
//! The tree digest is the SHA-256 of a domain-separated binary form of that listing:
//!
//! ```text
//! "CAIRN-SPLIT-TREE-V1"          19 ASCII bytes (domain separation)
//! joined size                    u64, big-endian
//! blob count                     u32, big-endian
//! per blob, in manifest order:   kind u8 (1 = module, 2 = skeleton), size u64 big-endian,
//!                                digest 32 bytes
//! ```
//!
//! No WebAssembly file starts with those ASCII bytes, so a tree digest never equals the plain
//! digest of a file. Because skeletons name their children by digest, the tree digest commits
//! to every byte of the joined binary; because it also lists every blob, a client holding a
//! trusted tree digest can check the manifest first and then each blob on its own, in any
//! order, as it arrives.

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::digest::{BlobId, TreeDigest};
use crate::limits::MAX_BLOBS;

/// The media type of a split manifest in JSON.
pub const MANIFEST_MEDIA_TYPE: &str = "application/vnd.cairn.split.manifest.v1+json";

/// The domain-separation prefix of the tree digest.
pub const TREE_DIGEST_DOMAIN: &[u8] = b"CAIRN-SPLIT-TREE-V1";

/// What a blob holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BlobKind {
    /// A core module, exactly as it appears in the original (a valid `.wasm` file by itself).
    Module,
    /// The skeleton of a component (see [`crate::skeleton`]).
    Skeleton,
}

impl BlobKind {
    fn code(self) -> u8 {
        match self {
            BlobKind::Module => 1,
            BlobKind::Skeleton => 2,
        }
    }

    /// A lowercase word for messages.
    pub fn as_str(self) -> &'static str {
        match self {
            BlobKind::Module => "module",
            BlobKind::Skeleton => "skeleton",
        }
    }
}

/// One blob of a manifest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlobEntry {
    /// What the blob holds.
    pub kind: BlobKind,
    /// SHA-256 of the blob's bytes.
    pub digest: BlobId,
    /// The blob's size in bytes.
    pub size: u64,
}

/// Why a manifest was refused.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// The JSON could not be parsed into a manifest.
    #[error("malformed split manifest: {0}")]
    Json(#[from] serde_json::Error),
    /// The media type is not [`MANIFEST_MEDIA_TYPE`].
    #[error("unsupported split manifest media type {0:?}")]
    MediaType(String),
    /// The manifest lists no blobs.
    #[error("the split manifest lists no blobs")]
    NoBlobs,
    /// The manifest lists more than [`MAX_BLOBS`] blobs.
    #[error("the split manifest lists {count} blobs, more than the limit of {max}")]
    TooManyBlobs {
        /// Blobs listed.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// A blob is listed twice.
    #[error("blob {0} is listed twice")]
    DuplicateBlob(BlobId),
    /// A module root with other blobs, or a size that disagrees with the root module's.
    #[error("a core module's manifest must list exactly the module, of the joined size")]
    BadModuleRoot,
    /// The stated tree digest is not the one the listing gives.
    #[error("tree digest mismatch: the manifest states {stated} but its blobs give {computed}")]
    TreeDigestMismatch {
        /// The tree digest written in the manifest.
        stated: TreeDigest,
        /// The tree digest of the listed blobs.
        computed: TreeDigest,
    },
}

/// A split manifest whose tree digest is consistent with its blobs.
///
/// It can only be made from a listing (computing the digest) or from JSON (checking it), so
/// [`Manifest::tree_digest`] always commits to [`Manifest::blobs`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    size: u64,
    tree_digest: TreeDigest,
    blobs: Vec<BlobEntry>,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ManifestJson {
    media_type: String,
    size: u64,
    tree_digest: TreeDigest,
    blobs: Vec<BlobEntry>,
}

impl Manifest {
    /// A manifest for a binary of `size` bytes made of `blobs`, root first, in join order.
    pub fn new(size: u64, blobs: Vec<BlobEntry>) -> Result<Self, ManifestError> {
        let Some(root) = blobs.first() else {
            return Err(ManifestError::NoBlobs);
        };
        if blobs.len() > MAX_BLOBS {
            return Err(ManifestError::TooManyBlobs {
                count: blobs.len(),
                max: MAX_BLOBS,
            });
        }
        if root.kind == BlobKind::Module && (blobs.len() != 1 || root.size != size) {
            return Err(ManifestError::BadModuleRoot);
        }
        let mut seen = std::collections::HashSet::with_capacity(blobs.len());
        for blob in &blobs {
            if !seen.insert(blob.digest) {
                return Err(ManifestError::DuplicateBlob(blob.digest));
            }
        }
        let tree_digest = tree_digest(size, &blobs);
        Ok(Manifest {
            size,
            tree_digest,
            blobs,
        })
    }

    /// Parses a JSON manifest and checks its tree digest against its blobs.
    pub fn from_json(json: &[u8]) -> Result<Self, ManifestError> {
        let parsed: ManifestJson = serde_json::from_slice(json)?;
        if parsed.media_type != MANIFEST_MEDIA_TYPE {
            return Err(ManifestError::MediaType(parsed.media_type));
        }
        let manifest = Manifest::new(parsed.size, parsed.blobs)?;
        if manifest.tree_digest != parsed.tree_digest {
            return Err(ManifestError::TreeDigestMismatch {
                stated: parsed.tree_digest,
                computed: manifest.tree_digest,
            });
        }
        Ok(manifest)
    }

    /// The manifest as pretty-printed JSON.
    pub fn to_json(&self) -> String {
        let json = ManifestJson {
            media_type: MANIFEST_MEDIA_TYPE.to_owned(),
            size: self.size,
            tree_digest: self.tree_digest,
            blobs: self.blobs.clone(),
        };
        serde_json::to_string_pretty(&json).expect("a manifest always serializes")
    }

    /// Size in bytes of the joined binary.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The tree digest, which commits to every blob and so to every joined byte.
    pub fn tree_digest(&self) -> TreeDigest {
        self.tree_digest
    }

    /// Every blob the join needs, root first, in join order.
    pub fn blobs(&self) -> &[BlobEntry] {
        &self.blobs
    }

    /// The root blob: the component's skeleton, or the core module itself.
    pub fn root(&self) -> &BlobEntry {
        &self.blobs[0]
    }

    /// Whether the joined binary is a component (rather than a core module).
    pub fn is_component(&self) -> bool {
        self.root().kind == BlobKind::Skeleton
    }
}

fn tree_digest(size: u64, blobs: &[BlobEntry]) -> TreeDigest {
    let mut hasher = Sha256::new();
    hasher.update(TREE_DIGEST_DOMAIN);
    hasher.update(size.to_be_bytes());
    hasher.update((blobs.len() as u32).to_be_bytes());
    for blob in blobs {
        hasher.update([blob.kind.code()]);
        hasher.update(blob.size.to_be_bytes());
        hasher.update(blob.digest.as_bytes());
    }
    TreeDigest::from_bytes(hasher.finalize().into())
}
