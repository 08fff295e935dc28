//! `cairn split`: write a file's blobs and manifest to a directory.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use cairn_split::BlobKind;
use clap::Args;
use serde::Serialize;

use super::{read_input, split_file};
use crate::output;

/// The name of the manifest file in a split directory.
pub const MANIFEST_FILE: &str = "manifest.json";

/// Split a module or component into blobs named by digest, plus its manifest.
///
/// DIR receives one file per distinct blob, named by the blob's SHA-256 in hex, and
/// `manifest.json`, which lists every blob in join order. Blobs already present are kept.
/// `cairn join DIR` rebuilds the original, byte for byte.
#[derive(Args)]
pub struct SplitCommand {
    /// The core module or component to split.
    file: PathBuf,
    /// The directory to write the blobs and the manifest to (created if missing).
    #[arg(short, long, value_name = "DIR")]
    output: PathBuf,
    /// Print a JSON summary.
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SplitSummary {
    tree_digest: cairn_split::TreeDigest,
    size: u64,
    blobs: usize,
    skeletons: usize,
    modules: usize,
    blobs_written: usize,
    directory: String,
}

impl SplitCommand {
    pub fn run(self) -> anyhow::Result<()> {
        let bytes = read_input(&self.file)?;
        let split = split_file(&self.file, &bytes)?;
        fs::create_dir_all(&self.output)
            .with_context(|| format!("cannot create directory {}", self.output.display()))?;
        let mut written = 0;
        for blob in split.blobs() {
            let path = self.output.join(blob.digest.to_hex());
            let present =
                fs::metadata(&path).is_ok_and(|meta| meta.len() == blob.bytes.len() as u64);
            if !present {
                write_atomically(&path, &blob.bytes)?;
                written += 1;
            }
        }
        write_atomically(
            &self.output.join(MANIFEST_FILE),
            split.manifest().to_json().as_bytes(),
        )?;
        let count = |kind| split.blobs().iter().filter(|b| b.kind == kind).count();
        let summary = SplitSummary {
            tree_digest: split.tree_digest(),
            size: bytes.len() as u64,
            blobs: split.blobs().len(),
            skeletons: count(BlobKind::Skeleton),
            modules: count(BlobKind::Module),
            blobs_written: written,
            directory: self.output.display().to_string(),
        };
        if self.json {
            return output::print_json(&summary);
        }
        println!(
            "split {}, {}, into {} ({}, {}); wrote {} new",
            self.file.display(),
            output::size(summary.size),
            output::count(summary.blobs, "blob"),
            output::count(summary.skeletons, "skeleton"),
            output::count(summary.modules, "module"),
            summary.blobs_written,
        );
        println!("tree: {}", summary.tree_digest);
        Ok(())
    }
}

/// Writes `bytes` to a temporary file beside `path`, then renames it into place.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let tmp = temporary_path(path);
    let result = (|| {
        let mut file = fs::File::create(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result.with_context(|| format!("cannot write {}", path.display()))
}

/// A temporary file name beside `path`, unique to this process.
pub fn temporary_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".tmp-{}", std::process::id()));
    path.with_file_name(name)
}
