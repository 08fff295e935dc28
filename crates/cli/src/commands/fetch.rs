//! `cairn fetch`: download a verified release.

use std::path::PathBuf;

use anyhow::Context;
use cairn_protocol::PackageName;
use clap::Args;
use semver::VersionReq;
use serde::Serialize;

use super::client::{runtime, ClientArgs};
use crate::output;

/// Download a verified release.
///
/// Picks the highest version matching the requirement that is not yanked, verified end to end (every record and proof, then every fragment and the whole file against
/// the signed release). Fragments already in the local cache are not downloaded again.
#[derive(Args)]
pub struct FetchCommand {
    /// `namespace:name`, optionally `@REQUIREMENT` (`@1.2.0` is `^1.2.0`; `@=1.2.0` exactly).
    package: String,
    /// Where to write the file (default: `<name>.wasm` in the current folder).
    #[arg(short, long, value_name = "FILE")]
    output: Option<PathBuf>,
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
        let mut client = self.client.open(Some(&name))?;
        let fetched = runtime()?.block_on(client.fetch(&name, &requirement))?;
        let output = self
            .output
            .unwrap_or_else(|| PathBuf::from(format!("{}.wasm", name.name())));
        crate::commands::split::write_atomically(&output, &fetched.bytes)?;
        let report = Report {
            package: name.to_string(),
            version: fetched.version.to_string(),
            digest: fetched.digest.to_string(),
            size: fetched.bytes.len() as u64,
            output: output.display().to_string(),
            bytes_downloaded: fetched.stats.bytes_downloaded(),
            blobs_downloaded: fetched.stats.blobs_downloaded,
            blobs_cached: fetched.stats.blobs_cached,
            whole_file: fetched.stats.whole_file,
        };
        if self.client.json {
            return output::print_json(&report);
        }
        println!(
            "fetched {}@{} to {}: {}",
            report.package,
            report.version,
            report.output,
            output::size(report.size)
        );
        println!(
            "downloaded {} in {}, {} from the cache; verified against {}",
            output::size(report.bytes_downloaded),
            output::count(report.blobs_downloaded as usize, "blob"),
            report.blobs_cached,
            report.digest
        );
        Ok(())
    }
}
