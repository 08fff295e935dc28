//! A join verifies every blob it reads: any changed, missing, extra, reordered or
//! substituted blob, and any manifest that does not match its blobs, is refused.

mod support;

use std::collections::HashMap;

use cairn_split::skeleton::SkeletonError;
use cairn_split::{join, split, BlobEntry, BlobId, BlobKind, JoinError, Manifest, ManifestError};
use support::*;

struct Fixture {
    bytes: Vec<u8>,
}

impl Fixture {
    fn new() -> Self {
        let inner = component(&[module_section(&small_module(1)), custom("inner", b"x")]);
        let bytes = component(&[
            custom("outer", b"y"),
            module_section(&small_module(2)),
            component_section(&inner),
            module_section(&small_module(1)),
        ]);
        Fixture { bytes }
    }

    fn blobs(&self) -> (Manifest, HashMap<BlobId, Vec<u8>>) {
        let split = split(&self.bytes).unwrap();
        let blobs = split
            .blobs()
            .iter()
            .map(|b| (b.digest, b.bytes.to_vec()))
            .collect();
        (split.manifest().clone(), blobs)
    }
}

fn join_to_vec(
    manifest: &Manifest,
    blobs: &mut HashMap<BlobId, Vec<u8>>,
) -> Result<Vec<u8>, JoinError> {
    let mut out = Vec::new();
    join(manifest, blobs, &mut out).map(|_| out)
}

fn first_of(manifest: &Manifest, kind: BlobKind) -> BlobEntry {
    *manifest.blobs().iter().find(|b| b.kind == kind).unwrap()
}

#[test]
fn an_untouched_tree_joins() {
    let fixture = Fixture::new();
    let (manifest, mut blobs) = fixture.blobs();
    assert_eq!(join_to_vec(&manifest, &mut blobs).unwrap(), fixture.bytes);
}

#[test]
fn a_changed_byte_in_a_module_is_refused() {
    let (manifest, mut blobs) = Fixture::new().blobs();
    let module = first_of(&manifest, BlobKind::Module);
    blobs.get_mut(&module.digest).unwrap()[9] ^= 0x40;
    assert!(matches!(
        join_to_vec(&manifest, &mut blobs),
        Err(JoinError::DigestMismatch { expected, .. }) if expected == module.digest
    ));
}

#[test]
fn a_changed_byte_in_a_skeleton_is_refused() {
    let (manifest, mut blobs) = Fixture::new().blobs();
    let root = manifest.root().digest;
    let last = blobs[&root].len() - 1;
    blobs.get_mut(&root).unwrap()[last] ^= 0x01;
    assert!(matches!(
        join_to_vec(&manifest, &mut blobs),
        Err(JoinError::DigestMismatch { .. })
    ));
}

#[test]
fn a_missing_blob_is_refused() {
    let (manifest, mut blobs) = Fixture::new().blobs();
    let module = first_of(&manifest, BlobKind::Module);
    blobs.remove(&module.digest);
    assert!(matches!(
        join_to_vec(&manifest, &mut blobs),
        Err(JoinError::Read { .. })
    ));
}

#[test]
fn a_truncated_or_extended_blob_is_refused() {
    let (manifest, mut blobs) = Fixture::new().blobs();
    let module = first_of(&manifest, BlobKind::Module);
    blobs.get_mut(&module.digest).unwrap().pop();
    assert!(matches!(
        join_to_vec(&manifest, &mut blobs),
        Err(JoinError::SizeMismatch { .. })
    ));
    let (manifest, mut blobs) = Fixture::new().blobs();
    blobs.get_mut(&module.digest).unwrap().push(0);
    assert!(matches!(
        join_to_vec(&manifest, &mut blobs),
        Err(JoinError::SizeMismatch { .. })
    ));
}

#[test]
fn a_manifest_whose_tree_digest_does_not_match_its_blobs_is_refused() {
    let (manifest, _) = Fixture::new().blobs();
    let json = manifest.to_json();
    let other = split(&component(&[])).unwrap().tree_digest();
    let forged = json.replace(&manifest.tree_digest().to_string(), &other.to_string());
    assert!(matches!(
        Manifest::from_json(forged.as_bytes()),
        Err(ManifestError::TreeDigestMismatch { .. })
    ));
    // Changing a listed size changes the tree digest, so it is refused too.
    let module = first_of(&manifest, BlobKind::Module);
    let resized = json.replacen(
        &format!("\"size\": {}", module.size),
        &format!("\"size\": {}", module.size + 1),
        1,
    );
    assert!(Manifest::from_json(resized.as_bytes()).is_err());
}

#[test]
fn reordered_or_extra_manifest_entries_are_refused() {
    let (manifest, mut blobs) = Fixture::new().blobs();
    // Swap two blobs after the root: a new, self-consistent manifest, in the wrong order.
    let mut entries = manifest.blobs().to_vec();
    let last = entries.len() - 1;
    entries.swap(1, last);
    let reordered = Manifest::new(manifest.size(), entries).unwrap();
    assert!(matches!(
        join_to_vec(&reordered, &mut blobs),
        Err(JoinError::NotInJoinOrder { .. })
    ));
    // A blob the tree never uses.
    let stray = small_module(60);
    let mut entries = manifest.blobs().to_vec();
    entries.push(BlobEntry {
        kind: BlobKind::Module,
        digest: BlobId::of(&stray),
        size: stray.len() as u64,
    });
    blobs.insert(BlobId::of(&stray), stray);
    let extra = Manifest::new(manifest.size(), entries).unwrap();
    assert!(matches!(
        join_to_vec(&extra, &mut blobs),
        Err(JoinError::NotInJoinOrder { .. })
    ));
}

#[test]
fn a_manifest_missing_a_blob_the_tree_uses_is_refused() {
    let (manifest, mut blobs) = Fixture::new().blobs();
    let entries: Vec<BlobEntry> = manifest.blobs()[..manifest.blobs().len() - 1].to_vec();
    let short = Manifest::new(manifest.size(), entries).unwrap();
    assert!(matches!(
        join_to_vec(&short, &mut blobs),
        Err(JoinError::UnlistedBlob { .. })
    ));
}

#[test]
fn a_well_hashed_but_invalid_skeleton_is_refused() {
    // A skeleton whose literal holds a module section's payload: hashed correctly, listed
    // correctly, but not canonical, so the join refuses it.
    let m = small_module(3);
    let mut skeleton = b"\0csk\x01\0\0\0".to_vec();
    let literal = component(&[module_section(&m)]);
    skeleton.push(0x00);
    skeleton.extend(leb(literal.len() as u32, 1));
    skeleton.extend(&literal);
    let digest = BlobId::of(&skeleton);
    let manifest = Manifest::new(
        literal.len() as u64,
        vec![BlobEntry {
            kind: BlobKind::Skeleton,
            digest,
            size: skeleton.len() as u64,
        }],
    )
    .unwrap();
    let mut blobs = HashMap::from([(digest, skeleton)]);
    assert!(matches!(
        join_to_vec(&manifest, &mut blobs),
        Err(JoinError::Skeleton {
            source: SkeletonError::BadFraming { .. },
            ..
        })
    ));
}

#[test]
fn a_module_blob_listed_as_a_skeleton_is_refused() {
    let m = small_module(4);
    let digest = BlobId::of(&m);
    let manifest = Manifest::new(
        m.len() as u64,
        vec![BlobEntry {
            kind: BlobKind::Skeleton,
            digest,
            size: m.len() as u64,
        }],
    )
    .unwrap();
    let mut blobs = HashMap::from([(digest, m)]);
    assert!(matches!(
        join_to_vec(&manifest, &mut blobs),
        Err(JoinError::Skeleton {
            source: SkeletonError::BadMagic,
            ..
        })
    ));
}

#[test]
fn a_skeleton_far_larger_than_its_joined_size_is_refused_before_reading() {
    let digest = BlobId::of(b"never read");
    let manifest = Manifest::new(
        10,
        vec![BlobEntry {
            kind: BlobKind::Skeleton,
            digest,
            size: 1 << 40,
        }],
    )
    .unwrap();
    let mut blobs = HashMap::new();
    assert!(matches!(
        join_to_vec(&manifest, &mut blobs),
        Err(JoinError::SkeletonTooLarge { .. })
    ));
}

#[test]
fn skeletons_are_canonical() {
    let literal = component(&[custom("a", b"b")]);
    let encode = |pieces: &[(&[u8], usize)]| {
        let mut skeleton = b"\0csk\x01\0\0\0".to_vec();
        for (bytes, width) in pieces {
            skeleton.push(0x00);
            skeleton.extend(leb(bytes.len() as u32, *width));
            skeleton.extend(*bytes);
        }
        skeleton
    };
    use cairn_split::skeleton::Skeleton;
    assert!(Skeleton::decode(&encode(&[(&literal, 1)])).is_ok());
    assert!(matches!(
        Skeleton::decode(&encode(&[(&literal, 2)])),
        Err(SkeletonError::NotCanonical { .. })
    ));
    assert!(matches!(
        Skeleton::decode(&encode(&[(&literal[..5], 1), (&literal[5..], 1)])),
        Err(SkeletonError::NotCanonical { .. })
    ));
    assert!(matches!(
        Skeleton::decode(&encode(&[(&literal[..5], 1)])),
        Err(SkeletonError::BadFraming { .. })
    ));
    assert!(matches!(
        Skeleton::decode(b"\0csk\x02\0\0\0"),
        Err(SkeletonError::BadMagic)
    ));
}

/// A source that remembers which blobs a join verified, and vouches for them later.
struct RememberingSource {
    blobs: HashMap<BlobId, Vec<u8>>,
    intact: std::collections::HashSet<BlobId>,
    hashed: usize,
}

impl cairn_split::BlobSource for RememberingSource {
    fn open(&mut self, entry: &BlobEntry) -> std::io::Result<Box<dyn std::io::Read + '_>> {
        cairn_split::BlobSource::open(&mut self.blobs, entry)
    }

    fn known_intact(&mut self, entry: &BlobEntry) -> bool {
        let known = self.intact.contains(&entry.digest);
        if !known {
            self.hashed += 1;
        }
        known
    }

    fn verified(&mut self, entry: &BlobEntry) {
        self.intact.insert(entry.digest);
    }
}

#[test]
fn a_source_learns_which_blobs_verified_and_only_those() {
    let fixture = Fixture::new();
    let (manifest, blobs) = fixture.blobs();
    let module = first_of(&manifest, BlobKind::Module);
    let mut source = RememberingSource {
        blobs,
        intact: Default::default(),
        hashed: 0,
    };
    // A changed module: refused, and not remembered as verified.
    source.blobs.get_mut(&module.digest).unwrap()[9] ^= 1;
    let mut out = Vec::new();
    assert!(matches!(
        join(&manifest, &mut source, &mut out),
        Err(JoinError::DigestMismatch { expected, .. }) if expected == module.digest
    ));
    assert!(!source.intact.contains(&module.digest));
    // Restored: the join verifies every blob and tells the source each one.
    source.blobs.get_mut(&module.digest).unwrap()[9] ^= 1;
    let mut out = Vec::new();
    join(&manifest, &mut source, &mut out).unwrap();
    assert_eq!(out, fixture.bytes);
    let all: std::collections::HashSet<BlobId> =
        manifest.blobs().iter().map(|b| b.digest).collect();
    assert_eq!(source.intact, all);
    // Again: nothing is hashed, the bytes are the same.
    source.hashed = 0;
    let mut again = Vec::new();
    join(&manifest, &mut source, &mut again).unwrap();
    assert_eq!(again, fixture.bytes);
    assert_eq!(source.hashed, 0);
    // A vouched-for blob of the wrong size is still refused: sizes are always checked.
    source.blobs.get_mut(&module.digest).unwrap().push(0);
    let mut out = Vec::new();
    assert!(matches!(
        join(&manifest, &mut source, &mut out),
        Err(JoinError::SizeMismatch { .. })
    ));
}
