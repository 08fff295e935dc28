//! `cairn dedup`: how much storing several files split saves, and which blobs they share.

use std::collections::BTreeMap;
use std::path::PathBuf;

use cairn_split::{BlobId, BlobKind};
use clap::Args;
use serde::Serialize;

use super::{read_input, split_file};
use crate::output;

/// Measure what storing several files split saves.
///
/// Compares the bytes the files take whole with the bytes they take split, each distinct blob
/// counted once, and lists the blobs that more than one file shares.
#[derive(Args)]
#[command(
    after_help = "Examples:\n  cairn dedup *.wasm\n  cairn dedup app-v1.wasm app-v2.wasm --json"
)]
pub struct DedupCommand {
    /// The core modules or components to compare.
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct DedupReport {
    files: usize,
    whole_bytes: u64,
    split_bytes: u64,
    distinct_blobs: usize,
    shared: Vec<SharedBlob>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SharedBlob {
    digest: BlobId,
    kind: BlobKind,
    size: u64,
    files: Vec<String>,
}

impl DedupCommand {
    pub fn run(self) -> anyhow::Result<()> {
        let mut whole_bytes = 0;
        // BlobId -> (kind, size, files holding it), ordered for stable output.
        let mut blobs: BTreeMap<BlobId, (BlobKind, u64, Vec<String>)> = BTreeMap::new();
        for path in &self.files {
            let bytes = read_input(path)?;
            let split = split_file(path, &bytes)?;
            whole_bytes += bytes.len() as u64;
            for blob in split.blobs() {
                let entry = blobs
                    .entry(blob.digest)
                    .or_insert_with(|| (blob.kind, blob.bytes.len() as u64, Vec::new()));
                let name = path.display().to_string();
                if !entry.2.contains(&name) {
                    entry.2.push(name);
                }
            }
        }
        let split_bytes = blobs.values().map(|(_, size, _)| size).sum();
        let mut shared: Vec<SharedBlob> = blobs
            .iter()
            .filter(|(_, (_, _, files))| files.len() > 1)
            .map(|(digest, (kind, size, files))| SharedBlob {
                digest: *digest,
                kind: *kind,
                size: *size,
                files: files.clone(),
            })
            .collect();
        shared.sort_by(|a, b| b.size.cmp(&a.size).then(a.digest.cmp(&b.digest)));
        let report = DedupReport {
            files: self.files.len(),
            whole_bytes,
            split_bytes,
            distinct_blobs: blobs.len(),
            shared,
        };
        if self.json {
            return output::print_json(&report);
        }
        crate::outln!(
            "whole: {} in {} files",
            output::size(report.whole_bytes),
            report.files
        );
        crate::outln!(
            "split: {} in {} distinct blobs, shared blobs counted once",
            output::size(report.split_bytes),
            report.distinct_blobs
        );
        if report.whole_bytes > 0 {
            let saved = report.whole_bytes as i128 - report.split_bytes as i128;
            crate::outln!(
                "saved: {saved} B ({:.1}% of whole)",
                saved as f64 * 100.0 / report.whole_bytes as f64
            );
        }
        if report.shared.is_empty() {
            crate::outln!("no blob is shared by two or more files");
        } else {
            crate::outln!("shared blobs:");
            for blob in &report.shared {
                crate::outln!(
                    "  {} {} {}  in {}",
                    blob.kind.as_str(),
                    blob.digest,
                    output::size(blob.size),
                    blob.files.join(", ")
                );
            }
        }
        Ok(())
    }
}
