//! Choosing the blobs a missing blob may be patched from.
//!
//! A new build of a component usually changes a few of its blobs a little: the module of a
//! Python or JavaScript runtime whose snapshot moved, the skeleton whose digests changed. A
//! client that holds an earlier release of the same package holds the blobs those grew from.
//! For each blob it lacks, the client offers the registry up to [`MAX_OFFERED`] blobs of the
//! earlier releases whose manifests it kept and whose blobs its cache holds: the blob in the
//! same place (the same kind, counted in join order) and the blob of that kind closest in size,
//! nearest release first. The registry patches against the first it can use.

use cairn_split::{BlobEntry, BlobId, BlobKind, Manifest};

use crate::cache::FragmentCache;

/// The most bases offered for one blob.
pub const MAX_OFFERED: usize = 4;

/// Bases for `missing`, a blob of `manifest`, from `earlier` manifests (nearest release
/// first) whose blobs `cache` holds. Empty when there is none.
pub fn bases_for(
    missing: &BlobEntry,
    manifest: &Manifest,
    earlier: &[Manifest],
    cache: &FragmentCache,
) -> Vec<BlobId> {
    let place = place_of(manifest, missing);
    let mut bases = Vec::new();
    let mut offer = |entry: &BlobEntry| {
        if bases.len() < MAX_OFFERED
            && entry.digest != missing.digest
            && !bases.contains(&entry.digest)
            && cache.contains(&entry.digest)
        {
            bases.push(entry.digest);
        }
    };
    for manifest in earlier {
        if let Some(same_place) = place.and_then(|place| nth_of_kind(manifest, missing.kind, place))
        {
            offer(same_place);
        }
        let closest = manifest
            .blobs()
            .iter()
            .filter(|entry| entry.kind == missing.kind)
            .min_by_key(|entry| entry.size.abs_diff(missing.size));
        if let Some(closest) = closest {
            offer(closest);
        }
    }
    bases
}

/// Which blob of its kind `entry` is in `manifest`'s join order.
fn place_of(manifest: &Manifest, entry: &BlobEntry) -> Option<usize> {
    manifest
        .blobs()
        .iter()
        .filter(|other| other.kind == entry.kind)
        .position(|other| other.digest == entry.digest)
}

fn nth_of_kind(manifest: &Manifest, kind: BlobKind, n: usize) -> Option<&BlobEntry> {
    manifest
        .blobs()
        .iter()
        .filter(|entry| entry.kind == kind)
        .nth(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(kind: BlobKind, byte: u8, size: u64) -> BlobEntry {
        BlobEntry {
            kind,
            digest: BlobId::of(&[byte]),
            size,
        }
    }

    #[test]
    fn the_same_place_comes_first_then_the_closest_size_and_only_cached_blobs() {
        let dir = std::env::temp_dir().join(format!("cairn-bases-{}", std::process::id()));
        let cache = FragmentCache::new(&dir);
        let old_a = entry(BlobKind::Module, 1, 1000);
        let old_b = entry(BlobKind::Module, 2, 5000);
        let uncached = entry(BlobKind::Module, 3, 5100);
        for blob in [&old_a, &old_b] {
            let bytes = [if blob.digest == old_a.digest { 1 } else { 2 }];
            cache.put(&blob.digest, &bytes).unwrap();
        }
        let new_a = entry(BlobKind::Module, 4, 1010);
        let new_b = entry(BlobKind::Module, 5, 5050);
        let skeleton = entry(BlobKind::Skeleton, 6, 100);
        let manifest = Manifest::new(6160, vec![skeleton, new_a, new_b]).unwrap();
        let earlier = Manifest::new(6100, vec![skeleton, old_a, old_b]).unwrap();
        let also = Manifest::new(5200, vec![skeleton, uncached]).unwrap();
        // new_b is the second module: old_b holds that place and is closest in size too.
        assert_eq!(
            bases_for(&new_b, &manifest, &[also.clone(), earlier.clone()], &cache),
            vec![old_b.digest]
        );
        assert_eq!(
            bases_for(&new_a, &manifest, std::slice::from_ref(&earlier), &cache),
            vec![old_a.digest]
        );
        // Nothing cached, nothing offered.
        assert!(bases_for(&new_a, &manifest, &[also], &cache).is_empty());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
