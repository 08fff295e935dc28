//! Reading a pushed OCI manifest: what it is (its media type), what it refers to (blobs and
//! child manifests), its subject and artifact type, with every descriptor checked. Pure: no
//! I/O, so it can be fuzzed alone.

/// The OCI image manifest media type.
pub const IMAGE_MANIFEST_MEDIA_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";
/// The OCI image index media type.
pub const IMAGE_INDEX_MEDIA_TYPE: &str = "application/vnd.oci.image.index.v1+json";

/// A pushed manifest, as far as the registry needs to know it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushedManifest {
    /// The media type pulls answer with.
    pub media_type: String,
    /// Blobs it needs the repository to hold (config and distributable layers).
    pub blobs: Vec<String>,
    /// Manifests it needs the repository to hold (index entries).
    pub manifests: Vec<String>,
    /// The digest of the manifest it refers to (`subject`), if any.
    pub subject: Option<String>,
    /// Its artifact type, or its config's media type.
    pub artifact_type: Option<String>,
    /// The config's descriptor, if it has one.
    pub config: Option<Descriptor>,
    /// The layers' descriptors, in order.
    pub layers: Vec<Descriptor>,
}

/// A descriptor's media type, digest and size, as pushed (checked for shape only).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Descriptor {
    /// `mediaType`.
    pub media_type: String,
    /// `digest`.
    pub digest: String,
    /// `size`.
    pub size: u64,
}

/// Why a pushed manifest is refused (`MANIFEST_INVALID`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ManifestError {
    /// Not JSON.
    #[error("the manifest is not JSON")]
    NotJson,
    /// JSON, but not an object.
    #[error("the manifest is not a JSON object")]
    NotObject,
    /// The media type is not one.
    #[error("the media type is not a valid media type")]
    MediaType,
    /// A descriptor is malformed.
    #[error("descriptor `{field}` is invalid: {reason}")]
    Descriptor {
        /// Where it is, e.g. `layers[2]`.
        field: String,
        /// What is wrong with it.
        reason: &'static str,
    },
}

/// Reads a pushed manifest. `content_type` is the push's `Content-Type`, which names the
/// media type unless it is a generic JSON one.
pub fn parse(body: &[u8], content_type: Option<&str>) -> Result<PushedManifest, ManifestError> {
    let json: serde_json::Value =
        serde_json::from_slice(body).map_err(|_| ManifestError::NotJson)?;
    let object = json.as_object().ok_or(ManifestError::NotObject)?;
    let content_type = content_type
        .map(|v| v.split(';').next().unwrap_or(v).trim())
        .filter(|v| !v.is_empty() && *v != "application/json" && *v != "application/octet-stream");
    let media_type = content_type
        .map(str::to_owned)
        .or_else(|| {
            object
                .get("mediaType")
                .and_then(|m| m.as_str())
                .map(str::to_owned)
        })
        .unwrap_or_else(|| {
            if object.contains_key("manifests") {
                IMAGE_INDEX_MEDIA_TYPE.to_owned()
            } else {
                IMAGE_MANIFEST_MEDIA_TYPE.to_owned()
            }
        });
    // It becomes the Content-Type of every pull: it must be a media type.
    if !is_media_type(&media_type) {
        return Err(ManifestError::MediaType);
    }
    let mut blobs = Vec::new();
    let mut manifests = Vec::new();
    let mut config_media_type = None;
    let mut config_descriptor = None;
    if let Some(config) = object.get("config") {
        let config = descriptor(config, "config".into())?;
        config_media_type = Some(config.media_type.to_owned());
        blobs.push(config.digest.to_owned());
        config_descriptor = Some(config.owned());
    }
    let mut layers = Vec::new();
    for (index, layer) in list(object.get("layers"), "layers")?.iter().enumerate() {
        let layer_descriptor = descriptor(layer, format!("layers[{index}]"))?;
        layers.push(layer_descriptor.owned());
        // A non-distributable layer (its media type says so, or it lists `urls`) lives
        // elsewhere: a manifest may name it without the registry holding it.
        let media_type = layer_descriptor.media_type;
        let distributable = !media_type.contains("nondistributable")
            && !media_type.contains("foreign")
            && layer.get("urls").is_none();
        if distributable {
            blobs.push(layer_descriptor.digest.to_owned());
        }
    }
    for (index, child) in list(object.get("manifests"), "manifests")?
        .iter()
        .enumerate()
    {
        manifests.push(
            descriptor(child, format!("manifests[{index}]"))?
                .digest
                .to_owned(),
        );
    }
    let subject = match object.get("subject") {
        None => None,
        Some(subject) => Some(descriptor(subject, "subject".into())?.digest.to_owned()),
    };
    let artifact_type = object
        .get("artifactType")
        .and_then(|a| a.as_str())
        .map(str::to_owned)
        .or(config_media_type);
    Ok(PushedManifest {
        media_type,
        blobs,
        manifests,
        subject,
        artifact_type,
        config: config_descriptor,
        layers,
    })
}

/// The array at `field`, or none if it is absent.
fn list<'a>(
    value: Option<&'a serde_json::Value>,
    field: &str,
) -> Result<&'a [serde_json::Value], ManifestError> {
    match value {
        None => Ok(&[]),
        Some(value) => {
            value
                .as_array()
                .map(Vec::as_slice)
                .ok_or_else(|| ManifestError::Descriptor {
                    field: field.to_owned(),
                    reason: "not a list",
                })
        }
    }
}

/// The parts of a descriptor the registry reads.
struct DescriptorView<'a> {
    media_type: &'a str,
    digest: &'a str,
    size: u64,
}

impl DescriptorView<'_> {
    fn owned(&self) -> Descriptor {
        Descriptor {
            media_type: self.media_type.to_owned(),
            digest: self.digest.to_owned(),
            size: self.size,
        }
    }
}

/// Checks a descriptor (image-spec `descriptor.md`): a media type, a digest, and a size
/// that is a whole number from 0 to 2^63 − 1 (an int64 that is not negative).
fn descriptor(
    value: &serde_json::Value,
    field: String,
) -> Result<DescriptorView<'_>, ManifestError> {
    let invalid = |reason| ManifestError::Descriptor {
        field: field.clone(),
        reason,
    };
    let object = value.as_object().ok_or_else(|| invalid("not an object"))?;
    let media_type = object
        .get("mediaType")
        .and_then(|m| m.as_str())
        .ok_or_else(|| invalid("`mediaType` is missing or not a string"))?;
    let digest = object
        .get("digest")
        .and_then(|d| d.as_str())
        .ok_or_else(|| invalid("`digest` is missing or not a string"))?;
    let size = object
        .get("size")
        .ok_or_else(|| invalid("`size` is missing"))?;
    let Some(size) = size.as_i64().and_then(|size| u64::try_from(size).ok()) else {
        return Err(invalid("`size` must be a whole number from 0 to 2^63-1"));
    };
    Ok(DescriptorView {
        media_type,
        digest,
        size,
    })
}

/// Whether `text` is a media type as RFC 6838 spells one: `type/subtype`, each 1 to 127
/// of letters, digits and ``!#$&-^_.+``, starting with a letter or digit.
pub fn is_media_type(text: &str) -> bool {
    let name = |part: &str| {
        let bytes = part.as_bytes();
        !bytes.is_empty()
            && bytes.len() <= 127
            && bytes[0].is_ascii_alphanumeric()
            && bytes
                .iter()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$&-^_.+".contains(b))
    };
    matches!(text.split_once('/'), Some((kind, sub)) if name(kind) && name(sub))
}

#[cfg(test)]
mod tests {
    use super::*;

    const DIGEST: &str = "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a";

    fn manifest_with_layer_size(size: &str) -> Vec<u8> {
        format!(
            r#"{{"schemaVersion":2,"mediaType":"{IMAGE_MANIFEST_MEDIA_TYPE}",
            "config":{{"mediaType":"application/vnd.wasm.config.v0+json","digest":"{DIGEST}","size":2}},
            "layers":[{{"mediaType":"application/wasm","digest":"{DIGEST}","size":{size}}}]}}"#
        )
        .into_bytes()
    }

    #[test]
    fn a_wasm_artifact_names_its_config_and_layer() {
        let manifest = parse(&manifest_with_layer_size("8"), None).unwrap();
        assert_eq!(manifest.media_type, IMAGE_MANIFEST_MEDIA_TYPE);
        assert_eq!(manifest.blobs, vec![DIGEST.to_owned(), DIGEST.to_owned()]);
        assert_eq!(
            manifest.artifact_type.as_deref(),
            Some("application/vnd.wasm.config.v0+json")
        );
    }

    #[test]
    fn descriptor_sizes_are_non_negative_int64s() {
        for size in ["0", "9223372036854775807"] {
            assert!(
                parse(&manifest_with_layer_size(size), None).is_ok(),
                "{size}"
            );
        }
        for size in [
            "-2",
            "-1",
            "18446744073709551616",
            "9223372036854775808",
            "1.5",
            "\"8\"",
            "null",
        ] {
            let error = parse(&manifest_with_layer_size(size), None).unwrap_err();
            assert!(
                matches!(&error, ManifestError::Descriptor { field, .. } if field == "layers[0]"),
                "{size}: {error}"
            );
        }
    }

    #[test]
    fn a_descriptor_needs_a_digest_and_a_media_type() {
        let body = br#"{"schemaVersion":2,"layers":[{"size":1,"mediaType":"a/b"}]}"#;
        assert!(matches!(
            parse(body, None),
            Err(ManifestError::Descriptor { .. })
        ));
        let body = br#"{"schemaVersion":2,"manifests":[{"size":1,"digest":"sha256:00"}]}"#;
        assert!(matches!(
            parse(body, None),
            Err(ManifestError::Descriptor { .. })
        ));
    }

    #[test]
    fn the_content_type_names_the_media_type_unless_it_is_generic() {
        let body = br#"{"schemaVersion":2,"manifests":[]}"#;
        assert_eq!(
            parse(body, None).unwrap().media_type,
            IMAGE_INDEX_MEDIA_TYPE
        );
        assert_eq!(
            parse(body, Some("application/json")).unwrap().media_type,
            IMAGE_INDEX_MEDIA_TYPE
        );
        assert_eq!(
            parse(body, Some("application/x.custom+json; charset=utf-8"))
                .unwrap()
                .media_type,
            "application/x.custom+json"
        );
        assert_eq!(
            parse(body, Some("not a type")),
            Err(ManifestError::MediaType)
        );
    }

    #[test]
    fn bad_json_is_refused() {
        assert_eq!(parse(b"[1]", None), Err(ManifestError::NotObject));
        assert_eq!(parse(b"{", None), Err(ManifestError::NotJson));
        assert!(parse(br#"{"layers":7}"#, None).is_err());
    }
}
