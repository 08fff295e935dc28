//! `cairn hash`: a file's plain SHA-256 and its tree digest.

use std::path::PathBuf;

use cairn_split::BlobId;
use clap::Args;
use serde::Serialize;

use super::{read_input, split_file};
use crate::output;

/// Print the SHA-256 and the tree digest of WebAssembly files.
///
/// The SHA-256 is the digest of the file's bytes (what a warg release signs); the tree digest
/// names the file as cairn stores it split, and is the same whether it is stored split or whole.
#[derive(Args)]
#[command(
    after_help = "Examples:\n  cairn hash app.wasm\n  cairn hash *.wasm --json\n  curl -s https://example.com/app.wasm | cairn hash -"
)]
pub struct HashCommand {
    /// The core modules or components to hash (`-` reads standard input).
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// Print JSON (an array, one object per file).
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct FileHashes {
    path: String,
    kind: &'static str,
    size: u64,
    sha256: BlobId,
    tree_digest: cairn_split::TreeDigest,
}

impl HashCommand {
    pub fn run(self) -> anyhow::Result<()> {
        let mut all = Vec::new();
        for path in &self.files {
            let bytes = read_input(path)?;
            // The file's SHA-256 on a second thread while the split hashes its blobs: the
            // two digests cost about one pass.
            let (sha256, split) = std::thread::scope(|scope| {
                let whole = scope.spawn(|| BlobId::of(&bytes));
                let split = split_file(path, &bytes);
                (whole.join().expect("the hashing thread panicked"), split)
            });
            let split = split?;
            all.push(FileHashes {
                path: path.display().to_string(),
                kind: split.kind().as_str(),
                size: bytes.len() as u64,
                sha256,
                tree_digest: split.tree_digest(),
            });
        }
        if self.json {
            return output::print_json(&all);
        }
        for (i, file) in all.iter().enumerate() {
            if i > 0 {
                crate::outln!();
            }
            crate::outln!("{}: {}, {}", file.path, file.kind, output::size(file.size));
            crate::outln!("  sha256: {}", file.sha256);
            crate::outln!("  tree:   {}", file.tree_digest);
        }
        Ok(())
    }
}
