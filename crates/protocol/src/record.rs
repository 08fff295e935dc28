//! Package and operator records: the model, and its protobuf encoding byte for byte as the
//! reference produces it (`proto/warg/protocol/warg.proto`).
//!
//! ```text
//! Record         { optional string prev = 1; uint32 version = 2; Timestamp time = 3; repeated Entry entries = 4; }
//! PackageEntry   { oneof { PackageInit init = 1; PackageGrantFlat grant_flat = 2; PackageRevokeFlat revoke_flat = 3;
//!                          PackageRelease release = 4; PackageYank yank = 5; } }
//! PackageInit    { string key = 1; string hash_algorithm = 2; }
//! OperatorEntry  { oneof { OperatorInit init = 1; OperatorGrantFlat grant_flat = 2; OperatorRevokeFlat revoke_flat = 3;
//!                          OperatorDefineNamespace define_namespace = 4; OperatorImportNamespace import_namespace = 5; } }
//! OperatorInit   { string hash_algorithm = 1; string key = 2; }        (note: reversed from PackageInit)
//! *GrantFlat     { string key = 1; repeated Permission permissions = 2; }   (packed)
//! *RevokeFlat    { string key_id = 1; repeated Permission permissions = 2; }
//! PackageRelease { string version = 1; string content_hash = 2; }
//! PackageYank    { string version = 1; }
//! OperatorDefineNamespace { string namespace = 1; }   OperatorImportNamespace { string namespace = 1; string registry = 2; }
//! ```
//!
//! Decoding is stricter than the schema, as the reference model is: the hash algorithm must
//! be `sha256`, keys must be P-256 keys, versions semver, digests `sha256:` digests, every
//! entry must have contents, and permission values must be known and not `UNSPECIFIED`.

use std::fmt;

use semver::Version;

use crate::crypto::{KeyError, PublicKey};
use crate::digest::{Digest, DigestError, KeyId, RecordId};
use crate::name::{NameError, Namespace};
use crate::protobuf::{Reader, WireError, Writer};

/// Why record bytes could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Not valid protobuf.
    #[error(transparent)]
    Wire(#[from] WireError),
    /// The record has no `time`.
    #[error("the record has no timestamp")]
    MissingTime,
    /// A timestamp's nanoseconds are outside 0..1e9 or its seconds are negative.
    #[error("invalid timestamp {seconds}s {nanos}ns")]
    BadTime {
        /// Seconds.
        seconds: i64,
        /// Nanoseconds.
        nanos: i32,
    },
    /// An entry has no contents (no oneof member).
    #[error("an entry has no contents")]
    EmptyEntry,
    /// A hash algorithm other than `sha256`.
    #[error("unsupported hash algorithm {0:?}")]
    HashAlgorithm(String),
    /// A permission value that is unknown or `UNSPECIFIED`.
    #[error("unknown permission value {0}")]
    Permission(u32),
    /// A bad key.
    #[error("invalid key: {0}")]
    Key(#[from] KeyError),
    /// A bad digest (prev, key id, content).
    #[error("invalid digest: {0}")]
    Digest(#[from] DigestError),
    /// A version that is not semver.
    #[error("invalid version {text:?}: {message}")]
    Version {
        /// The version text.
        text: String,
        /// Why semver refused it.
        message: String,
    },
    /// A namespace that is not lowercase kebab-case.
    #[error("invalid namespace: {0}")]
    Namespace(#[from] NameError),
}

/// A protobuf timestamp: seconds and nanoseconds since the Unix epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp {
    /// Whole seconds since 1970-01-01T00:00:00Z.
    pub seconds: i64,
    /// Nanoseconds within the second, 0 to 999,999,999.
    pub nanos: i32,
}

impl Timestamp {
    /// The earliest time RFC 3339 can write: 0000-01-01T00:00:00Z.
    pub const EARLIEST_RFC3339: i64 = -62_167_219_200;
    /// The latest whole second RFC 3339 can write: 9999-12-31T23:59:59Z.
    pub const LATEST_RFC3339: i64 = 253_402_300_799;

    /// Whether RFC 3339 can write this time (years 0000 to 9999, nanoseconds in range), so
    /// that every API and format that shows it can.
    pub fn fits_rfc3339(&self) -> bool {
        (Self::EARLIEST_RFC3339..=Self::LATEST_RFC3339).contains(&self.seconds)
            && (0..1_000_000_000).contains(&self.nanos)
    }

    /// The time in RFC 3339, UTC (`2026-11-29T18:00:00Z`), with nanoseconds when there are
    /// any (`...:00.000000005Z`).
    pub fn to_rfc3339(&self) -> String {
        let days = self.seconds.div_euclid(86_400);
        let secs = self.seconds.rem_euclid(86_400);
        // Days to a civil date (Howard Hinnant's algorithm).
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z.rem_euclid(146_097);
        let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = doy - (153 * mp + 2) / 5 + 1;
        let month = if mp < 10 { mp + 3 } else { mp - 9 };
        let year = yoe + era * 400 + i64::from(month <= 2);
        let base = format!(
            "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}",
            secs / 3600,
            secs % 3600 / 60,
            secs % 60
        );
        if self.nanos == 0 {
            format!("{base}Z")
        } else {
            format!("{base}.{:09}Z", self.nanos)
        }
    }

    /// The current wall-clock time.
    pub fn now() -> Self {
        let since = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        Timestamp {
            seconds: since.as_secs() as i64,
            nanos: since.subsec_nanos() as i32,
        }
    }

    fn encode(&self, w: &mut Writer) {
        w.int64_field(1, self.seconds);
        w.int32_field(2, self.nanos);
    }

    fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut time = Timestamp {
            seconds: 0,
            nanos: 0,
        };
        let mut reader = Reader::new(bytes);
        while let Some((field, value)) = reader.next_field()? {
            match field {
                1 => time.seconds = value.int64(field)?,
                2 => time.nanos = value.int32(field)?,
                _ => {}
            }
        }
        if time.seconds < 0 || !(0..1_000_000_000).contains(&time.nanos) {
            return Err(DecodeError::BadTime {
                seconds: time.seconds,
                nanos: time.nanos,
            });
        }
        Ok(time)
    }
}

impl fmt::Display for Timestamp {
    /// `<seconds>.<nanos, 9 digits>`, as warg's state files write times.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{:09}", self.seconds, self.nanos)
    }
}

/// The one hash algorithm warg logs use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HashAlgorithm {
    /// SHA-256.
    Sha256,
}

impl HashAlgorithm {
    /// The algorithm's name in records: `sha256`.
    pub fn as_str(self) -> &'static str {
        "sha256"
    }

    fn parse(text: &str) -> Result<Self, DecodeError> {
        match text {
            "sha256" => Ok(HashAlgorithm::Sha256),
            other => Err(DecodeError::HashAlgorithm(other.chars().take(50).collect())),
        }
    }
}

macro_rules! permissions {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident = $code:literal, $text:literal;)* }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
        #[serde(rename_all = "camelCase")]
        pub enum $name {
            $($(#[$vdoc])* $variant,)*
        }

        impl $name {
            /// Every permission, in protobuf order.
            pub const ALL: &'static [$name] = &[$($name::$variant),*];

            /// The protobuf enum value.
            pub fn code(self) -> u32 {
                match self { $($name::$variant => $code,)* }
            }

            fn from_code(code: u32) -> Result<Self, DecodeError> {
                match code {
                    $($code => Ok($name::$variant),)*
                    other => Err(DecodeError::Permission(other)),
                }
            }

            /// The name warg uses in text (`release`, `defineNamespace`, ...).
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text,)* }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl std::str::FromStr for $name {
            type Err = String;
            fn from_str(text: &str) -> Result<Self, String> {
                match text {
                    $($text => Ok($name::$variant),)*
                    other => Err(format!("unknown permission {other:?}")),
                }
            }
        }
    };
}

permissions!(
    /// What a key may do in a package log.
    PackagePermission {
        /// Publish releases.
        Release = 1, "release";
        /// Yank releases.
        Yank = 2, "yank";
    }
);

permissions!(
    /// What a key may do in the operator log.
    OperatorPermission {
        /// Sign checkpoints, grant and revoke operator permissions.
        Commit = 1, "commit";
        /// Define namespaces.
        DefineNamespace = 2, "defineNamespace";
        /// Import namespaces from other registries.
        ImportNamespace = 3, "importNamespace";
    }
);

/// One entry of a package record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PackageEntry {
    /// Creates the log; the signer must be `key`, who gets every permission.
    Init {
        /// The owner's key.
        key: PublicKey,
        /// The log's hash algorithm.
        hash_algorithm: HashAlgorithm,
    },
    /// Grants permissions to a key.
    Grant {
        /// The key receiving them.
        key: PublicKey,
        /// The permissions granted.
        permissions: Vec<PackagePermission>,
    },
    /// Revokes permissions from a key.
    Revoke {
        /// The key losing them.
        key_id: KeyId,
        /// The permissions revoked.
        permissions: Vec<PackagePermission>,
    },
    /// Releases a version with the content of this digest.
    Release {
        /// The version.
        version: Version,
        /// SHA-256 of the released file.
        content: Digest,
    },
    /// Yanks a released version.
    Yank {
        /// The version.
        version: Version,
    },
}

/// One entry of an operator record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OperatorEntry {
    /// Creates the operator log with `key`; the signer gets every permission.
    Init {
        /// The log's hash algorithm.
        hash_algorithm: HashAlgorithm,
        /// The operator's key.
        key: PublicKey,
    },
    /// Grants permissions to a key.
    Grant {
        /// The key receiving them.
        key: PublicKey,
        /// The permissions granted.
        permissions: Vec<OperatorPermission>,
    },
    /// Revokes permissions from a key.
    Revoke {
        /// The key losing them.
        key_id: KeyId,
        /// The permissions revoked.
        permissions: Vec<OperatorPermission>,
    },
    /// Defines a namespace hosted by this registry.
    DefineNamespace {
        /// The namespace.
        namespace: Namespace,
    },
    /// Declares a namespace hosted by another registry.
    ImportNamespace {
        /// The namespace.
        namespace: Namespace,
        /// The registry that hosts it.
        registry: String,
    },
}

/// A record of a log: a link to the previous record, a time, and entries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record<E> {
    /// The previous record's id; `None` only for the first record.
    pub prev: Option<RecordId>,
    /// The protocol version; only 0 is valid.
    pub version: u32,
    /// When the publisher made the record.
    pub time: Timestamp,
    /// The entries, applied in order.
    pub entries: Vec<E>,
}

/// A record of a package log.
pub type PackageRecord = Record<PackageEntry>;
/// A record of the operator log.
pub type OperatorRecord = Record<OperatorEntry>;

/// An entry type that can be written to and read from protobuf.
pub trait Entry: Sized + Clone + PartialEq + Eq + fmt::Debug {
    /// Writes the entry's oneof member into the `Entry` message.
    fn encode(&self, w: &mut Writer);
    /// Reads an `Entry` message.
    fn decode(bytes: &[u8]) -> Result<Self, DecodeError>;
}

impl<E: Entry> Record<E> {
    /// The record's protobuf bytes, exactly as the reference encodes them.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        if let Some(prev) = &self.prev {
            w.present_bytes_field(1, prev.to_string().as_bytes());
        }
        w.varint_field(2, u64::from(self.version));
        w.message_field(3, |w| self.time.encode(w));
        for entry in &self.entries {
            w.message_field(4, |w| entry.encode(w));
        }
        w.finish()
    }

    /// Reads a record from protobuf bytes.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut prev = None;
        let mut version = 0;
        let mut time = None;
        let mut entries = Vec::new();
        let mut reader = Reader::new(bytes);
        while let Some((field, value)) = reader.next_field()? {
            match field {
                1 => prev = Some(value.string(field)?.parse()?),
                2 => version = value.uint32(field)?,
                3 => time = Some(Timestamp::decode(value.bytes(field)?)?),
                4 => entries.push(E::decode(value.bytes(field)?)?),
                _ => {}
            }
        }
        Ok(Record {
            prev,
            version,
            time: time.ok_or(DecodeError::MissingTime)?,
            entries,
        })
    }
}

fn parse_version(text: &str) -> Result<Version, DecodeError> {
    Version::parse(text).map_err(|e| DecodeError::Version {
        text: text.chars().take(100).collect(),
        message: e.to_string(),
    })
}

/// Reads the single oneof member of an entry message: its field number and bytes.
fn entry_member(bytes: &[u8]) -> Result<(u32, &[u8]), DecodeError> {
    let mut member = None;
    let mut reader = Reader::new(bytes);
    while let Some((field, value)) = reader.next_field()? {
        if (1..=5).contains(&field) {
            // As in prost, the last member present wins.
            member = Some((field, value.bytes(field)?));
        }
    }
    member.ok_or(DecodeError::EmptyEntry)
}

/// The string fields 1 and 2 and the enum field 2 of an entry member.
#[derive(Default)]
struct MemberFields<'a> {
    first: &'a str,
    second: &'a str,
    enums: Vec<u32>,
}

fn member_fields(bytes: &[u8], second_is_enum: bool) -> Result<MemberFields<'_>, DecodeError> {
    let mut fields = MemberFields::default();
    let mut reader = Reader::new(bytes);
    while let Some((field, value)) = reader.next_field()? {
        match field {
            1 => fields.first = value.string(field)?,
            2 if second_is_enum => value.repeated_u32(field, &mut fields.enums)?,
            2 => fields.second = value.string(field)?,
            _ => {}
        }
    }
    Ok(fields)
}

fn codes<P: Copy>(permissions: &[P], code: impl Fn(P) -> u32) -> Vec<u32> {
    permissions.iter().map(|&p| code(p)).collect()
}

impl Entry for PackageEntry {
    fn encode(&self, w: &mut Writer) {
        match self {
            PackageEntry::Init {
                key,
                hash_algorithm,
            } => w.message_field(1, |w| {
                w.bytes_field(1, key.to_string().as_bytes());
                w.bytes_field(2, hash_algorithm.as_str().as_bytes());
            }),
            PackageEntry::Grant { key, permissions } => w.message_field(2, |w| {
                w.bytes_field(1, key.to_string().as_bytes());
                w.packed_u32_field(2, &codes(permissions, PackagePermission::code));
            }),
            PackageEntry::Revoke {
                key_id,
                permissions,
            } => w.message_field(3, |w| {
                w.bytes_field(1, key_id.to_string().as_bytes());
                w.packed_u32_field(2, &codes(permissions, PackagePermission::code));
            }),
            PackageEntry::Release { version, content } => w.message_field(4, |w| {
                w.bytes_field(1, version.to_string().as_bytes());
                w.bytes_field(2, content.to_string().as_bytes());
            }),
            PackageEntry::Yank { version } => w.message_field(5, |w| {
                w.bytes_field(1, version.to_string().as_bytes());
            }),
        }
    }

    fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let (member, body) = entry_member(bytes)?;
        let with_enums = matches!(member, 2 | 3);
        let f = member_fields(body, with_enums)?;
        let permissions = || -> Result<Vec<PackagePermission>, DecodeError> {
            f.enums
                .iter()
                .map(|&c| PackagePermission::from_code(c))
                .collect()
        };
        Ok(match member {
            1 => PackageEntry::Init {
                key: f.first.parse()?,
                hash_algorithm: HashAlgorithm::parse(f.second)?,
            },
            2 => PackageEntry::Grant {
                key: f.first.parse()?,
                permissions: permissions()?,
            },
            3 => PackageEntry::Revoke {
                key_id: f.first.parse()?,
                permissions: permissions()?,
            },
            4 => PackageEntry::Release {
                version: parse_version(f.first)?,
                content: f.second.parse()?,
            },
            _ => PackageEntry::Yank {
                version: parse_version(f.first)?,
            },
        })
    }
}

impl Entry for OperatorEntry {
    fn encode(&self, w: &mut Writer) {
        match self {
            OperatorEntry::Init {
                hash_algorithm,
                key,
            } => w.message_field(1, |w| {
                w.bytes_field(1, hash_algorithm.as_str().as_bytes());
                w.bytes_field(2, key.to_string().as_bytes());
            }),
            OperatorEntry::Grant { key, permissions } => w.message_field(2, |w| {
                w.bytes_field(1, key.to_string().as_bytes());
                w.packed_u32_field(2, &codes(permissions, OperatorPermission::code));
            }),
            OperatorEntry::Revoke {
                key_id,
                permissions,
            } => w.message_field(3, |w| {
                w.bytes_field(1, key_id.to_string().as_bytes());
                w.packed_u32_field(2, &codes(permissions, OperatorPermission::code));
            }),
            OperatorEntry::DefineNamespace { namespace } => w.message_field(4, |w| {
                w.bytes_field(1, namespace.as_str().as_bytes());
            }),
            OperatorEntry::ImportNamespace {
                namespace,
                registry,
            } => w.message_field(5, |w| {
                w.bytes_field(1, namespace.as_str().as_bytes());
                w.bytes_field(2, registry.as_bytes());
            }),
        }
    }

    fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let (member, body) = entry_member(bytes)?;
        let with_enums = matches!(member, 2 | 3);
        let f = member_fields(body, with_enums)?;
        let permissions = || -> Result<Vec<OperatorPermission>, DecodeError> {
            f.enums
                .iter()
                .map(|&c| OperatorPermission::from_code(c))
                .collect()
        };
        Ok(match member {
            1 => OperatorEntry::Init {
                hash_algorithm: HashAlgorithm::parse(f.first)?,
                key: f.second.parse()?,
            },
            2 => OperatorEntry::Grant {
                key: f.first.parse()?,
                permissions: permissions()?,
            },
            3 => OperatorEntry::Revoke {
                key_id: f.first.parse()?,
                permissions: permissions()?,
            },
            4 => OperatorEntry::DefineNamespace {
                namespace: f.first.parse()?,
            },
            _ => OperatorEntry::ImportNamespace {
                namespace: f.first.parse()?,
                registry: f.second.to_owned(),
            },
        })
    }
}
