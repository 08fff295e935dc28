//! Patches between blobs: a blob a client lacks, sent as a zstd patch against a blob it holds.
//!
//! A patch is one zstd frame compressed with the base blob as its reference prefix (what
//! `zstd --patch-from=BASE` makes), at [`PATCH_LEVEL`], with a window that covers the larger of
//! the two blobs and long-distance matching, so that a new build of a component whose
//! multi-megabyte module changed a little costs a small fraction of the module. The frame
//! carries the target's size and a checksum; decoding it needs the base's bytes, and the
//! client checks the result against the target's digest as for any blob.
//!
//! Patches are made on demand, one at a time per [`PATCH_JOBS`] (a level-19 patch of an 11 MB
//! module takes about 5 s and 110 MB), of blobs up to [`MAX_PATCHABLE`] bytes, and kept in
//! `DATA/patches` (`<target>.<base>.zst`, or `<target>.<base>.none` when the patch was not
//! smaller than the blob as stored) up to a size limit, oldest first out. A request that
//! waits past [`BUDGET_WAIT`] for a turn gets the blob instead of a patch.

use std::io;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use cairn_split::BlobId;
use cairn_store::BlobStore;

/// The zstd level of patches: made once and kept, so worth the time. At level 19 a patch
/// between two componentize-py builds of one application (an 11 MB module) is 0.96 MB, at
/// level 12 1.13 MB, at level 3 1.44 MB.
pub const PATCH_LEVEL: i32 = 19;

/// The largest blob (target or base) patched: a window over 32 MiB, with the level's tables,
/// would take more memory and time than a patch is worth. Larger blobs are sent whole.
pub const MAX_PATCHABLE: u64 = 32 << 20;

/// How many patches are made at once.
pub const PATCH_JOBS: usize = 1;

/// How long a request waits for a turn to make its patch before it is sent the blob.
pub const BUDGET_WAIT: Duration = Duration::from_secs(20);

/// The most bases a request may offer.
pub const MAX_BASES: usize = 8;

/// The default size of the patch cache.
pub const DEFAULT_CACHE_BYTES: u64 = 1 << 30;

/// The window log a patch of `target_size` bytes against `base_size` bytes uses: enough to
/// reach back over the whole base from the target's last byte.
pub fn window_log(target_size: u64, base_size: u64) -> u32 {
    let span = target_size.max(base_size).max(1);
    // zstd's window lies between 2^10 and 2^31; one more than the span's highest bit covers
    // the base and the target together.
    (64 - span.leading_zeros() + 1).clamp(10, 31)
}

/// Makes a patch of `target` against `base`: a zstd frame that decodes to `target` given
/// `base` as the reference prefix. Blocking and CPU-heavy.
pub fn make_patch(target: &[u8], base: &[u8]) -> io::Result<Vec<u8>> {
    use zstd::stream::raw::CParameter;
    let mut out = Vec::with_capacity(target.len() / 8 + 64);
    {
        let mut encoder =
            zstd::stream::write::Encoder::with_ref_prefix(&mut out, PATCH_LEVEL, base)?;
        encoder.set_parameter(CParameter::WindowLog(window_log(
            target.len() as u64,
            base.len() as u64,
        )))?;
        encoder.set_parameter(CParameter::EnableLongDistanceMatching(true))?;
        encoder.include_checksum(true)?;
        encoder.set_pledged_src_size(Some(target.len() as u64))?;
        io::Write::write_all(&mut encoder, target)?;
        encoder.finish()?;
    }
    Ok(out)
}

/// What [`Patches::patch`] found.
#[derive(Debug)]
pub enum Patch {
    /// A patch of the target against `base`.
    Against {
        /// The base blob.
        base: BlobId,
        /// The zstd frame.
        bytes: Vec<u8>,
    },
    /// No patch: no base offered is usable, a patch would not be smaller than the blob as
    /// stored, or no turn came in time. Send the blob.
    None,
}

/// The patch cache and the budget for making patches.
#[derive(Debug)]
pub struct Patches {
    dir: PathBuf,
    limit: u64,
    cached: AtomicU64,
    jobs: tokio::sync::Semaphore,
}

impl Patches {
    /// The cache in `dir` (created, and its size counted), holding up to `limit` bytes.
    pub fn open(dir: PathBuf, limit: u64) -> io::Result<Self> {
        std::fs::create_dir_all(&dir)?;
        let mut cached = 0;
        for entry in std::fs::read_dir(&dir)? {
            let entry = entry?;
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if name.ends_with(".tmp") {
                let _ = std::fs::remove_file(entry.path());
            } else {
                cached += entry.metadata()?.len();
            }
        }
        Ok(Patches {
            dir,
            limit,
            cached: AtomicU64::new(cached),
            jobs: tokio::sync::Semaphore::new(PATCH_JOBS),
        })
    }

    fn path(&self, target: &BlobId, base: &BlobId, kind: &str) -> PathBuf {
        self.dir
            .join(format!("{}.{}.{kind}", target.to_hex(), base.to_hex()))
    }

    /// A patch of `target` against the first of `bases` the store holds within
    /// [`MAX_PATCHABLE`], from the cache or made now; or [`Patch::None`]. The caller has
    /// checked that `target` and the bases may be served.
    pub async fn patch(
        self: &Arc<Self>,
        blobs: Arc<dyn BlobStore>,
        target: BlobId,
        bases: &[BlobId],
    ) -> io::Result<Patch> {
        let Some(base) = self.choose_base(&blobs, &target, bases).await? else {
            return Ok(Patch::None);
        };
        if let Some(found) = self.cached(&target, &base)? {
            return Ok(found);
        }
        let Ok(Ok(_turn)) = tokio::time::timeout(BUDGET_WAIT, self.jobs.acquire()).await else {
            return Ok(Patch::None);
        };
        // Another request may have made it while this one waited.
        if let Some(found) = self.cached(&target, &base)? {
            return Ok(found);
        }
        let this = self.clone();
        tokio::task::spawn_blocking(move || this.make_and_keep(&*blobs, target, base))
            .await
            .map_err(io::Error::other)?
    }

    /// The first base the store holds, other than the target, with both within bounds.
    async fn choose_base(
        &self,
        blobs: &Arc<dyn BlobStore>,
        target: &BlobId,
        bases: &[BlobId],
    ) -> io::Result<Option<BlobId>> {
        let blobs = blobs.clone();
        let target = *target;
        let bases = bases.to_vec();
        tokio::task::spawn_blocking(move || {
            match blobs.size(&target.into())? {
                Some(size) if size <= MAX_PATCHABLE => {}
                _ => return Ok(None),
            }
            for base in bases.into_iter().filter(|base| *base != target) {
                if let Some(size) = blobs.size(&base.into())? {
                    if size <= MAX_PATCHABLE {
                        return Ok(Some(base));
                    }
                }
            }
            Ok(None)
        })
        .await
        .map_err(io::Error::other)?
    }

    fn cached(&self, target: &BlobId, base: &BlobId) -> io::Result<Option<Patch>> {
        if self.path(target, base, "none").exists() {
            return Ok(Some(Patch::None));
        }
        match std::fs::read(self.path(target, base, "zst")) {
            Ok(bytes) => Ok(Some(Patch::Against { base: *base, bytes })),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn make_and_keep(
        &self,
        blobs: &dyn BlobStore,
        target: BlobId,
        base: BlobId,
    ) -> io::Result<Patch> {
        let read = |digest: &BlobId| -> io::Result<Vec<u8>> {
            let mut bytes = Vec::new();
            io::Read::read_to_end(&mut blobs.open(&(*digest).into())?, &mut bytes)?;
            // The store's bytes are checked here because a patch made from damaged bytes
            // would be kept and served until evicted.
            if BlobId::of(&bytes) != *digest {
                return Err(io::Error::other(format!(
                    "the stored blob {digest} does not match its digest"
                )));
            }
            Ok(bytes)
        };
        let target_bytes = read(&target)?;
        let base_bytes = read(&base)?;
        let started = std::time::Instant::now();
        let patch = make_patch(&target_bytes, &base_bytes)?;
        tracing::debug!(
            %target,
            %base,
            target_size = target_bytes.len(),
            patch_size = patch.len(),
            ms = started.elapsed().as_millis() as u64,
            "made a patch"
        );
        // A patch that cannot be kept (a full disk) is still sent; it is made again next time.
        let keep = |kind: &str, bytes: &[u8]| {
            if let Err(error) = self.keep(&self.path(&target, &base, kind), bytes) {
                tracing::warn!(%error, %target, %base, "cannot keep a patch in the patch cache");
            }
        };
        // Worth sending only if smaller than the blob as the store would send it.
        let stored_len = match blobs.open_zstd(&target.into())? {
            Some((_, len)) => len,
            None => target_bytes.len() as u64,
        };
        if patch.len() as u64 >= stored_len {
            keep("none", &[]);
            return Ok(Patch::None);
        }
        keep("zst", &patch);
        Ok(Patch::Against { base, bytes: patch })
    }

    /// Writes a cache file (through a temporary name) and, past the limit, removes the oldest.
    fn keep(&self, path: &std::path::Path, bytes: &[u8]) -> io::Result<()> {
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, bytes)?;
        std::fs::rename(&tmp, path)?;
        let total =
            self.cached.fetch_add(bytes.len() as u64, Ordering::Relaxed) + bytes.len() as u64;
        if total > self.limit {
            self.evict()?;
        }
        Ok(())
    }

    /// Removes the oldest cache files until the cache is within nine tenths of its limit.
    fn evict(&self) -> io::Result<()> {
        let mut files = Vec::new();
        for entry in std::fs::read_dir(&self.dir)? {
            let entry = entry?;
            let metadata = entry.metadata()?;
            files.push((metadata.modified()?, metadata.len(), entry.path()));
        }
        files.sort();
        let mut total: u64 = files.iter().map(|(_, len, _)| len).sum();
        for (_, len, path) in files {
            if total <= self.limit / 10 * 9 {
                break;
            }
            if std::fs::remove_file(&path).is_ok() {
                total -= len;
            }
        }
        self.cached.store(total, Ordering::Relaxed);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(patch: &[u8], base: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut decoder = zstd::stream::read::Decoder::with_ref_prefix(patch, base).unwrap();
        io::Read::read_to_end(&mut decoder, &mut out).unwrap();
        out
    }

    #[test]
    fn a_patch_decodes_to_the_target_with_its_base_and_is_small() {
        let base: Vec<u8> = (0..200_000u32)
            .flat_map(|i| i.wrapping_mul(2654435761).to_le_bytes())
            .collect();
        let mut target = base.clone();
        target[123_456] ^= 0xff;
        target.splice(500_000..500_000, *b"a small insertion");
        let patch = make_patch(&target, &base).unwrap();
        assert!(patch.len() < 200, "{} bytes", patch.len());
        assert_eq!(decode(&patch, &base), target);
    }

    #[test]
    fn the_window_covers_both_blobs() {
        assert_eq!(window_log(0, 0), 10);
        assert_eq!(window_log(1 << 20, 1000), 22);
        assert_eq!(window_log(1000, (1 << 20) + 1), 22);
        assert_eq!(window_log(MAX_PATCHABLE, MAX_PATCHABLE), 27);
    }
}
