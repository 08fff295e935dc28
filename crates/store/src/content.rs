//! Content blobs, each stored once under its digest: the [`BlobStore`] interface and its
//! filesystem implementation.
//!
//! Layout on disk: `<dir>/blobs/<algorithm>/<hex>` (`sha256`, and `sha512` for OCI blobs
//! pushed with that algorithm), or `<hex>.zst` for a blob stored compressed: the blobs of the
//! split (`put`) are compressed with zstd at [`STORED_LEVEL`] when that makes them smaller,
//! in one frame that records their size and a checksum; blobs moved in whole (`put_file`:
//! uploads of OCI scratch repositories) stay as they came. Either way a blob is named, and
//! verified, by the digest of its uncompressed bytes. A blob is written to a temporary file,
//! fsynced, renamed into place and its directory fsynced, so a blob that exists is complete. Joins
//! verify every blob's digest as they stream, unless this process verified that very file
//! before and it has not changed since ([`BlobStore::known_intact`]). Blobs of OCI scratch
//! repositories are served as stored; OCI clients check their digests.

use std::io;
use std::path::{Path, PathBuf};

use cairn_split::BlobId;
use sha2::Digest as _;

/// The name of a blob: its digest under one of the algorithms the OCI image spec registers.
/// Content of the warg protocol and of the split is always SHA-256.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub enum BlobDigest {
    /// SHA-256.
    Sha256([u8; 32]),
    /// SHA-512.
    Sha512([u8; 64]),
}

/// Why a text is not a blob digest.
#[derive(Debug, thiserror::Error)]
#[error(
    "not a digest (expected `sha256:` and 64 or `sha512:` and 128 lowercase hex digits): {0:?}"
)]
pub struct BlobDigestError(String);

impl BlobDigest {
    /// The digest of `bytes` under the same algorithm as `self`.
    pub fn same_algorithm_of(&self, bytes: &[u8]) -> BlobDigest {
        match self {
            BlobDigest::Sha256(_) => BlobDigest::Sha256(sha2::Sha256::digest(bytes).into()),
            BlobDigest::Sha512(_) => BlobDigest::Sha512(sha2::Sha512::digest(bytes).into()),
        }
    }

    /// `sha256` or `sha512`.
    pub fn algorithm(&self) -> &'static str {
        match self {
            BlobDigest::Sha256(_) => "sha256",
            BlobDigest::Sha512(_) => "sha512",
        }
    }

    /// The digest bytes.
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            BlobDigest::Sha256(bytes) => bytes,
            BlobDigest::Sha512(bytes) => bytes,
        }
    }

    /// The digest in lowercase hex, without the algorithm.
    pub fn to_hex(&self) -> String {
        hex::encode(self.as_bytes())
    }

    /// The SHA-256 this is, if it is one.
    pub fn as_sha256(&self) -> Option<BlobId> {
        match self {
            BlobDigest::Sha256(bytes) => Some(BlobId::from_bytes(*bytes)),
            BlobDigest::Sha512(_) => None,
        }
    }
}

impl From<BlobId> for BlobDigest {
    fn from(digest: BlobId) -> Self {
        BlobDigest::Sha256(*digest.as_bytes())
    }
}

impl From<&BlobId> for BlobDigest {
    fn from(digest: &BlobId) -> Self {
        BlobDigest::Sha256(*digest.as_bytes())
    }
}

impl std::fmt::Display for BlobDigest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.algorithm(), self.to_hex())
    }
}

impl std::fmt::Debug for BlobDigest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}

impl std::str::FromStr for BlobDigest {
    type Err = BlobDigestError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let error = || BlobDigestError(text.to_owned());
        let (algorithm, encoded) = text.split_once(':').ok_or_else(error)?;
        let lower_hex = encoded
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if !lower_hex {
            return Err(error());
        }
        fn decode<const N: usize>(hex: &str) -> Option<[u8; N]> {
            let mut out = [0u8; N];
            hex::decode_to_slice(hex, &mut out).ok().map(|()| out)
        }
        match algorithm {
            "sha256" => decode::<32>(encoded)
                .map(BlobDigest::Sha256)
                .ok_or_else(error),
            "sha512" => decode::<64>(encoded)
                .map(BlobDigest::Sha512)
                .ok_or_else(error),
            _ => Err(error()),
        }
    }
}

/// Where blobs live: a directory ([`FsContentStore`]) or an OCI registry.
pub trait BlobStore: Send + Sync + 'static {
    /// Whether the blob is stored.
    fn has(&self, digest: &BlobDigest) -> io::Result<bool>;
    /// Stores a blob whose digest the caller has computed from `bytes`. Storing a blob that
    /// is already there does nothing.
    fn put(&self, digest: &BlobDigest, bytes: &[u8]) -> io::Result<()>;
    /// Stores the file at `path`, whose digest the caller has computed; the file may be moved
    /// into the store or left in place. The default reads it into memory and calls `put`.
    fn put_file(&self, digest: &BlobDigest, path: &Path) -> io::Result<()> {
        self.put(digest, &std::fs::read(path)?)
    }
    /// Opens a blob for reading.
    fn open(&self, digest: &BlobDigest) -> io::Result<Box<dyn io::Read + Send>>;
    /// Opens a blob for reading from byte `offset` on (for ranges). The default reads and
    /// drops the bytes before it; stores that can seek do.
    fn open_at(&self, digest: &BlobDigest, offset: u64) -> io::Result<Box<dyn io::Read + Send>> {
        let mut reader = self.open(digest)?;
        io::copy(&mut io::Read::take(&mut reader, offset), &mut io::sink())?;
        Ok(reader)
    }
    /// A blob's size, if stored.
    fn size(&self, digest: &BlobDigest) -> io::Result<Option<u64>>;
    /// The blob as the store keeps it compressed with zstd, and that form's length: what an
    /// answer with `Content-Encoding: zstd` sends as it is, compressing nothing. `None` when
    /// the store keeps the blob uncompressed (the default).
    fn open_zstd(
        &self,
        digest: &BlobDigest,
    ) -> io::Result<Option<(Box<dyn io::Read + Send>, u64)>> {
        let _ = digest;
        Ok(None)
    }
    /// Whether the stored bytes of `digest` are known to match it: this process saw them
    /// verified and they have not changed since. Stores that cannot tell say no, and their
    /// blobs are hashed on every read.
    fn known_intact(&self, digest: &BlobDigest) -> bool {
        let _ = digest;
        false
    }
    /// Notes that the stored bytes of `digest` were just read in full and matched it.
    fn mark_intact(&self, digest: &BlobDigest) {
        let _ = digest;
    }
    /// Removes a blob; removing one that is not there does nothing. Only OCI scratch
    /// repositories delete blobs; content of the warg log is never deleted.
    fn delete(&self, digest: &BlobDigest) -> io::Result<()>;
    /// Checks that the store can be reached (for readiness probes).
    fn ping(&self) -> io::Result<()> {
        Ok(())
    }
}

/// Blobs in a directory.
///
/// Blobs verified by a read are remembered with their file's identity and change times
/// (device, inode, size, modification and status-change times, which any write through the
/// file system updates; the status-change time cannot be set back by a program). Later joins
/// skip hashing a remembered blob whose file is unchanged; any change and it is hashed again.
/// Only files unchanged for a while ([`STABLE_FOR`]) are remembered, because file times
/// advance in coarse steps: a write right after a verification could otherwise keep them.
#[derive(Debug, Clone)]
pub struct FsContentStore {
    /// `<dir>/blobs`.
    blobs: PathBuf,
    /// `<dir>/tmp`, on the same file system, for writes renamed into place.
    tmp: PathBuf,
    /// Blobs seen verified, with the stamp of their file then.
    intact: std::sync::Arc<std::sync::Mutex<std::collections::HashMap<BlobDigest, FileStamp>>>,
}

/// How long a blob's file must have been unchanged before its verification is remembered.
pub const STABLE_FOR: std::time::Duration = std::time::Duration::from_secs(1);

/// The zstd level blobs are stored at. Over the corpus (`cargo bench -p cairn-split --bench
/// fragment_compression`) the split store at level 3 is 0.277 of the whole files, against
/// 0.312 at level 1 and 0.247 at level 9, compressing at about 250 MiB/s against 400 and 57;
/// every level decompresses at about 800 MiB/s.
pub const STORED_LEVEL: i32 = 3;

/// The zstd frame a store keeps for `bytes` (level [`STORED_LEVEL`], with the content size and
/// a checksum), or `None` when it would not be smaller than the bytes.
pub(crate) fn compress_for_storage(bytes: &[u8]) -> io::Result<Option<Vec<u8>>> {
    let mut compressor = zstd::bulk::Compressor::new(STORED_LEVEL)?;
    compressor.set_parameter(zstd::zstd_safe::CParameter::ChecksumFlag(true))?;
    compressor.set_parameter(zstd::zstd_safe::CParameter::ContentSizeFlag(true))?;
    let packed = compressor.compress(bytes)?;
    Ok((packed.len() < bytes.len()).then_some(packed))
}

/// What identifies a file's current contents without reading them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileStamp {
    device: u64,
    inode: u64,
    size: u64,
    modified: (i64, i64),
    changed: (i64, i64),
}

impl FileStamp {
    #[cfg(unix)]
    fn of(path: &Path) -> Option<FileStamp> {
        use std::os::unix::fs::MetadataExt as _;
        let meta = std::fs::metadata(path).ok()?;
        Some(FileStamp {
            device: meta.dev(),
            inode: meta.ino(),
            size: meta.size(),
            modified: (meta.mtime(), meta.mtime_nsec()),
            changed: (meta.ctime(), meta.ctime_nsec()),
        })
    }

    /// Without status-change times nothing is remembered.
    #[cfg(not(unix))]
    fn of(_path: &Path) -> Option<FileStamp> {
        None
    }
}

impl FsContentStore {
    /// Opens (creating if needed) the blob directory under `dir`.
    pub fn open(dir: &Path) -> io::Result<Self> {
        let blobs = dir.join("blobs");
        std::fs::create_dir_all(blobs.join("sha256"))?;
        std::fs::create_dir_all(blobs.join("sha512"))?;
        let tmp = dir.join("tmp");
        std::fs::create_dir_all(&tmp)?;
        Ok(FsContentStore {
            blobs,
            tmp,
            intact: std::sync::Arc::default(),
        })
    }

    fn path(&self, digest: &BlobDigest) -> PathBuf {
        self.blobs.join(digest.algorithm()).join(digest.to_hex())
    }

    /// Where the blob is stored compressed.
    fn packed_path(&self, digest: &BlobDigest) -> PathBuf {
        self.blobs
            .join(digest.algorithm())
            .join(format!("{}.zst", digest.to_hex()))
    }

    /// The blob's file and whether it is compressed, if it is stored.
    fn stored(&self, digest: &BlobDigest) -> Option<(PathBuf, bool)> {
        let raw = self.path(digest);
        if raw.is_file() {
            return Some((raw, false));
        }
        let packed = self.packed_path(digest);
        packed.is_file().then_some((packed, true))
    }

    /// Writes `bytes` to `target` through a temporary file, synced, renamed, the directory
    /// synced.
    fn write_into_place(&self, digest: &BlobDigest, target: &Path, bytes: &[u8]) -> io::Result<()> {
        use std::io::Write as _;
        let tmp = self.tmp_path(digest);
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        drop(file);
        std::fs::rename(&tmp, target)?;
        std::fs::File::open(self.blobs.join(digest.algorithm()))?.sync_all()
    }

    /// A temporary file for a blob being written, unique to this process and thread, on the
    /// blobs' file system (so it can be renamed into place).
    fn tmp_path(&self, digest: &BlobDigest) -> PathBuf {
        self.tmp.join(format!(
            "{}.{}.{:?}",
            digest.to_hex(),
            std::process::id(),
            std::thread::current().id()
        ))
    }
}

impl BlobStore for FsContentStore {
    /// The blobs' directory is there and readable.
    fn ping(&self) -> io::Result<()> {
        std::fs::read_dir(self.blobs.join("sha256")).map(|_| ())
    }

    fn has(&self, digest: &BlobDigest) -> io::Result<bool> {
        Ok(self.stored(digest).is_some())
    }

    /// Stores the blob compressed when that makes it smaller, else as it is.
    fn put(&self, digest: &BlobDigest, bytes: &[u8]) -> io::Result<()> {
        if self.stored(digest).is_some() {
            return Ok(());
        }
        match compress_for_storage(bytes)? {
            Some(packed) => self.write_into_place(digest, &self.packed_path(digest), &packed),
            None => self.write_into_place(digest, &self.path(digest), bytes),
        }
    }

    fn put_file(&self, digest: &BlobDigest, path: &Path) -> io::Result<()> {
        let target = self.path(digest);
        if self.stored(digest).is_some() {
            return Ok(());
        }
        std::fs::File::open(path)?.sync_all()?;
        match std::fs::rename(path, &target) {
            Ok(()) => std::fs::File::open(self.blobs.join(digest.algorithm()))?.sync_all(),
            // Another file system: copy, streaming, next to the blobs, then rename.
            Err(e) if e.kind() == io::ErrorKind::CrossesDevices => {
                let tmp = self.tmp_path(digest);
                std::fs::copy(path, &tmp)?;
                std::fs::File::open(&tmp)?.sync_all()?;
                std::fs::rename(&tmp, &target)?;
                std::fs::File::open(self.blobs.join(digest.algorithm()))?.sync_all()
            }
            Err(e) => Err(e),
        }
    }

    /// The blob's bytes, decompressed as they are read when it is stored compressed (a
    /// frame whose checksum does not match fails the read at its end).
    fn open(&self, digest: &BlobDigest) -> io::Result<Box<dyn io::Read + Send>> {
        match self.stored(digest) {
            Some((path, false)) => Ok(Box::new(std::fs::File::open(path)?)),
            Some((path, true)) => Ok(Box::new(zstd::stream::read::Decoder::new(
                std::fs::File::open(path)?,
            )?)),
            None => Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("blob {digest} is not stored"),
            )),
        }
    }

    fn open_at(&self, digest: &BlobDigest, offset: u64) -> io::Result<Box<dyn io::Read + Send>> {
        use std::io::Seek as _;
        match self.stored(digest) {
            Some((path, false)) => {
                let mut file = std::fs::File::open(path)?;
                file.seek(io::SeekFrom::Start(offset))?;
                Ok(Box::new(file))
            }
            // Compressed: decompressed from the start, up to the offset.
            _ => {
                let mut reader = self.open(digest)?;
                io::copy(&mut io::Read::take(&mut reader, offset), &mut io::sink())?;
                Ok(reader)
            }
        }
    }

    fn open_zstd(
        &self,
        digest: &BlobDigest,
    ) -> io::Result<Option<(Box<dyn io::Read + Send>, u64)>> {
        match self.stored(digest) {
            Some((path, true)) => {
                let file = std::fs::File::open(path)?;
                let length = file.metadata()?.len();
                Ok(Some((Box::new(file), length)))
            }
            _ => Ok(None),
        }
    }

    fn size(&self, digest: &BlobDigest) -> io::Result<Option<u64>> {
        use std::io::Read as _;
        match self.stored(digest) {
            Some((path, false)) => Ok(Some(std::fs::metadata(path)?.len())),
            Some((path, true)) => {
                // The frame header records the size (at most 18 bytes).
                let mut header = Vec::with_capacity(18);
                std::fs::File::open(&path)?
                    .take(18)
                    .read_to_end(&mut header)?;
                match zstd::zstd_safe::get_frame_content_size(&header) {
                    Ok(Some(size)) => Ok(Some(size)),
                    _ => Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!(
                            "{} does not start with a zstd frame header that records its size",
                            path.display()
                        ),
                    )),
                }
            }
            None => Ok(None),
        }
    }

    fn known_intact(&self, digest: &BlobDigest) -> bool {
        let remembered = self
            .intact
            .lock()
            .expect("intact lock poisoned")
            .get(digest)
            .copied();
        remembered.is_some_and(|stamp| {
            self.stored(digest)
                .and_then(|(path, _)| FileStamp::of(&path))
                == Some(stamp)
        })
    }

    fn mark_intact(&self, digest: &BlobDigest) {
        /// Remembered blobs at most (a few MiB of memory).
        const LIMIT: usize = 100_000;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        let stable = |stamp: &FileStamp| {
            let changed = std::time::Duration::new(
                u64::try_from(stamp.changed.0).unwrap_or(u64::MAX),
                u32::try_from(stamp.changed.1).unwrap_or(0),
            );
            now.checked_sub(changed)
                .is_some_and(|age| age >= STABLE_FOR)
        };
        let stamp = self
            .stored(digest)
            .and_then(|(path, _)| FileStamp::of(&path));
        if let Some(stamp) = stamp.filter(stable) {
            let mut intact = self.intact.lock().expect("intact lock poisoned");
            if intact.len() < LIMIT || intact.contains_key(digest) {
                intact.insert(*digest, stamp);
            }
        }
    }

    fn delete(&self, digest: &BlobDigest) -> io::Result<()> {
        self.intact
            .lock()
            .expect("intact lock poisoned")
            .remove(digest);
        for path in [self.path(digest), self.packed_path(digest)] {
            match std::fs::remove_file(path) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_verified_blob_is_remembered_until_its_file_changes() {
        let dir = std::env::temp_dir().join(format!("cairn-intact-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let store = FsContentStore::open(&dir).unwrap();
        let bytes = b"blob bytes";
        let digest = BlobDigest::Sha256(sha2::Sha256::digest(bytes).into());
        store.put(&digest, bytes).unwrap();
        // Just written: not stable yet, so not remembered.
        store.mark_intact(&digest);
        assert!(!store.known_intact(&digest));
        std::thread::sleep(STABLE_FOR + std::time::Duration::from_millis(100));
        store.mark_intact(&digest);
        assert!(store.known_intact(&digest));
        // Any write through the file system, even of the same length: forgotten.
        std::fs::write(store.path(&digest), b"blob bytez").unwrap();
        assert!(!store.known_intact(&digest));
        store.delete(&digest).unwrap();
        assert!(!store.known_intact(&digest));
        let _ = std::fs::remove_dir_all(&dir);
    }

    fn test_store(name: &str) -> (PathBuf, FsContentStore) {
        let dir = std::env::temp_dir().join(format!("cairn-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let store = FsContentStore::open(&dir).unwrap();
        (dir, store)
    }

    fn read_all(store: &FsContentStore, digest: &BlobDigest) -> io::Result<Vec<u8>> {
        let mut bytes = Vec::new();
        io::Read::read_to_end(&mut store.open(digest)?, &mut bytes)?;
        Ok(bytes)
    }

    #[test]
    fn a_blob_that_compresses_is_stored_compressed_and_read_back_byte_for_byte() {
        let (dir, store) = test_store("packed");
        let bytes: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8 / 3).collect();
        let digest = BlobDigest::Sha256(sha2::Sha256::digest(&bytes).into());
        store.put(&digest, &bytes).unwrap();
        assert!(!store.path(&digest).exists());
        let packed = std::fs::metadata(store.packed_path(&digest)).unwrap().len();
        assert!(packed < bytes.len() as u64 / 4, "{packed} bytes stored");
        assert!(store.has(&digest).unwrap());
        assert_eq!(store.size(&digest).unwrap(), Some(bytes.len() as u64));
        assert_eq!(read_all(&store, &digest).unwrap(), bytes);
        let mut tail = Vec::new();
        io::Read::read_to_end(&mut store.open_at(&digest, 150_000).unwrap(), &mut tail).unwrap();
        assert_eq!(tail, bytes[150_000..]);
        // As stored, for answers in zstd: the frame, which decompresses to the blob.
        let (mut frame, length) = store.open_zstd(&digest).unwrap().unwrap();
        assert_eq!(length, packed);
        let mut framed = Vec::new();
        io::Read::read_to_end(&mut frame, &mut framed).unwrap();
        assert_eq!(zstd::decode_all(&framed[..]).unwrap(), bytes);
        // Stored once: a second put changes nothing.
        store.put(&digest, &bytes).unwrap();
        assert!(!store.path(&digest).exists());
        store.delete(&digest).unwrap();
        assert!(!store.has(&digest).unwrap());
        assert_eq!(store.size(&digest).unwrap(), None);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_blob_that_does_not_compress_and_a_moved_file_are_stored_as_they_are() {
        let (dir, store) = test_store("raw");
        // Bytes zstd cannot shrink: a SHA-256 chain.
        let mut bytes = Vec::new();
        let mut block = sha2::Sha256::digest(b"seed");
        for _ in 0..1000 {
            bytes.extend_from_slice(&block);
            block = sha2::Sha256::digest(block);
        }
        let digest = BlobDigest::Sha256(sha2::Sha256::digest(&bytes).into());
        store.put(&digest, &bytes).unwrap();
        assert_eq!(std::fs::read(store.path(&digest)).unwrap(), bytes);
        assert!(!store.packed_path(&digest).exists());
        assert!(store.open_zstd(&digest).unwrap().is_none());

        let text = vec![b'a'; 100_000];
        let file = dir.join("upload");
        std::fs::write(&file, &text).unwrap();
        let moved = BlobDigest::Sha256(sha2::Sha256::digest(&text).into());
        store.put_file(&moved, &file).unwrap();
        assert_eq!(std::fs::read(store.path(&moved)).unwrap(), text);
        assert_eq!(read_all(&store, &moved).unwrap(), text);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_changed_compressed_blob_fails_its_read() {
        let (dir, store) = test_store("packed-changed");
        let bytes = vec![7u8; 100_000];
        let digest = BlobDigest::Sha256(sha2::Sha256::digest(&bytes).into());
        store.put(&digest, &bytes).unwrap();
        let path = store.packed_path(&digest);
        let mut packed = std::fs::read(&path).unwrap();
        let last = packed.len() - 1;
        packed[last] ^= 0x55; // the frame's checksum
        std::fs::write(&path, packed).unwrap();
        assert!(read_all(&store, &digest).is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
