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

/// Unix seconds as `YYYY-MM-DDTHH:MM:SSZ`.
fn utc(seconds: i64) -> String {
    let (days, secs) = (seconds.div_euclid(86_400), seconds.rem_euclid(86_400));
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
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
                    time: utc(record.time.seconds),
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
