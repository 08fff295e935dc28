//! What the server's log says about records, for operators: one line when a record is
//! accepted, and one when the sequencer publishes or rejects it, each naming the package, what
//! the record does (`init, release 1.2.0`), the key that signed it, and for a rejection the
//! reason. Lines are `info` events of the target `cairn_server::records`
//! (`RUST_LOG=cairn_server::records=warn` keeps them out).

use std::collections::HashMap;

use cairn_protocol::{KeyId, LogId, OperatorEntry, PackageEntry, RecordId};

/// What a record does, as the log line says it: its entries, comma-separated.
pub fn package_entries(entries: &[PackageEntry]) -> String {
    entries
        .iter()
        .map(|entry| match entry {
            PackageEntry::Init { .. } => "init".to_owned(),
            PackageEntry::Grant { key, permissions } => grant(permissions, &key.fingerprint()),
            PackageEntry::Revoke {
                key_id,
                permissions,
            } => revoke(permissions, key_id),
            PackageEntry::Release { version, .. } => format!("release {version}"),
            PackageEntry::Yank { version } => format!("yank {version}"),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// What an operator record does.
pub fn operator_entries(entries: &[OperatorEntry]) -> String {
    entries
        .iter()
        .map(|entry| match entry {
            OperatorEntry::Init { .. } => "init".to_owned(),
            OperatorEntry::Grant { key, permissions } => grant(permissions, &key.fingerprint()),
            OperatorEntry::Revoke {
                key_id,
                permissions,
            } => revoke(permissions, key_id),
            OperatorEntry::DefineNamespace { namespace } => {
                format!("define namespace {namespace}")
            }
            OperatorEntry::ImportNamespace {
                namespace,
                registry,
            } => {
                format!("import namespace {namespace} from {registry}")
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn grant(permissions: &[impl ToString], key: &KeyId) -> String {
    format!("grant {} to {key}", join(permissions))
}

fn revoke(permissions: &[impl ToString], key: &KeyId) -> String {
    format!("revoke {} from {key}", join(permissions))
}

fn join(permissions: &[impl ToString]) -> String {
    permissions
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("+")
}

/// Logs a record the registry accepted (queued for the sequencer, or waiting for content).
pub fn accepted(package: &str, record_id: &RecordId, what: &str, key: &KeyId, waiting: bool) {
    tracing::info!(
        target: "cairn_server::records",
        package,
        record = %record_id,
        entries = what,
        key = %key,
        waiting_for_content = waiting,
        "record accepted"
    );
}

/// A record the sequencer decided on, described before its round commits.
pub struct Decided {
    /// Its log.
    pub log_id: LogId,
    /// Its id.
    pub record_id: RecordId,
    /// What it does ([`package_entries`]); empty when it could not be decoded.
    pub entries: String,
    /// The key that signed it, when it could be decoded.
    pub key: Option<KeyId>,
    /// Its leaf index, or why it was rejected.
    pub outcome: Result<u64, String>,
}

/// Logs the records of a committed round; `names` names their packages.
pub fn decided(records: &[Decided], names: &HashMap<LogId, String>) {
    for record in records {
        let package = names.get(&record.log_id).map(String::as_str).unwrap_or(
            if record.log_id == LogId::operator_log() {
                "(operator log)"
            } else {
                "(unknown)"
            },
        );
        let key = record
            .key
            .as_ref()
            .map_or_else(String::new, ToString::to_string);
        match &record.outcome {
            Ok(index) => tracing::info!(
                target: "cairn_server::records",
                package,
                record = %record.record_id,
                entries = record.entries.as_str(),
                key,
                registry_index = index,
                "record published"
            ),
            Err(reason) => tracing::info!(
                target: "cairn_server::records",
                package,
                record = %record.record_id,
                entries = record.entries.as_str(),
                key,
                reason = reason.as_str(),
                "record rejected"
            ),
        }
    }
}

/// Whether record lines are wanted at all (so that a round skips the name lookup when not).
pub fn enabled() -> bool {
    tracing::enabled!(target: "cairn_server::records", tracing::Level::INFO)
}
