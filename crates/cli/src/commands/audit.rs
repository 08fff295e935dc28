//! `cairn audit`: replay a registry's stored records and check every root and checkpoint.

use anyhow::{bail, Context};
use cairn_store::{BlobStore, RecordStore, SqliteStore};
use clap::Args;
use serde::Serialize;

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

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct AuditReport {
    records: usize,
    checkpoints: usize,
    log_length: u64,
    log_root: String,
    map_root: String,
    contents_checked: usize,
}

impl AuditCommand {
    pub fn run(self) -> anyhow::Result<()> {
        let database = self.dir.data.join(cairn_server::DATABASE_FILE);
        if !database.is_file() {
            bail!("{} has no registry database", self.dir.data.display());
        }
        // Like `cairn admin`, on a stopped registry only: opening the store may upgrade its
        // database, which must not happen under a running server.
        let _lock = crate::commands::lock_data_dir(&self.dir.data)?;
        let runtime = tokio::runtime::Runtime::new()?;
        let (mut report, manifests) = runtime.block_on(async {
            let store = SqliteStore::open(&database).await?;
            let records = store.validated().await?;
            let checkpoints = store.checkpoints().await?;
            let state = cairn_server::RegistryState::replay(&records, &checkpoints)
                .context("the stored records and checkpoints do not verify")?;
            let mut manifests = Vec::new();
            if !self.skip_content {
                for digest in released_contents(&state) {
                    let row = store
                        .content(&digest)
                        .await?
                        .with_context(|| format!("released content {digest} is not stored"))?;
                    let manifest = cairn_split::Manifest::from_json(row.manifest.as_bytes())?;
                    manifests.push((digest, manifest));
                }
            }
            store.close().await;
            let checkpoint = state.checkpoint_now();
            let report = AuditReport {
                records: records.len(),
                checkpoints: checkpoints.len(),
                log_length: checkpoint.log_length,
                log_root: checkpoint.log_root.to_string(),
                map_root: checkpoint.map_root.to_string(),
                contents_checked: 0,
            };
            anyhow::Ok((report, manifests))
        })?;
        drop(runtime);
        if !self.skip_content {
            // Blob stores block (an OCI store is an HTTP client): joined here, off the runtime.
            let location = cairn_store::resolve_content_location(&self.dir.data, None, true)?;
            let blobs = location.open()?;
            for (digest, manifest) in &manifests {
                let mut hasher = HashingSink::default();
                cairn_split::join(manifest, &mut Blobs(blobs.as_ref()), &mut hasher)
                    .with_context(|| format!("content {digest} does not join from {location}"))?;
                let actual = cairn_protocol::Digest::from_bytes(hasher.finish());
                if actual != *digest {
                    bail!("content {digest} joins to bytes with digest {actual}");
                }
                report.contents_checked += 1;
            }
        }
        if self.json {
            return output::print_json(&report);
        }
        println!(
            "audit passed: {} records and {} checkpoints replayed, {} contents re-joined and hashed",
            report.records, report.checkpoints, report.contents_checked
        );
        println!(
            "log length {}, log root {}, map root {}",
            report.log_length, report.log_root, report.map_root
        );
        Ok(())
    }
}

/// Every content digest released (and not yanked) in any package.
fn released_contents(state: &cairn_server::RegistryState) -> Vec<cairn_protocol::Digest> {
    let mut digests = Vec::new();
    for index in 0..state.log().len() {
        let Some((log_id, _)) = state.leaf(index) else {
            continue;
        };
        let Some(package) = state.package(log_id) else {
            continue;
        };
        for release in package.releases().values() {
            if let cairn_protocol::ReleaseState::Released { content } = release.state {
                if !digests.contains(&content) {
                    digests.push(content);
                }
            }
        }
    }
    digests
}

struct Blobs<'a>(&'a dyn BlobStore);

impl cairn_split::BlobSource for Blobs<'_> {
    fn open(
        &mut self,
        entry: &cairn_split::BlobEntry,
    ) -> std::io::Result<Box<dyn std::io::Read + '_>> {
        Ok(self.0.open(&entry.digest.into())?)
    }
}

/// Hashes what a join writes.
#[derive(Default)]
struct HashingSink(sha2::Sha256);

impl HashingSink {
    fn finish(self) -> [u8; 32] {
        use sha2::Digest as _;
        self.0.finalize().into()
    }
}

impl std::io::Write for HashingSink {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        use sha2::Digest as _;
        self.0.update(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
