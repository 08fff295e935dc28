//! Where a registry's content blobs live: a directory ([`FsContentStore`]) or a repository of
//! an OCI registry ([`OciContentStore`]), and the record of that choice in the data directory.
//!
//! The first start of a registry records its content location in `<data>/content-location`
//! (one line, never with credentials). Later starts, offline administration and audits open
//! the recorded store; a start that names a different store is refused, so that an operator
//! never silently loses the content stored so far. A data directory created before the record
//! existed keeps its content in `<data>/content`.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::content::{BlobStore, FsContentStore};
use crate::oci_content::{
    is_oci_location, redact_credentials, scheme_of, OciContentStore, OciLocation, OciLocationError,
};
use crate::s3_content::{S3ContentStore, S3Location, S3LocationError};

/// The file in the data directory that records the content location.
pub const CONTENT_LOCATION_FILE: &str = "content-location";

/// Where content blobs live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ContentLocation {
    /// A directory on the local file system.
    Directory(PathBuf),
    /// A repository in an OCI distribution-spec registry.
    Oci(OciLocation),
    /// A bucket (and key prefix) of S3-compatible object storage.
    S3(S3Location),
}

/// Why a content location cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ContentLocationError {
    /// The text is not a location.
    #[error(transparent)]
    Malformed(#[from] OciLocationError),
    /// The text is empty.
    #[error(
        "the content location is empty (give a directory, oci://HOST[:PORT]/REPOSITORY or \
         s3://BUCKET/PREFIX)"
    )]
    Empty,
    /// An `s3://` location without a bucket.
    #[error(transparent)]
    S3(#[from] S3LocationError),
    /// The data directory records another store.
    #[error(
        "the registry in {data_dir} keeps its content in {recorded} (recorded in {record}); \
         refusing to use {requested} instead, which would lose access to the content stored so far \
         (start without --content, or move the blobs and edit {record})"
    )]
    Mismatch {
        /// The data directory.
        data_dir: PathBuf,
        /// The recorded location.
        recorded: String,
        /// The location asked for.
        requested: String,
        /// The record file.
        record: PathBuf,
    },
    /// The record cannot be read or written.
    #[error("{what} {path}: {reason}")]
    Record {
        /// What was being done.
        what: &'static str,
        /// The record file.
        path: PathBuf,
        /// Why.
        reason: io::Error,
    },
    /// The record does not hold a location.
    #[error("{path} does not hold a content location: {reason}")]
    BadRecord {
        /// The record file.
        path: PathBuf,
        /// Why.
        reason: Box<ContentLocationError>,
    },
    /// The store cannot be opened or does not answer.
    #[error("cannot use the content store {location}: {reason}")]
    Unavailable {
        /// The location (without credentials).
        location: String,
        /// Why (not a `source`: the message holds it, so error chains print it once).
        reason: io::Error,
    },
}

impl std::str::FromStr for ContentLocation {
    type Err = ContentLocationError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim();
        if text.is_empty() {
            return Err(ContentLocationError::Empty);
        }
        // Text that starts like an OCI location is one or an error, never a directory (a
        // mistyped `oci:/user:password@...` would otherwise be recorded as a path).
        if is_oci_location(text) {
            return Ok(ContentLocation::Oci(text.parse()?));
        }
        if text.starts_with("s3://") {
            return Ok(ContentLocation::S3(text.parse()?));
        }
        // Nor is a URL with another scheme (`https://...`, `s3:/...`); one letter before
        // `:/` is left to be a drive letter.
        if scheme_of(text)
            .is_some_and(|scheme| scheme.len() > 1 && text[scheme.len() + 1..].starts_with('/'))
        {
            return Err(OciLocationError::UnknownScheme(redact_credentials(text)).into());
        }
        Ok(ContentLocation::Directory(PathBuf::from(text)))
    }
}

impl std::fmt::Display for ContentLocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ContentLocation::Directory(path) => write!(f, "{}", path.display()),
            ContentLocation::Oci(location) => write!(f, "{location}"),
            ContentLocation::S3(location) => write!(f, "{location}"),
        }
    }
}

impl ContentLocation {
    /// The default: `<data>/content`.
    pub fn default_for(data_dir: &Path) -> ContentLocation {
        ContentLocation::Directory(data_dir.join("content"))
    }

    /// Whether both name the same store (directories compared as absolute paths, OCI
    /// locations without their credentials).
    pub fn same_store(&self, other: &ContentLocation) -> bool {
        match (self, other) {
            (ContentLocation::Directory(a), ContentLocation::Directory(b)) => {
                absolute(a) == absolute(b)
            }
            (ContentLocation::Oci(a), ContentLocation::Oci(b)) => a.same_store(b),
            (ContentLocation::S3(a), ContentLocation::S3(b)) => a == b,
            _ => false,
        }
    }

    /// Opens the store. An OCI registry is asked `GET /v2/` first, so that a registry that
    /// is down or refuses the credentials fails here and not at the first upload.
    pub fn open(&self) -> Result<Arc<dyn BlobStore>, ContentLocationError> {
        let unavailable = |reason| ContentLocationError::Unavailable {
            location: self.to_string(),
            reason,
        };
        match self {
            ContentLocation::Directory(path) => {
                Ok(Arc::new(FsContentStore::open(path).map_err(unavailable)?))
            }
            ContentLocation::Oci(location) => {
                let store = OciContentStore::new(location.clone()).map_err(unavailable)?;
                store.ping().map_err(unavailable)?;
                tracing::info!(store = %location, "content blobs are kept in an OCI registry");
                Ok(Arc::new(store))
            }
            ContentLocation::S3(location) => {
                let store = S3ContentStore::new(location.clone()).map_err(unavailable)?;
                store.ping().map_err(unavailable)?;
                tracing::info!(store = %location, "content blobs are kept in S3");
                Ok(Arc::new(store))
            }
        }
    }

    /// The text recorded for this location in `data_dir`: a directory inside the data
    /// directory relative to it (so the data directory can move), another one absolute.
    fn record_text(&self, data_dir: &Path) -> String {
        match self {
            ContentLocation::Directory(path) => match path.strip_prefix(data_dir) {
                Ok(relative) => relative.display().to_string(),
                _ => absolute(path).display().to_string(),
            },
            ContentLocation::Oci(location) => location.to_string(),
            ContentLocation::S3(location) => location.to_string(),
        }
    }
}

fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_owned())
}

/// The content location recorded in `data_dir`, if any (a relative directory resolved against
/// the data directory).
pub fn recorded_content_location(
    data_dir: &Path,
) -> Result<Option<ContentLocation>, ContentLocationError> {
    let path = data_dir.join(CONTENT_LOCATION_FILE);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(reason) => {
            return Err(ContentLocationError::Record {
                what: "cannot read",
                path,
                reason,
            })
        }
    };
    let location =
        text.parse::<ContentLocation>()
            .map_err(|reason| ContentLocationError::BadRecord {
                path: path.clone(),
                reason: Box::new(reason),
            })?;
    Ok(Some(match location {
        ContentLocation::Directory(dir) if dir.is_relative() => {
            ContentLocation::Directory(data_dir.join(dir))
        }
        other => other,
    }))
}

/// The content location a registry in `data_dir` uses: the recorded one, or for a registry
/// that has none recorded yet, `<data>/content` if the registry already exists
/// (`registry_exists`) and otherwise `requested` or the default. `requested` naming another
/// store than the one in use is an error. The location returned carries `requested`'s
/// credentials. Nothing is written: [`record_content_location`] does, once the store opened.
pub fn resolve_content_location(
    data_dir: &Path,
    requested: Option<ContentLocation>,
    registry_exists: bool,
) -> Result<ContentLocation, ContentLocationError> {
    let in_use = match recorded_content_location(data_dir)? {
        Some(recorded) => Some(recorded),
        None if registry_exists => Some(ContentLocation::default_for(data_dir)),
        None => None,
    };
    Ok(match (in_use, requested) {
        (Some(in_use), Some(requested)) => {
            if !in_use.same_store(&requested) {
                return Err(ContentLocationError::Mismatch {
                    data_dir: data_dir.to_owned(),
                    recorded: in_use.to_string(),
                    requested: requested.to_string(),
                    record: data_dir.join(CONTENT_LOCATION_FILE),
                });
            }
            requested
        }
        (Some(in_use), None) => in_use,
        (None, Some(requested)) => requested,
        (None, None) => ContentLocation::default_for(data_dir),
    })
}

/// Records `location` as the content location of the registry in `data_dir`, unless one is
/// recorded already. Called once the store has opened, so that a mistyped location that
/// never worked is not recorded.
pub fn record_content_location(
    data_dir: &Path,
    location: &ContentLocation,
) -> Result<(), ContentLocationError> {
    if data_dir.join(CONTENT_LOCATION_FILE).exists() {
        return Ok(());
    }
    write_record(data_dir, &location.record_text(data_dir))?;
    tracing::info!(content = %location, "recorded the content location");
    Ok(())
}

/// Writes the record file atomically (a temporary file, synced, renamed over it, the
/// directory synced: `atomic-write-file`).
fn write_record(data_dir: &Path, text: &str) -> Result<(), ContentLocationError> {
    use std::io::Write as _;
    let path = data_dir.join(CONTENT_LOCATION_FILE);
    let write = || {
        let mut file = atomic_write_file::AtomicWriteFile::open(&path)?;
        file.write_all(format!("{text}\n").as_bytes())?;
        file.commit()
    };
    write().map_err(|reason| ContentLocationError::Record {
        what: "cannot write",
        path: path.clone(),
        reason,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "cairn-store-location-{}-{name}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn oci(text: &str) -> ContentLocation {
        text.parse().unwrap()
    }

    #[test]
    fn a_first_start_records_the_default_relative_to_the_data_directory() {
        let data = temp("default");
        let chosen = resolve_content_location(&data, None, false).unwrap();
        assert_eq!(chosen, ContentLocation::default_for(&data));
        assert!(!data.join(CONTENT_LOCATION_FILE).exists());
        record_content_location(&data, &chosen).unwrap();
        assert_eq!(
            std::fs::read_to_string(data.join(CONTENT_LOCATION_FILE)).unwrap(),
            "content\n"
        );
        assert_eq!(
            recorded_content_location(&data).unwrap(),
            Some(ContentLocation::default_for(&data))
        );
    }

    #[test]
    fn a_recorded_oci_store_is_used_without_credentials_in_the_record() {
        let data = temp("oci");
        let requested = oci("oci://user:secret@127.0.0.1:5000/cairn/content");
        let chosen = resolve_content_location(&data, Some(requested.clone()), false).unwrap();
        assert_eq!(chosen, requested);
        record_content_location(&data, &chosen).unwrap();
        let record = std::fs::read_to_string(data.join(CONTENT_LOCATION_FILE)).unwrap();
        assert_eq!(record, "oci://127.0.0.1:5000/cairn/content\n");
        let later = resolve_content_location(&data, None, true).unwrap();
        assert!(later.same_store(&requested));
        // The same store, named with the explicit transport, is accepted.
        let again = oci("oci+http://127.0.0.1:5000/cairn/content");
        assert_eq!(
            resolve_content_location(&data, Some(again.clone()), true).unwrap(),
            again
        );
    }

    #[test]
    fn another_store_than_the_recorded_one_is_refused() {
        let data = temp("mismatch");
        record_content_location(&data, &oci("oci://127.0.0.1:5000/a")).unwrap();
        let error =
            resolve_content_location(&data, Some(oci("oci://127.0.0.1:5000/b")), true).unwrap_err();
        assert!(matches!(error, ContentLocationError::Mismatch { .. }));
        let message = error.to_string();
        assert!(
            message.contains("oci://127.0.0.1:5000/a")
                && message.contains("oci://127.0.0.1:5000/b"),
            "{message}"
        );
        let error =
            resolve_content_location(&data, Some(ContentLocation::default_for(&data)), true)
                .unwrap_err();
        assert!(matches!(error, ContentLocationError::Mismatch { .. }));
    }

    #[test]
    fn a_registry_from_before_the_record_keeps_its_content_directory() {
        let data = temp("legacy");
        let error =
            resolve_content_location(&data, Some(oci("oci://127.0.0.1:5000/a")), true).unwrap_err();
        assert!(matches!(error, ContentLocationError::Mismatch { .. }));
        let chosen = resolve_content_location(&data, None, true).unwrap();
        assert_eq!(chosen, ContentLocation::default_for(&data));
        record_content_location(&data, &chosen).unwrap();
        assert_eq!(
            std::fs::read_to_string(data.join(CONTENT_LOCATION_FILE)).unwrap(),
            "content\n"
        );
    }

    #[test]
    fn unknown_schemes_and_empty_text_are_not_locations() {
        assert!(matches!(
            "gs://bucket/x".parse::<ContentLocation>(),
            Err(ContentLocationError::Malformed(
                OciLocationError::UnknownScheme(_)
            ))
        ));
        assert_eq!(
            "s3://bucket/x".parse::<ContentLocation>().unwrap(),
            ContentLocation::S3(S3Location {
                bucket: "bucket".into(),
                prefix: "x".into()
            })
        );
        assert!(matches!(
            "s3://".parse::<ContentLocation>(),
            Err(ContentLocationError::S3(_))
        ));
        assert!(matches!(
            " ".parse::<ContentLocation>(),
            Err(ContentLocationError::Empty)
        ));
        assert_eq!(
            "/srv/blobs".parse::<ContentLocation>().unwrap(),
            ContentLocation::Directory("/srv/blobs".into())
        );
    }

    #[test]
    fn text_like_an_oci_location_or_another_url_is_never_a_directory() {
        for text in [
            "oci:/u:secret@127.0.0.1:5000/cairn",
            "oci:u:secret@127.0.0.1:5000/cairn",
            "Oci:/u:secret@h/r",
            "oci+ftp://u:secret@h/r",
            "oci+blobs",
            "https://u:secret@h/r",
            "HTTP://u:secret@h/r",
            "s3:/u:secret@bucket/x",
            "oci://u:sec/ret@127.0.0.1:5000/cairn",
        ] {
            let error = text.parse::<ContentLocation>().unwrap_err();
            assert!(
                matches!(error, ContentLocationError::Malformed(_)),
                "{text}: {error:?}"
            );
            for shown in [error.to_string(), format!("{error:?}")] {
                assert!(
                    !shown.contains("secret") && !shown.contains("ret@"),
                    "{text}: {shown}"
                );
            }
        }
        // Upper-case schemes are schemes.
        let data = temp("upper");
        let location = oci("OCI://u:secret@127.0.0.1:5000/cairn");
        record_content_location(&data, &location).unwrap();
        assert_eq!(
            std::fs::read_to_string(data.join(CONTENT_LOCATION_FILE)).unwrap(),
            "oci://127.0.0.1:5000/cairn\n"
        );
        // Directories stay directories, also with a colon or a drive letter.
        for text in [
            "ocifs/blobs",
            "./oci:x",
            "blobs:old",
            "C:/blobs",
            "/srv/a@b",
        ] {
            assert_eq!(
                text.parse::<ContentLocation>().unwrap(),
                ContentLocation::Directory(text.into()),
                "{text}"
            );
        }
    }
}
