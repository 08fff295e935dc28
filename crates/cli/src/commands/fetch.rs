//! `cairn fetch`: download a verified release.

use std::path::PathBuf;

use anyhow::Context;
use cairn_client::Yanked;
use cairn_protocol::PackageName;
use clap::Args;
use semver::VersionReq;
use serde::Serialize;

use super::client::{runtime, ClientArgs, TransferArg};
use crate::destination::Destination;
use crate::output;

/// Download a verified release.
///
/// Picks the highest version matching the requirement that is not yanked, verified end to end (every record and proof, then every fragment and the whole file against
/// the signed release). Fragments already in the local cache are not downloaded again.
#[derive(Args)]
#[command(
    after_help = "Examples:\n  cairn fetch example:hello\n  cairn fetch example:hello@1.2 -o build/\n  cairn fetch example:hello@=1.2.0 -o - | wasmtime run -"
)]
pub struct FetchCommand {
    /// `namespace:name`, optionally `@REQUIREMENT` (`@1.2.0` is `^1.2.0`; `@=1.2.0` exactly).
    package: String,
    /// Where to write the file: a path, a directory (the file is `NAME.wasm` inside), or `-`
    /// for standard output [default: `NAME.wasm` in the current folder].
    #[arg(short, long, value_name = "FILE")]
    output: Option<PathBuf>,
    /// Replace an existing file that holds other bytes.
    #[arg(long)]
    force: bool,
    /// Take a yanked release when no other matches (its content is still in the log).
    #[arg(long)]
    allow_yanked: bool,
    #[command(flatten)]
    transfer: TransferArg,
    #[command(flatten)]
    client: ClientArgs,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Report {
    package: String,
    version: String,
    digest: String,
    size: u64,
    output: String,
    bytes_downloaded: u64,
    blobs_downloaded: u64,
    blobs_cached: u64,
    blobs_patched: u64,
    whole_file: bool,
}

impl FetchCommand {
    pub fn run(self) -> anyhow::Result<()> {
        let (name, requirement) = match self.package.split_once('@') {
            Some((name, requirement)) => (name, requirement),
            None => (self.package.as_str(), "*"),
        };
        let name: PackageName = name.parse()?;
        let requirement: VersionReq = requirement
            .parse()
            .with_context(|| format!("invalid version requirement {requirement:?}"))?;
        let destination =
            Destination::resolve(self.output.as_deref(), &format!("{}.wasm", name.name()));
        if destination.is_stdout() && self.client.json {
            anyhow::bail!("`--json` prints the report on standard output: give `-o` a file");
        }
        let mut client = self.client.open_moving(Some(&name), Some(&self.transfer))?;
        let yanked = if self.allow_yanked {
            Yanked::Allowed
        } else {
            Yanked::Skipped
        };
        let fetched = runtime()?.block_on(client.fetch_allowing(&name, &requirement, yanked))?;
        destination.write(&fetched.bytes, self.force)?;
        let report = Report {
            package: name.to_string(),
            version: fetched.version.to_string(),
            digest: fetched.digest.to_string(),
            size: fetched.bytes.len() as u64,
            output: destination.display(),
            bytes_downloaded: fetched.stats.bytes_downloaded(),
            blobs_downloaded: fetched.stats.blobs_downloaded,
            blobs_cached: fetched.stats.blobs_cached,
            blobs_patched: fetched.stats.blobs_patched,
            whole_file: fetched.stats.whole_file,
        };
        if self.client.json {
            return output::print_json(&report);
        }
        let patched = match report.blobs_patched {
            0 => String::new(),
            n => format!(" ({n} as patches against earlier releases)"),
        };
        let text = format!(
            "fetched {}@{} to {}: {}\n\
             downloaded {} in {}{patched}, {} from the cache; verified against {}",
            report.package,
            report.version,
            report.output,
            output::size(report.size),
            output::size(report.bytes_downloaded),
            output::count(report.blobs_downloaded as usize, "blob"),
            report.blobs_cached,
            report.digest
        );
        // With the file on standard output, the report goes to standard error.
        if destination.is_stdout() {
            eprintln!("{text}");
        } else {
            crate::outln!("{text}");
        }
        Ok(())
    }
}
