//! Blobs an OCI content store keeps compressed: how a blob's zstd frame is found from the
//! blob's own digest.
//!
//! An OCI registry names a blob by the digest of the bytes it holds, so a blob kept as a zstd
//! frame is, to the registry, the frame. The store finds it through a small manifest tagged
//! with the blob's digest, `sha256-<hex>.zst` (the tag scheme cosign uses for signatures), an
//! OCI artifact of type [`ARTIFACT_TYPE`] with the empty config and one layer, the frame
//! (`application/zstd`), annotated with the blob's digest and size. Any OCI tool can list and
//! copy these; `zstd -d` turns a layer back into the blob.
//!
//! Nothing here is trusted more than the registry's other answers: the frame's bytes are checked
//! against the layer's digest as they stream, and the blob they decompress to is checked against
//! its own digest by every join.

use std::collections::BTreeMap;

use crate::content::BlobDigest;

/// The artifact type of the manifests that point to compressed blobs.
pub const ARTIFACT_TYPE: &str = "application/vnd.cairn.blob.v1+zstd";
/// The media type of a compressed blob's layer.
pub const FRAME_MEDIA_TYPE: &str = "application/zstd";
/// The annotation naming the blob's digest.
pub const BLOB_DIGEST_ANNOTATION: &str = "dev.cairn.blob.digest";
/// The annotation giving the blob's size.
pub const BLOB_SIZE_ANNOTATION: &str = "dev.cairn.blob.size";
/// The media type of the manifests.
pub const MANIFEST_MEDIA_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";
/// The OCI empty descriptor's content, media type and digest.
pub const EMPTY_CONFIG: &[u8] = b"{}";
pub const EMPTY_MEDIA_TYPE: &str = "application/vnd.oci.empty.v1+json";
pub const EMPTY_DIGEST: &str =
    "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a";

/// Where a compressed blob's frame is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame {
    /// The digest of the frame's bytes: its name in the registry.
    pub digest: BlobDigest,
    /// The frame's length.
    pub len: u64,
    /// The blob's size.
    pub size: u64,
}

/// The tag of the manifest that points to `blob`'s frame.
pub fn tag_of(blob: &BlobDigest) -> String {
    format!("{}-{}.zst", blob.algorithm(), blob.to_hex())
}

/// The manifest pointing to `frame`, the compressed form of `blob`.
pub fn manifest_of(blob: &BlobDigest, frame: &Frame) -> Vec<u8> {
    let annotations = BTreeMap::from([
        (BLOB_DIGEST_ANNOTATION, blob.to_string()),
        (BLOB_SIZE_ANNOTATION, frame.size.to_string()),
    ]);
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": MANIFEST_MEDIA_TYPE,
        "artifactType": ARTIFACT_TYPE,
        "config": {
            "mediaType": EMPTY_MEDIA_TYPE,
            "digest": EMPTY_DIGEST,
            "size": EMPTY_CONFIG.len(),
        },
        "layers": [{
            "mediaType": FRAME_MEDIA_TYPE,
            "digest": frame.digest.to_string(),
            "size": frame.len,
            "annotations": annotations,
        }],
    });
    serde_json::to_vec(&manifest).expect("a JSON value serializes")
}

/// Reads the frame of `blob` from the manifest tagged for it; an error says what is wrong.
pub fn frame_in(manifest: &[u8], blob: &BlobDigest) -> Result<Frame, String> {
    let value: serde_json::Value =
        serde_json::from_slice(manifest).map_err(|e| format!("not JSON: {e}"))?;
    let layers = value["layers"]
        .as_array()
        .filter(|layers| layers.len() == 1)
        .ok_or("it does not have exactly one layer")?;
    let layer = &layers[0];
    if layer["mediaType"] != FRAME_MEDIA_TYPE {
        return Err(format!("its layer is not {FRAME_MEDIA_TYPE}"));
    }
    let named = layer["annotations"][BLOB_DIGEST_ANNOTATION].as_str();
    if named != Some(blob.to_string().as_str()) {
        return Err(format!("it names another blob ({named:?})"));
    }
    let digest = layer["digest"]
        .as_str()
        .and_then(|text| text.parse::<BlobDigest>().ok())
        .ok_or("its layer's digest is invalid")?;
    let len = layer["size"]
        .as_u64()
        .ok_or("its layer's size is invalid")?;
    let size = layer["annotations"][BLOB_SIZE_ANNOTATION]
        .as_str()
        .and_then(|text| text.parse::<u64>().ok())
        .ok_or("its blob size is invalid")?;
    Ok(Frame { digest, len, size })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manifest_names_the_frame_and_the_blob() {
        let blob: BlobDigest = format!("sha256:{}", "ab".repeat(32)).parse().unwrap();
        let other: BlobDigest = format!("sha256:{}", "cd".repeat(32)).parse().unwrap();
        let frame = Frame {
            digest: other,
            len: 10,
            size: 100,
        };
        assert_eq!(tag_of(&blob), format!("sha256-{}.zst", "ab".repeat(32)));
        let manifest = manifest_of(&blob, &frame);
        assert_eq!(frame_in(&manifest, &blob), Ok(frame));
        assert!(frame_in(&manifest, &other)
            .unwrap_err()
            .contains("names another blob"));
        assert!(frame_in(b"{}", &blob).is_err());
    }

    #[test]
    fn the_empty_digest_is_that_of_the_empty_config() {
        use sha2::Digest as _;
        assert_eq!(
            EMPTY_DIGEST,
            format!("sha256:{}", hex::encode(sha2::Sha256::digest(EMPTY_CONFIG)))
        );
    }
}
