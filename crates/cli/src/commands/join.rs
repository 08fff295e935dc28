//! `cairn join`: rebuild a file from a split directory, verifying every blob.

use std::fs::{self, File};
use std::io::{self, BufWriter, Read, Write};
use std::path::PathBuf;

use anyhow::{bail, Context};
use cairn_split::{BlobEntry, BlobSource, Manifest, TreeDigest};
use clap::Args;
use serde::Serialize;

use super::split::{temporary_path, MANIFEST_FILE};
use crate::output;

/// Rebuild a module or component from a directory written by `cairn split`.
///
/// Every blob is checked against its digest and size, every skeleton is validated, and the
/// manifest's tree digest is checked against its blobs (and against --tree-digest if given).
/// The output file appears only if everything verified.
#[derive(Args)]
pub struct JoinCommand {
    /// The directory holding `manifest.json` and the blobs.
    dir: PathBuf,
    /// The file to write.
    #[arg(short, long, value_name = "FILE")]
    output: PathBuf,
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
        let tmp = temporary_path(&self.output);
        let result = (|| -> anyhow::Result<u64> {
            let file =
                File::create(&tmp).with_context(|| format!("cannot create {}", tmp.display()))?;
            let mut out = BufWriter::with_capacity(64 * 1024, file);
            let mut source = DirectoryBlobs {
                dir: self.dir.clone(),
            };
            let summary = cairn_split::join(&manifest, &mut source, &mut out)
                .with_context(|| format!("cannot join {}", self.dir.display()))?;
            let file = out.into_inner().map_err(|e| e.into_error())?;
            file.sync_all()?;
            fs::rename(&tmp, &self.output)
                .with_context(|| format!("cannot write {}", self.output.display()))?;
            Ok(summary.blobs_read)
        })();
        let blobs_read = match result {
            Ok(n) => n,
            Err(error) => {
                let _ = fs::remove_file(&tmp);
                return Err(error);
            }
        };
        let report = JoinReport {
            tree_digest: manifest.tree_digest(),
            size: manifest.size(),
            blobs_read,
            output: self.output.display().to_string(),
        };
        if self.json {
            return output::print_json(&report);
        }
        let mut stdout = io::stdout().lock();
        writeln!(
            stdout,
            "joined {}, {}, from {}, all verified",
            report.output,
            output::size(report.size),
            output::count(report.blobs_read as usize, "blob")
        )?;
        writeln!(stdout, "tree: {}", report.tree_digest)?;
        Ok(())
    }
}
