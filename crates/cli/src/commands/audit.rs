//! `cairn audit`: replay a registry's stored records and check every root and checkpoint.

use clap::Args;

use crate::output;

/// Check a registry's data directory.
///
/// Replays every stored record through the validators,
/// rebuild the registry log and map, and check every stored checkpoint's roots and
/// signature; then join every stored content from the content store the data directory
/// records (a directory or an OCI registry; credentials for the latter from
/// CAIRN_CONTENT_USERNAME and CAIRN_CONTENT_PASSWORD) and check its digest. Like `cairn
/// admin`, it runs only while no `cairn serve` uses the data directory.
#[derive(Args)]
#[command(
    after_help = "Examples:\n  cairn audit --data cairn-data\n  cairn audit --data cairn-data --json"
)]
pub struct AuditCommand {
    #[command(flatten)]
    dir: super::DataDir,
    /// Skip re-joining and hashing every stored content.
    #[arg(long)]
    skip_content: bool,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

impl AuditCommand {
    pub fn run(self) -> anyhow::Result<()> {
        // Like `cairn admin`, on a stopped registry only: opening the store may upgrade its
        // database, which must not happen under a running server.
        let _lock = crate::commands::lock_data_dir(&self.dir.data)?;
        let database = self.dir.database()?;
        let runtime = tokio::runtime::Runtime::new()?;
        let report = runtime.block_on(cairn_server::audit::audit(
            &self.dir.data,
            database.as_ref(),
            !self.skip_content,
        ))?;
        if self.json {
            return output::print_json(&report);
        }
        crate::outln!(
            "audit passed: {} records and {} checkpoints replayed, {} contents re-joined and hashed",
            report.records, report.checkpoints, report.contents_checked
        );
        crate::outln!(
            "log length {}, log root {}, map root {}",
            report.log_length,
            report.log_root,
            report.map_root
        );
        Ok(())
    }
}
