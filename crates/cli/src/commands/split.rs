//! `cairn split`: write a file's blobs and manifest to a directory.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use cairn_split::{BlobId, BlobKind};
use clap::Args;
use serde::Serialize;

use super::{read_input, split_file};
use crate::destination::write_atomically;
use crate::output;

/// The name of the manifest file in a split directory.
pub const MANIFEST_FILE: &str = "manifest.json";

/// Split a module or component into blobs named by digest, plus its manifest.
///
/// DIR receives one file per distinct blob, named by the blob's SHA-256 in hex, and
/// `manifest.json`, which lists every blob in join order. Blobs already present are kept if
/// their bytes match their name, and written again if not. `cairn join DIR` rebuilds the
/// original, byte for byte.
#[derive(Args)]
#[command(after_help = "Examples:
  cairn split app.wasm -o app.split
  curl -s https://example.com/app.wasm | cairn split - -o app.split
  cairn split v2.wasm -o app.split    # blobs shared with what is there are not written again")]
pub struct SplitCommand {
    /// The core module or component to split (`-` reads standard input).
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
        if self.output == Path::new("-") {
            bail!(
                "a split is a directory (a file per blob, and manifest.json), not one stream: \
                 give `-o` a directory"
            );
        }
        let bytes = read_input(&self.file)?;
        let split = split_file(&self.file, &bytes)?;
        fs::create_dir_all(&self.output)
            .with_context(|| format!("cannot create directory {}", self.output.display()))?;
        let mut written = 0;
        for blob in split.blobs() {
            let path = self.output.join(blob.digest.to_hex());
            // A blob already there is kept only if its bytes are the ones its name says.
            let present = fs::read(&path).is_ok_and(|bytes| BlobId::of(&bytes) == blob.digest);
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
        crate::outln!(
            "split {}, {}, into {} ({}, {}); wrote {} new",
            self.file.display(),
            output::size(summary.size),
            output::count(summary.blobs, "blob"),
            output::count(summary.skeletons, "skeleton"),
            output::count(summary.modules, "module"),
            summary.blobs_written,
        );
        crate::outln!("tree: {}", summary.tree_digest);
        Ok(())
    }
}
