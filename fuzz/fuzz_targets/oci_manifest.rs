//! Any bytes as a pushed OCI manifest: `oci::manifest::parse` never panics, and what it
//! accepts is a JSON object whose media type is a valid media type (the `Content-Type` of
//! every pull), the push's own `Content-Type` unless that is generic, and whose references
//! are the ones the object lists.
//!
//! The first byte picks the push's `Content-Type` from a few fixed ones; from 8 on, the
//! `Content-Type` is the rest's first line (up to `\n`) and the body the remainder.

#![no_main]

use cairn_server::oci::manifest::{is_media_type, parse};
use cairn_server::oci::{IMAGE_INDEX_MEDIA_TYPE, IMAGE_MANIFEST_MEDIA_TYPE};
use libfuzzer_sys::fuzz_target;

const CONTENT_TYPES: [Option<&str>; 8] = [
    None,
    Some("application/json"),
    Some(IMAGE_MANIFEST_MEDIA_TYPE),
    Some(IMAGE_INDEX_MEDIA_TYPE),
    Some("application/vnd.oci.image.manifest.v1+json; charset=utf-8"),
    Some("application/octet-stream"),
    Some(""),
    Some("not a media type"),
];

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let (content_type, body) = match CONTENT_TYPES.get(usize::from(selector)) {
        Some(&content_type) => (content_type, rest),
        None => {
            let end = rest.iter().position(|&b| b == b'\n').unwrap_or(rest.len());
            let Ok(line) = std::str::from_utf8(&rest[..end]) else {
                return;
            };
            (Some(line), rest.get(end + 1..).unwrap_or_default())
        }
    };
    let Ok(manifest) = parse(body, content_type) else {
        return;
    };

    assert!(
        is_media_type(&manifest.media_type),
        "{:?}",
        manifest.media_type
    );
    let named = content_type
        .map(|v| v.split(';').next().unwrap_or(v).trim())
        .filter(|v| !matches!(*v, "" | "application/json" | "application/octet-stream"));
    let json: serde_json::Value = serde_json::from_slice(body).expect("an accepted body is JSON");
    let object = json.as_object().expect("an accepted body is a JSON object");
    let stated = object.get("mediaType").and_then(|m| m.as_str());
    if let Some(named) = named.or(stated) {
        assert_eq!(
            manifest.media_type, named,
            "the media type is the one named"
        );
    }
    let count = |field: &str| {
        object
            .get(field)
            .map_or(0, |list| list.as_array().unwrap().len())
    };
    let config = usize::from(object.contains_key("config"));
    assert!(manifest.blobs.len() <= config + count("layers"));
    assert_eq!(manifest.manifests.len(), count("manifests"));
    assert_eq!(manifest.subject.is_some(), object.contains_key("subject"));
    if let Some(artifact_type) = object.get("artifactType").and_then(|a| a.as_str()) {
        assert_eq!(manifest.artifact_type.as_deref(), Some(artifact_type));
    }
});
