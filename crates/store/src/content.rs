//! Content blobs on the filesystem, each stored once under its digest.
//!
//! Layout: `<dir>/blobs/sha256/<hex>`. A blob is written to a temporary file, fsynced,
//! renamed into place and its directory fsynced, so a blob that exists is complete. Reading
//! never trusts the file system: joins verify every blob's digest as they stream.

use std::io;
use std::path::{Path, PathBuf};

use cairn_split::Digest;

/// Where blobs live: the filesystem here, an OCI registry later.
pub trait BlobStore: Send + Sync + 'static {
    /// Whether the blob is stored.
    fn has(&self, digest: &Digest) -> io::Result<bool>;
    /// Stores a blob whose digest the caller has computed from `bytes`. Storing a blob that
    /// is already there does nothing.
    fn put(&self, digest: &Digest, bytes: &[u8]) -> io::Result<()>;
    /// Opens a blob for reading.
    fn open(&self, digest: &Digest) -> io::Result<Box<dyn io::Read + Send>>;
    /// A blob's size, if stored.
    fn size(&self, digest: &Digest) -> io::Result<Option<u64>>;
}

/// Blobs in a directory.
#[derive(Debug, Clone)]
pub struct FsContentStore {
    blobs: PathBuf,
}

impl FsContentStore {
    /// Opens (creating if needed) the blob directory under `dir`.
    pub fn open(dir: &Path) -> io::Result<Self> {
        let blobs = dir.join("blobs").join("sha256");
        std::fs::create_dir_all(&blobs)?;
        std::fs::create_dir_all(dir.join("tmp"))?;
        Ok(FsContentStore { blobs })
    }

    fn path(&self, digest: &Digest) -> PathBuf {
        self.blobs.join(digest.to_hex())
    }
}

impl BlobStore for FsContentStore {
    fn has(&self, digest: &Digest) -> io::Result<bool> {
        Ok(self.path(digest).is_file())
    }

    fn put(&self, digest: &Digest, bytes: &[u8]) -> io::Result<()> {
        use std::io::Write as _;
        let path = self.path(digest);
        if path.is_file() {
            return Ok(());
        }
        let tmp_dir = self
            .blobs
            .parent()
            .and_then(Path::parent)
            .map(|d| d.join("tmp"))
            .unwrap_or_default();
        let tmp = tmp_dir.join(format!(
            "{}.{}.{:?}",
            digest.to_hex(),
            std::process::id(),
            std::thread::current().id()
        ));
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        drop(file);
        std::fs::rename(&tmp, &path)?;
        std::fs::File::open(&self.blobs)?.sync_all()
    }

    fn open(&self, digest: &Digest) -> io::Result<Box<dyn io::Read + Send>> {
        Ok(Box::new(std::fs::File::open(self.path(digest))?))
    }

    fn size(&self, digest: &Digest) -> io::Result<Option<u64>> {
        match std::fs::metadata(self.path(digest)) {
            Ok(meta) => Ok(Some(meta.len())),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }
}
