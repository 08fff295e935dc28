//! The local fragment cache: blobs of split content (core modules and skeletons), one file
//! per blob named by its SHA-256, shared by every package of the registry.
//!
//! A blob enters the cache only after its digest was checked, and joins read it back
//! through [`cairn_split::join`], which checks every blob again, so a damaged cache file
//! fails a join instead of producing wrong bytes. Files are written to a temporary name
//! and renamed, so a reader never sees half a blob.

use std::io::{self, Read};
use std::path::{Path, PathBuf};

use cairn_split::{BlobEntry, BlobId, BlobSource, Manifest};

/// A directory of verified blobs, `<dir>/sha256/<hex>`.
#[derive(Debug, Clone)]
pub struct FragmentCache {
    dir: PathBuf,
}

impl FragmentCache {
    /// The cache in `dir` (created on first write).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        FragmentCache { dir: dir.into() }
    }

    /// The directory holding the blobs.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where the blob `digest` is kept.
    pub fn path(&self, digest: &BlobId) -> PathBuf {
        self.dir.join("sha256").join(digest.to_hex())
    }

    /// Whether the cache holds the blob `digest`.
    pub fn contains(&self, digest: &BlobId) -> bool {
        self.path(digest).is_file()
    }

    /// Stores a blob whose bytes the caller has checked against `digest`.
    pub(crate) fn put(&self, digest: &BlobId, bytes: &[u8]) -> io::Result<()> {
        debug_assert_eq!(BlobId::of(bytes), *digest);
        let path = self.path(digest);
        if path.is_file() {
            return Ok(());
        }
        std::fs::create_dir_all(self.dir.join("sha256"))?;
        crate::state::write_file_atomically(&path, bytes)
    }

    /// Reads a cached blob, checking it against its digest; a damaged file is removed.
    pub(crate) fn read_verified(&self, digest: &BlobId) -> io::Result<Vec<u8>> {
        let bytes = std::fs::read(self.path(digest))?;
        if BlobId::of(&bytes) != *digest {
            self.remove(digest);
            return Err(io::Error::other(format!(
                "the cached blob {digest} was damaged and has been removed; try again"
            )));
        }
        Ok(bytes)
    }

    /// Where the split manifest of the verified content `digest` is kept.
    fn manifest_path(&self, digest: &cairn_protocol::Digest) -> PathBuf {
        self.dir
            .join("manifests")
            .join(format!("{}.json", digest.to_string().replace(':', "-")))
    }

    /// Keeps the split manifest of content that was verified against `digest`, so that a later
    /// download of another release can offer its blobs as bases for patches.
    pub(crate) fn put_manifest(
        &self,
        digest: &cairn_protocol::Digest,
        manifest: &Manifest,
    ) -> io::Result<()> {
        let path = self.manifest_path(digest);
        if path.is_file() {
            return Ok(());
        }
        std::fs::create_dir_all(self.dir.join("manifests"))?;
        crate::state::write_file_atomically(&path, manifest.to_json().as_bytes())
    }

    /// The kept split manifest of `digest`, if any (a file that does not parse is ignored: a
    /// manifest here only guides the choice of bases, and every result is verified).
    pub(crate) fn manifest(&self, digest: &cairn_protocol::Digest) -> Option<Manifest> {
        let json = std::fs::read(self.manifest_path(digest)).ok()?;
        Manifest::from_json(&json).ok()
    }

    /// Removes a blob (one found damaged).
    pub(crate) fn remove(&self, digest: &BlobId) {
        let _ = std::fs::remove_file(self.path(digest));
    }
}

impl BlobSource for &FragmentCache {
    fn open(&mut self, entry: &BlobEntry) -> io::Result<Box<dyn Read + '_>> {
        let file = std::fs::File::open(self.path(&entry.digest))?;
        Ok(Box::new(io::BufReader::with_capacity(256 * 1024, file)))
    }
}
