//! `cairn log`: a package's history.

use cairn_protocol::{PackageEntry, PackageName};
use clap::Args;
use serde::Serialize;

use super::client::{runtime, ClientArgs};
use crate::output;

/// Show a package's verified history.
///
/// Every record, who signed it, when, and what it did.
#[derive(Args)]
#[command(after_help = "Examples:\n  cairn log example:hello\n  cairn log example:hello --json")]
pub struct LogCommand {
    /// The package, `namespace:name`.
    package: PackageName,
    #[command(flatten)]
    client: ClientArgs,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Entry {
    registry_index: u64,
    record_id: String,
    signer: String,
    time: String,
    entries: Vec<EntryFields>,
}

/// One entry of a record, as fields a script can read.
#[derive(Serialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
enum EntryFields {
    #[serde(rename_all = "camelCase")]
    Init {
        key_id: String,
        public_key: String,
        hash_algorithm: String,
    },
    #[serde(rename_all = "camelCase")]
    Grant {
        key_id: String,
        public_key: String,
        permissions: Vec<String>,
    },
    #[serde(rename_all = "camelCase")]
    Revoke {
        key_id: String,
        permissions: Vec<String>,
    },
    Release {
        version: String,
        content: String,
    },
    Yank {
        version: String,
    },
}

impl EntryFields {
    fn of(entry: &PackageEntry) -> Self {
        let strings = |p: &[cairn_protocol::PackagePermission]| -> Vec<String> {
            p.iter().map(|p| p.to_string()).collect()
        };
        match entry {
            PackageEntry::Init {
                key,
                hash_algorithm,
            } => EntryFields::Init {
                key_id: key.fingerprint().to_string(),
                public_key: key.to_string(),
                hash_algorithm: hash_algorithm.as_str().to_owned(),
            },
            PackageEntry::Grant { key, permissions } => EntryFields::Grant {
                key_id: key.fingerprint().to_string(),
                public_key: key.to_string(),
                permissions: strings(permissions),
            },
            PackageEntry::Revoke {
                key_id,
                permissions,
            } => EntryFields::Revoke {
                key_id: key_id.to_string(),
                permissions: strings(permissions),
            },
            PackageEntry::Release { version, content } => EntryFields::Release {
                version: version.to_string(),
                content: content.to_string(),
            },
            PackageEntry::Yank { version } => EntryFields::Yank {
                version: version.to_string(),
            },
        }
    }

    /// The entry in a line for people.
    fn describe(&self) -> String {
        match self {
            EntryFields::Init { key_id, .. } => format!("init, owner {key_id}"),
            EntryFields::Grant {
                key_id,
                permissions,
                ..
            } => format!("grant {} to {key_id}", permissions.join(", ")),
            EntryFields::Revoke {
                key_id,
                permissions,
            } => format!("revoke {} from {key_id}", permissions.join(", ")),
            EntryFields::Release { version, content } => format!("release {version} ({content})"),
            EntryFields::Yank { version } => format!("yank {version}"),
        }
    }
}

impl LogCommand {
    pub fn run(self) -> anyhow::Result<()> {
        let mut client = self.client.open(Some(&self.package))?;
        runtime()?.block_on(client.update_packages(std::slice::from_ref(&self.package)))?;
        let package = client
            .trusted()
            .package(&self.package)
            .expect("followed by the update");
        let history: Vec<Entry> = package
            .records()
            .iter()
            .map(|logged| {
                let record = logged.envelope.record();
                Entry {
                    registry_index: logged.registry_index,
                    record_id: logged.envelope.record_id().to_string(),
                    signer: logged.envelope.key_id().to_string(),
                    time: cairn_protocol::Timestamp {
                        seconds: record.time.seconds,
                        nanos: 0,
                    }
                    .to_rfc3339(),
                    entries: record.entries.iter().map(EntryFields::of).collect(),
                }
            })
            .collect();
        if self.client.json {
            return output::print_json(&history);
        }
        for entry in &history {
            crate::outln!(
                "#{} at {} by {}",
                entry.registry_index,
                entry.time,
                entry.signer
            );
            for fields in &entry.entries {
                crate::outln!("  {}", fields.describe());
            }
        }
        Ok(())
    }
}
