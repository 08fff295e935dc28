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
    entries: Vec<String>,
}

fn describe(entry: &PackageEntry) -> String {
    let list = |p: &[cairn_protocol::PackagePermission]| {
        p.iter()
            .map(|p| p.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    };
    match entry {
        PackageEntry::Init { key, .. } => format!("init, owner {}", key.fingerprint()),
        PackageEntry::Grant { key, permissions } => {
            format!("grant {} to {}", list(permissions), key.fingerprint())
        }
        PackageEntry::Revoke {
            key_id,
            permissions,
        } => format!("revoke {} from {key_id}", list(permissions)),
        PackageEntry::Release { version, content } => format!("release {version} ({content})"),
        PackageEntry::Yank { version } => format!("yank {version}"),
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
                    entries: record.entries.iter().map(describe).collect(),
                }
            })
            .collect();
        if self.client.json {
            return output::print_json(&history);
        }
        for entry in &history {
            println!(
                "#{} at {} by {}",
                entry.registry_index, entry.time, entry.signer
            );
            for line in &entry.entries {
                println!("  {line}");
            }
        }
        Ok(())
    }
}
