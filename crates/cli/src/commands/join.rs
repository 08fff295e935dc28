//! `cairn join`: rebuild a file from a split directory, verifying every blob.

use std::fs::{self, File};
use std::io::{self, Read};
use std::path::PathBuf;

use anyhow::{bail, Context};
use cairn_split::{BlobEntry, BlobSource, Manifest, TreeDigest};
use clap::Args;
use serde::Serialize;

use super::split::MANIFEST_FILE;
use crate::destination::Destination;
use crate::output;

/// Rebuild a module or component from a directory written by `cairn split`.
///
/// Every blob is checked against its digest and size, every skeleton is validated, and the
/// manifest's tree digest is checked against its blobs (and against --tree-digest if given).
/// The output file appears only if everything verified (written to standard output, the bytes
/// stream as they verify, and a failure stops them).
#[derive(Args)]
#[command(after_help = "Examples:
  cairn split app.wasm -o app.split && cairn join app.split -o app.wasm
  cairn join app.split -o - | wasm-tools print
  cairn join app.split --tree-digest sha256:434736df0b2aa46fc20d718a0bf29767880e25ffe9c4e4347934a8c6ad9da1c8 -o out/")]
pub struct JoinCommand {
    /// The directory holding `manifest.json` and the blobs.
    dir: PathBuf,
    /// Where to write the file: a path, a directory (the file is named after DIR), or `-` for
    /// standard output [default: DIR's name with `.wasm`, in the current folder].
    #[arg(short, long, value_name = "FILE")]
    output: Option<PathBuf>,
    /// Replace an existing file that holds other bytes.
    #[arg(long)]
    force: bool,
    /// Fail unless the manifest has this tree digest (`sha256:<hex>`).
    #[arg(long, value_name = "DIGEST")]
    tree_digest: Option<TreeDigest>,
    /// Print a JSON summary.
    #[arg(long)]
    json: bool,
}

/// Reads blobs from a directory of files named by their hex digest.
struct DirectoryBlobs {
    dir: PathBuf,
}

impl BlobSource for DirectoryBlobs {
    fn open(&mut self, entry: &BlobEntry) -> io::Result<Box<dyn Read + '_>> {
        let file = File::open(self.dir.join(entry.digest.to_hex()))?;
        Ok(Box::new(file))
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct JoinReport {
    tree_digest: TreeDigest,
    size: u64,
    blobs_read: u64,
    output: String,
}

impl JoinCommand {
    pub fn run(self) -> anyhow::Result<()> {
        let manifest_path = self.dir.join(MANIFEST_FILE);
        let json = fs::read(&manifest_path)
            .with_context(|| format!("cannot read {}", manifest_path.display()))?;
        let manifest = Manifest::from_json(&json)
            .with_context(|| format!("refusing {}", manifest_path.display()))?;
        if let Some(expected) = self.tree_digest {
            if manifest.tree_digest() != expected {
                bail!(
                    "{} names tree {}, not the expected {expected}",
                    manifest_path.display(),
                    manifest.tree_digest()
                );
            }
        }
        let name = self
            .dir
            .canonicalize()
            .ok()
            .and_then(|dir| dir.file_name().map(|n| n.to_string_lossy().into_owned()))
            .unwrap_or_else(|| "joined".to_owned());
        let name = format!("{}.wasm", name.trim_end_matches(".split"));
        let destination = Destination::resolve(self.output.as_deref(), &name);
        if destination.is_stdout() && self.json {
            bail!("`--json` prints the report on standard output: give `-o` a file");
        }
        let mut source = DirectoryBlobs {
            dir: self.dir.clone(),
        };
        let blobs_read = destination.write_with(self.force, |mut out| {
            let summary = cairn_split::join(&manifest, &mut source, &mut out)
                .with_context(|| format!("cannot join {}", self.dir.display()))?;
            Ok(summary.blobs_read)
        })?;
        let report = JoinReport {
            tree_digest: manifest.tree_digest(),
            size: manifest.size(),
            blobs_read,
            output: destination.display(),
        };
        if self.json {
            return output::print_json(&report);
        }
        let text = format!(
            "joined {}, {}, from {}, all verified\ntree: {}",
            report.output,
            output::size(report.size),
            output::count(report.blobs_read as usize, "blob"),
            report.tree_digest
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
