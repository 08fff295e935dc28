//! The examples of `docs/split-format.md`, byte for byte, and the tree digest computed from
//! the document's definition rather than from the crate.

mod support;

use cairn_split::{split, BlobId, BlobKind};
use sha2::{Digest as _, Sha256};
use support::*;

const EMPTY_MODULE: [u8; 8] = MODULE_PREAMBLE;

#[test]
fn an_empty_core_module_is_one_module_blob() {
    let split = split(&EMPTY_MODULE).unwrap();
    assert_eq!(split.blobs().len(), 1);
    assert_eq!(split.blobs()[0].kind, BlobKind::Module);
    assert_eq!(
        split.blobs()[0].digest.to_string(),
        "sha256:93a44bbb96c751218e4c00d479e4c14358122a389acca16205b1e4d0dc5f9476"
    );
}

#[test]
fn a_component_holding_one_module_has_the_documented_skeleton() {
    let bytes = component(&[module_section(&EMPTY_MODULE)]);
    let split = split(&bytes).unwrap();
    let mut expected = b"\0csk\x01\0\0\0".to_vec();
    expected.extend([0x00, 0x0a]);
    expected.extend(COMPONENT_PREAMBLE);
    expected.extend([0x01, 0x08]);
    expected.extend([0x01, 0x08]);
    expected.extend(BlobId::of(&EMPTY_MODULE).as_bytes());
    assert_eq!(&split.blobs()[0].bytes[..], &expected[..]);
    assert_eq!(split.blobs()[1].digest, BlobId::of(&EMPTY_MODULE));
}

/// The tree digest as section 5 defines it.
fn documented_tree_digest(size: u64, blobs: &[(u8, u64, [u8; 32])]) -> [u8; 32] {
    let mut preimage = b"CAIRN-SPLIT-TREE-V1".to_vec();
    preimage.extend(size.to_be_bytes());
    preimage.extend((blobs.len() as u32).to_be_bytes());
    for (kind, size, digest) in blobs {
        preimage.push(*kind);
        preimage.extend(size.to_be_bytes());
        preimage.extend(digest);
    }
    Sha256::digest(&preimage).into()
}

#[test]
fn the_tree_digest_follows_the_documented_definition() {
    let inner = component(&[module_section(&small_module(2))]);
    let bytes = component(&[module_section(&small_module(1)), component_section(&inner)]);
    let split = split(&bytes).unwrap();
    let listing: Vec<(u8, u64, [u8; 32])> = split
        .blobs()
        .iter()
        .map(|b| {
            let kind = match b.kind {
                BlobKind::Module => 1,
                BlobKind::Skeleton => 2,
            };
            (kind, b.bytes.len() as u64, *b.digest.as_bytes())
        })
        .collect();
    assert_eq!(
        split.tree_digest().as_bytes(),
        &documented_tree_digest(bytes.len() as u64, &listing)
    );
    let module = cairn_split::split(&EMPTY_MODULE).unwrap();
    assert_eq!(
        module.tree_digest().as_bytes(),
        &documented_tree_digest(8, &[(1, 8, *BlobId::of(&EMPTY_MODULE).as_bytes())])
    );
}

#[test]
fn blobs_are_also_named_by_raw_cids() {
    // Values from the specification (oci-wasm.md section 6), cross-checked there with
    // the `multiformats` package.
    assert_eq!(
        BlobId::of(b"hello world").to_cid(),
        "bafkreifzjut3te2nhyekklss27nh3k72ysco7y32koao5eei66wof36n5e"
    );
    let empty_module = BlobId::of(&EMPTY_MODULE);
    assert_eq!(
        empty_module.to_cid(),
        "bafkreieturf3xfwhkeqy4taa2r46jqkdlajcuoe2zsqwebnr4tinyx4uoy"
    );
    assert_eq!(
        BlobId::from_cid(&empty_module.to_cid()).unwrap(),
        empty_module
    );
    for bad in [
        "",
        "b",
        "bafkreieturf3xfwhkeqy4taa2r46jqkdlajcuoe2zsqwebnr4tinyx4uo",
        "Bafkreieturf3xfwhkeqy4taa2r46jqkdlajcuoe2zsqwebnr4tinyx4uoy",
        "bafybeieturf3xfwhkeqy4taa2r46jqkdlajcuoe2zsqwebnr4tinyx4uoy",
    ] {
        assert!(BlobId::from_cid(bad).is_err(), "{bad:?} was accepted");
    }
}
