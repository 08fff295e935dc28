//! `cairn update`: verify the registry's newest checkpoint and the followed packages.

use clap::Args;
use serde::Serialize;

use super::client::{runtime, ClientArgs};
use crate::output;

/// Verify the registry's newest checkpoint and the packages you follow.
///
/// Fetches the checkpoint, the operator log and every package you follow (the ones you
/// published or fetched).
///
/// Every record's signature, chain and permissions, the checkpoint's signature, the inclusion
/// of every log head and the consistency with the last checkpoint you trusted are checked; on
/// any failure nothing you trust changes.
#[derive(Args)]
#[command(after_help = "Examples:\n  cairn update\n  cairn update --max-checkpoint-age 24h --json")]
pub struct UpdateCommand {
    #[command(flatten)]
    client: ClientArgs,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Report {
    log_length: u64,
    previous_log_length: Option<u64>,
    operator_records: usize,
    package_records: usize,
}

impl UpdateCommand {
    pub fn run(self) -> anyhow::Result<()> {
        let mut client = self.client.open(None)?;
        let summary = runtime()?.block_on(client.update())?;
        let report = Report {
            log_length: summary.checkpoint.log_length,
            previous_log_length: summary.previous.map(|c| c.log_length),
            operator_records: summary.operator_records,
            package_records: summary.package_records,
        };
        if self.client.json {
            return output::print_json(&report);
        }
        crate::outln!(
            "verified checkpoint at log length {} ({} new operator and {} new package records)",
            report.log_length,
            report.operator_records,
            report.package_records
        );
        Ok(())
    }
}
