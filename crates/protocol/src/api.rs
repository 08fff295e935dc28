//! The JSON types of every warg v1 API request and response, with the reference's exact
//! field names (warg-v1 section 5). Records travel as base64 protobuf inside envelopes;
//! proofs as base64 protobuf bundles (see [`crate::proofs`]).
//!
//! Request types refuse unknown fields where the reference does. Fetch tokens are kept as
//! strings so that a server can answer an unparsable token with its typed 404.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::crypto::Signature;
use crate::digest::{Digest, KeyId, LogId, RecordId};
use crate::envelope::{Envelope, LogKind};
use crate::name::PackageName;
use crate::record::DecodeError;

/// Bytes as standard base64 (with padding) in JSON.
pub mod base64_bytes {
    use base64::engine::general_purpose::STANDARD;
    use base64::Engine as _;
    use serde::{Deserialize, Deserializer, Serializer};

    /// Writes bytes as base64.
    pub fn serialize<S: Serializer>(bytes: &[u8], serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&STANDARD.encode(bytes))
    }

    /// Reads base64 into bytes.
    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<u8>, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        STANDARD
            .decode(text.as_bytes())
            .map_err(serde::de::Error::custom)
    }
}

/// A signed record in JSON: `{"contentBytes", "keyId", "signature"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EnvelopeBody {
    /// The record's protobuf bytes.
    #[serde(with = "base64_bytes")]
    pub content_bytes: Vec<u8>,
    /// The signer's key id.
    pub key_id: KeyId,
    /// The signature over the domain-prefixed bytes.
    pub signature: Signature,
}

impl EnvelopeBody {
    /// Decodes the record inside.
    pub fn to_envelope<E: LogKind>(&self) -> Result<Envelope<E>, DecodeError> {
        Envelope::from_parts(
            self.content_bytes.clone(),
            self.key_id,
            self.signature.clone(),
        )
    }
}

impl<E: LogKind> From<&Envelope<E>> for EnvelopeBody {
    fn from(envelope: &Envelope<E>) -> Self {
        EnvelopeBody {
            content_bytes: envelope.content_bytes().to_vec(),
            key_id: *envelope.key_id(),
            signature: envelope.signature().clone(),
        }
    }
}

/// A record as `fetch/logs` returns it: the envelope plus its place in the registry log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PublishedRecord {
    /// The signed record.
    #[serde(flatten)]
    pub envelope: EnvelopeBody,
    /// The record's leaf index in the registry log.
    pub registry_index: u64,
    /// The token to fetch records after this one (the record id).
    pub fetch_token: RecordId,
}

/// `POST /v1/fetch/logs`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FetchLogsRequest {
    /// A checkpointed log length; only records below it are returned.
    pub log_length: u64,
    /// Records per log, 1 to 1000 (default 100).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u16>,
    /// Fetch operator records after this token (`null` or absent: from the start).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operator: Option<String>,
    /// Fetch each package's records after its token (`null`: from the start).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub packages: Option<BTreeMap<LogId, Option<String>>>,
}

/// A warning in a `fetch/logs` response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FetchWarning {
    /// What to tell the user.
    pub message: String,
}

/// The response to `fetch/logs`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct FetchLogsResponse {
    /// Whether any list hit the limit (ask again from the last tokens).
    pub more: bool,
    /// Operator records.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub operator: Vec<PublishedRecord>,
    /// Package records by log id.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub packages: BTreeMap<LogId, Vec<PublishedRecord>>,
    /// Warnings.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<FetchWarning>,
}

/// `POST /v1/fetch/names`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FetchNamesRequest {
    /// Log ids to name (only the first 1000 are used).
    pub packages: Vec<LogId>,
}

/// The response to `fetch/names`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FetchNamesResponse {
    /// Each log id's package name, if known.
    pub packages: BTreeMap<LogId, Option<PackageName>>,
}

/// Where content can be fetched from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum ContentSource {
    /// A plain HTTP GET.
    #[serde(rename_all = "camelCase")]
    HttpGet {
        /// The URL.
        url: String,
        /// Whether the URL serves byte ranges.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        accept_ranges: Option<bool>,
        /// The content's size in bytes.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        size: Option<u64>,
    },
}

/// `POST /v1/package/{logId}/record`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PublishRecordRequest {
    /// The package's name (its log id must be the path's).
    pub package_name: PackageName,
    /// The signed record.
    pub record: EnvelopeBody,
    /// Where the registry may fetch content from (the reference refuses any).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub content_sources: BTreeMap<Digest, Vec<ContentSource>>,
}

/// How to upload one piece of missing content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum UploadEndpoint {
    /// An HTTP request with the bytes as its body.
    Http {
        /// `POST` or `PUT`.
        method: String,
        /// Relative to the registry URL, or absolute.
        url: String,
        /// Extra headers (`authorization`, `content-type` only).
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        headers: BTreeMap<String, String>,
    },
}

/// Content a record needs that the registry lacks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MissingContent {
    /// Ways to upload it.
    pub upload: Vec<UploadEndpoint>,
}

/// Where a published record stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "camelCase")]
pub enum RecordState {
    /// Waiting for content uploads.
    #[serde(rename_all = "camelCase")]
    Sourcing {
        /// What to upload, by digest.
        missing_content: BTreeMap<Digest, MissingContent>,
    },
    /// Accepted, not yet validated or not yet covered by a checkpoint.
    Processing,
    /// Refused.
    Rejected {
        /// Why.
        reason: String,
    },
    /// In the log and covered by the latest checkpoint.
    #[serde(rename_all = "camelCase")]
    Published {
        /// The record's leaf index.
        registry_index: u64,
    },
}

/// A package record's state: the response to publishing and to `GET .../record/{id}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PackageRecordResponse {
    /// The record's id.
    pub record_id: RecordId,
    /// Its state.
    #[serde(flatten)]
    pub state: RecordState,
}

/// The response to `GET /v1/content/{digest}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContentSourcesResponse {
    /// Sources by digest.
    pub content_sources: BTreeMap<Digest, Vec<ContentSource>>,
}

/// `POST /v1/proof/consistency`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsistencyRequest {
    /// The old log length.
    pub from: u64,
    /// The new log length.
    pub to: u64,
}

/// The response to `proof/consistency`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsistencyResponse {
    /// A protobuf `LogProofBundle`.
    #[serde(with = "base64_bytes")]
    pub proof: Vec<u8>,
}

/// `POST /v1/proof/inclusion`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct InclusionRequest {
    /// A checkpointed log length.
    pub log_length: u64,
    /// Registry indices of the leaves to prove.
    pub leafs: Vec<u64>,
}

/// The response to `proof/inclusion`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InclusionResponse {
    /// A protobuf `LogProofBundle`.
    #[serde(with = "base64_bytes")]
    pub log: Vec<u8>,
    /// A protobuf `MapProofBundle`.
    #[serde(with = "base64_bytes")]
    pub map: Vec<u8>,
}

/// One verdict of `verify/checkpoint`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verification {
    /// Checked and good.
    Verified,
    /// Checked and bad.
    Invalid,
    /// Not checked.
    Unverified,
}

/// The response to `POST /v1/verify/checkpoint`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VerifyCheckpointResponse {
    /// Whether this registry made this checkpoint.
    pub checkpoint: Verification,
    /// Whether the signature verifies with a key that may sign checkpoints.
    pub signature: Verification,
    /// Seconds after which to ask again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after: Option<u16>,
}

/// One source of the packed ledger.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LedgerSource {
    /// The first registry index in the source.
    pub first_registry_index: u64,
    /// The last registry index in the source.
    pub last_registry_index: u64,
    /// Where to fetch it, relative to the registry URL.
    pub url: String,
    /// `application/vnd.warg.ledger.packed`.
    pub content_type: String,
    /// Whether the URL serves byte ranges.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accept_ranges: Option<bool>,
}

/// The response to `GET /v1/ledger`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LedgerSourcesResponse {
    /// Always `sha256`.
    pub hash_algorithm: String,
    /// The sources, 1000 indices each.
    pub sources: Vec<LedgerSource>,
}

/// The media type of packed ledger records.
pub const LEDGER_PACKED_MEDIA_TYPE: &str = "application/vnd.warg.ledger.packed";

/// The `id` of a typed error: a number (log length, leaf) or text (log id, record id, ...).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ErrorId {
    /// A number.
    Number(u64),
    /// Text.
    Text(String),
}

/// Why a proof request failed (`reason` in the error body).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "reason", rename_all = "camelCase")]
pub enum ProofFailure {
    /// The requested leaf's log is not in the map (note the snake_case field, as the
    /// reference sends it).
    PackageNotIncluded {
        /// The log id.
        log_id: LogId,
    },
    /// A proof did not evaluate to the expected root.
    IncorrectProof {
        /// The expected root.
        root: Digest,
        /// The root found.
        found: Digest,
    },
    /// Anything else.
    Failure {
        /// What went wrong.
        message: String,
    },
}

/// Every error body of the API. `status` is always the HTTP status code.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ErrorBody {
    /// An entity that was not found or conflicts: `{"status","type","id"}`.
    Typed {
        /// The HTTP status.
        status: u16,
        /// The entity kind: `log`, `record`, `logLength`, `fetchToken`, `namespace`,
        /// `namespaceImport`, `contentDigest`, `leaf`.
        #[serde(rename = "type")]
        kind: String,
        /// The entity.
        id: ErrorId,
    },
    /// A proof failure: `{"status","reason",...}`.
    Proof {
        /// The HTTP status.
        status: u16,
        /// The failure.
        #[serde(flatten)]
        failure: ProofFailure,
    },
    /// Anything else: `{"status","message"}`.
    Message {
        /// The HTTP status.
        status: u16,
        /// What went wrong.
        message: String,
    },
    /// A bare status (`405`).
    Status {
        /// The HTTP status.
        status: u16,
    },
}

/// `/.well-known/wasm-pkg/registry.json`: both the old (`wargUrl`, `ociRegistry`,
/// `ociNamespacePrefix`) and the new (`preferredProtocol`, `warg`, `oci`) discovery formats.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct WellKnownRegistry {
    /// Old format: the warg registry URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warg_url: Option<String>,
    /// New format: `warg` or `oci`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preferred_protocol: Option<String>,
    /// New format: the warg endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warg: Option<WargEndpoint>,
    /// New format: the OCI endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oci: Option<OciEndpoint>,
    /// Old format: the OCI registry host (and port), as `oci.registry`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oci_registry: Option<String>,
    /// Old format: the prefix put before `<namespace>/<name>`, as `oci.namespacePrefix`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oci_namespace_prefix: Option<String>,
}

/// The warg endpoint of a discovery document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WargEndpoint {
    /// The registry URL.
    pub url: String,
}

/// The OCI endpoint of a discovery document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OciEndpoint {
    /// The OCI registry host (and port).
    pub registry: String,
    /// A prefix put before `<namespace>/<name>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace_prefix: Option<String>,
}
