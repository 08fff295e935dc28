//! Content blobs in S3-compatible object storage (`--content s3://BUCKET/PREFIX`), through the
//! `object_store` crate: what several nodes of one registry share.
//!
//! Each blob is one object, `PREFIX/sha256/<hex>.zst` (a zstd frame, as the directory store
//! keeps it, when that is smaller) or `PREFIX/sha256/<hex>` (the bytes as they are), written
//! once: a conditional put (`If-None-Match: *`) that finds the object there already leaves it
//! (same name, same bytes). The endpoint, region and credentials come from the usual `AWS_*`
//! variables (`AWS_ENDPOINT`, `AWS_REGION`, `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, and
//! `AWS_ALLOW_HTTP=true` for a plain-HTTP endpoint). Every call blocks: the requests run on a
//! small runtime of the store's own (`StoreRuntime`, shared with the OCI store).

use std::io::{self, Read};
use std::sync::Arc;

use object_store::aws::{AmazonS3Builder, S3ConditionalPut};
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt as _, PutMode, PutOptions, PutPayload};

use crate::content::{compress_for_storage, BlobDigest, BlobStore};
use crate::store_runtime::StoreRuntime;

/// Where in S3 the blobs are kept: a bucket and a key prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Location {
    /// The bucket.
    pub bucket: String,
    /// The key prefix, without slashes at either end (may be empty).
    pub prefix: String,
}

/// Why an `s3://` location cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum S3LocationError {
    /// No bucket after `s3://`.
    #[error("`{0}` names no bucket: write s3://BUCKET or s3://BUCKET/PREFIX")]
    NoBucket(String),
}

impl std::str::FromStr for S3Location {
    type Err = S3LocationError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let rest = text.strip_prefix("s3://").unwrap_or(text);
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() || bucket.contains('@') {
            return Err(S3LocationError::NoBucket(text.to_owned()));
        }
        Ok(S3Location {
            bucket: bucket.to_owned(),
            prefix: prefix.trim_matches('/').to_owned(),
        })
    }
}

impl std::fmt::Display for S3Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.prefix.as_str() {
            "" => write!(f, "s3://{}", self.bucket),
            prefix => write!(f, "s3://{}/{prefix}", self.bucket),
        }
    }
}

/// Blobs in an S3 bucket.
pub struct S3ContentStore {
    store: Arc<dyn ObjectStore>,
    location: S3Location,
    runtime: StoreRuntime,
}

impl std::fmt::Debug for S3ContentStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "S3ContentStore({})", self.location)
    }
}

fn io_error(error: object_store::Error) -> io::Error {
    match error {
        object_store::Error::NotFound { .. } => io::Error::new(io::ErrorKind::NotFound, error),
        other => io::Error::other(other.to_string()),
    }
}

impl S3ContentStore {
    /// The store at `location`, configured from the `AWS_*` variables.
    pub fn new(location: S3Location) -> io::Result<Self> {
        Self::build(location, AmazonS3Builder::from_env())
    }

    /// The store at `location`, configured by `settings` alone: pairs named as the `AWS_*`
    /// variables are (`AWS_ENDPOINT`, `AWS_REGION`, ...).
    pub fn with_settings(location: S3Location, settings: &[(&str, &str)]) -> io::Result<Self> {
        let mut builder = AmazonS3Builder::new();
        for (name, value) in settings {
            let key: object_store::aws::AmazonS3ConfigKey = name
                .to_ascii_lowercase()
                .parse()
                .map_err(|e: object_store::Error| io::Error::other(e.to_string()))?;
            builder = builder.with_config(key, *value);
        }
        Self::build(location, builder)
    }

    fn build(location: S3Location, builder: AmazonS3Builder) -> io::Result<Self> {
        let store = builder
            .with_bucket_name(&location.bucket)
            .with_conditional_put(S3ConditionalPut::ETagMatch)
            .build()
            .map_err(|e| io::Error::other(e.to_string()))?;
        Ok(S3ContentStore {
            store: Arc::new(store),
            location,
            runtime: StoreRuntime::new("cairn-s3-content")?,
        })
    }

    fn key(&self, digest: &BlobDigest, compressed: bool) -> ObjectPath {
        let name = format!(
            "{}/{}{}",
            digest.algorithm(),
            digest.to_hex(),
            if compressed { ".zst" } else { "" }
        );
        match self.location.prefix.as_str() {
            "" => ObjectPath::from(name),
            prefix => ObjectPath::from(format!("{prefix}/{name}")),
        }
    }

    /// The object's whole bytes, or `None` if it does not exist.
    fn get(&self, key: ObjectPath) -> io::Result<Option<bytes::Bytes>> {
        let store = self.store.clone();
        self.runtime.run(async move {
            match store.get(&key).await {
                Ok(result) => result.bytes().await.map(Some).map_err(io_error),
                Err(object_store::Error::NotFound { .. }) => Ok(None),
                Err(error) => Err(io_error(error)),
            }
        })
    }

    /// Whether the object exists.
    fn exists(&self, key: ObjectPath) -> io::Result<bool> {
        let store = self.store.clone();
        self.runtime.run(async move {
            match store.head(&key).await {
                Ok(_) => Ok(true),
                Err(object_store::Error::NotFound { .. }) => Ok(false),
                Err(error) => Err(io_error(error)),
            }
        })
    }

    /// The blob as stored: its zstd frame (`true`) or its bytes (`false`).
    fn stored(&self, digest: &BlobDigest) -> io::Result<Option<(bool, bytes::Bytes)>> {
        if let Some(frame) = self.get(self.key(digest, true))? {
            return Ok(Some((true, frame)));
        }
        Ok(self.get(self.key(digest, false))?.map(|raw| (false, raw)))
    }
}

fn not_found(digest: &BlobDigest) -> io::Error {
    io::Error::new(
        io::ErrorKind::NotFound,
        format!("blob {digest} is not in the S3 content store"),
    )
}

impl BlobStore for S3ContentStore {
    fn has(&self, digest: &BlobDigest) -> io::Result<bool> {
        Ok(self.exists(self.key(digest, true))? || self.exists(self.key(digest, false))?)
    }

    fn put(&self, digest: &BlobDigest, bytes: &[u8]) -> io::Result<()> {
        let (key, body) = match compress_for_storage(bytes)? {
            Some(frame) => (self.key(digest, true), frame),
            None => (self.key(digest, false), bytes.to_vec()),
        };
        let store = self.store.clone();
        self.runtime.run(async move {
            let create = PutOptions::from(PutMode::Create);
            match store
                .put_opts(&key, PutPayload::from(body.clone()), create)
                .await
            {
                // There already: the same name is the same bytes.
                Ok(_) | Err(object_store::Error::AlreadyExists { .. }) => Ok(()),
                Err(object_store::Error::Precondition { .. }) => Ok(()),
                // A server without conditional writes: an unconditional put of the same bytes.
                Err(object_store::Error::NotImplemented { .. }) => store
                    .put(&key, PutPayload::from(body))
                    .await
                    .map(|_| ())
                    .map_err(io_error),
                Err(error) => Err(io_error(error)),
            }
        })
    }

    fn open(&self, digest: &BlobDigest) -> io::Result<Box<dyn Read + Send>> {
        match self.stored(digest)? {
            Some((true, frame)) => Ok(Box::new(zstd::stream::read::Decoder::new(
                io::Cursor::new(frame),
            )?)),
            Some((false, raw)) => Ok(Box::new(io::Cursor::new(raw))),
            None => Err(not_found(digest)),
        }
    }

    fn size(&self, digest: &BlobDigest) -> io::Result<Option<u64>> {
        Ok(match self.stored(digest)? {
            Some((true, frame)) => Some(
                zstd::zstd_safe::get_frame_content_size(&frame)
                    .ok()
                    .flatten()
                    .ok_or_else(|| {
                        io::Error::new(
                            io::ErrorKind::InvalidData,
                            format!("the stored frame of blob {digest} names no size"),
                        )
                    })?,
            ),
            Some((false, raw)) => Some(raw.len() as u64),
            None => None,
        })
    }

    fn open_zstd(&self, digest: &BlobDigest) -> io::Result<Option<(Box<dyn Read + Send>, u64)>> {
        Ok(match self.get(self.key(digest, true))? {
            Some(frame) => {
                let length = frame.len() as u64;
                Some((Box::new(io::Cursor::new(frame)), length))
            }
            None => None,
        })
    }

    fn delete(&self, digest: &BlobDigest) -> io::Result<()> {
        for compressed in [true, false] {
            let (store, key) = (self.store.clone(), self.key(digest, compressed));
            self.runtime.run(async move {
                match store.delete(&key).await {
                    Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
                    Err(error) => Err(io_error(error)),
                }
            })?;
        }
        Ok(())
    }

    fn ping(&self) -> io::Result<()> {
        // A listing of the prefix: answered when the bucket exists and can be read.
        let prefix = ObjectPath::from(self.location.prefix.as_str());
        let (store, location) = (self.store.clone(), self.location.clone());
        self.runtime.run(async move {
            store
                .list_with_delimiter(Some(&prefix))
                .await
                .map(|_| ())
                .map_err(|e| {
                    io::Error::other(format!(
                        "cannot list {location}: {e}; check the bucket, AWS_ENDPOINT, AWS_REGION \
                         and the credentials (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY)"
                    ))
                })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_read_and_print_the_same() {
        let location: S3Location = "s3://blobs/cairn/content/".parse().unwrap();
        assert_eq!(location.bucket, "blobs");
        assert_eq!(location.prefix, "cairn/content");
        assert_eq!(location.to_string(), "s3://blobs/cairn/content");
        let bare: S3Location = "s3://blobs".parse().unwrap();
        assert_eq!(
            (bare.prefix.as_str(), bare.to_string().as_str()),
            ("", "s3://blobs")
        );
        assert!("s3://".parse::<S3Location>().is_err());
        assert!("s3:///prefix".parse::<S3Location>().is_err());
    }
}
