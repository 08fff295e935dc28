//! `cairn admin`: offline administration of a registry's operator log.

use std::path::Path;

use anyhow::{bail, Context};
use cairn_protocol::{
    Envelope, KeyId, Namespace, OperatorEntry, OperatorPermission, PrivateKey, PublicKey, Record,
    Timestamp,
};
use cairn_server::{Registry, Settings};
use cairn_store::{RecordStatus, RecordStore};
use clap::{Args, Subcommand};

use super::DataDir;

/// Change the operator log of a stopped registry.
///
/// Defines namespaces, grants, revokes or rotates operator keys. Each change is one operator record signed by the operator key, validated and
/// checkpointed like any other record.
#[derive(Subcommand)]
pub enum AdminCommand {
    /// Define a namespace this registry hosts.
    #[command(after_help = "Examples:\n  cairn admin define-namespace --data cairn-data example")]
    DefineNamespace(DefineNamespace),
    /// Grant operator permissions to a key.
    #[command(
        after_help = "Examples:\n  cairn admin grant --data cairn-data ecdsa-p256:A2psbo+Ouyq05oJuAUUsHUiCII7af4nvpG2IX57oSVov --permission commit"
    )]
    Grant(Grant),
    /// Revoke operator permissions from a key.
    #[command(
        after_help = "Examples:\n  cairn admin revoke --data cairn-data sha256:0a360e0c0bfe184bde0cb59c912d0f9c9d799dd188b9b3d5fafd56d21e76c84d --permission commit"
    )]
    Revoke(Revoke),
    /// Replace the operator key: grant every permission to a new key, revoke the old key's,
    /// and keep the old key file as `operator.key.old`.
    #[command(after_help = "Examples:\n  cairn admin rotate-key --data cairn-data")]
    RotateKey(RotateKey),
    /// Manage publisher accounts (works while the registry runs).
    #[command(subcommand)]
    Publisher(super::publisher::PublisherCommand),
}

#[derive(Args)]
pub struct DefineNamespace {
    #[command(flatten)]
    dir: DataDir,
    /// The namespace.
    namespace: Namespace,
}

#[derive(Args)]
pub struct Grant {
    #[command(flatten)]
    dir: DataDir,
    /// The public key (`ecdsa-p256:...`).
    key: PublicKey,
    /// A permission: commit, defineNamespace or importNamespace (repeatable).
    #[arg(long = "permission", required = true)]
    permissions: Vec<OperatorPermission>,
}

#[derive(Args)]
pub struct Revoke {
    #[command(flatten)]
    dir: DataDir,
    /// The key id (`sha256:...`).
    key_id: KeyId,
    /// A permission: commit, defineNamespace or importNamespace (repeatable).
    #[arg(long = "permission", required = true)]
    permissions: Vec<OperatorPermission>,
}

#[derive(Args)]
pub struct RotateKey {
    #[command(flatten)]
    dir: DataDir,
}

impl AdminCommand {
    pub fn run(self) -> anyhow::Result<()> {
        let runtime = tokio::runtime::Runtime::new()?;
        runtime.block_on(async move {
            match self {
                AdminCommand::DefineNamespace(c) => {
                    append(&c.dir.data, |_| {
                        Ok(vec![OperatorEntry::DefineNamespace {
                            namespace: c.namespace.clone(),
                        }])
                    })
                    .await?;
                    println!("defined namespace {}", c.namespace);
                }
                AdminCommand::Grant(c) => {
                    let entries = vec![OperatorEntry::Grant {
                        key: c.key.clone(),
                        permissions: c.permissions.clone(),
                    }];
                    append(&c.dir.data, |_| Ok(entries)).await?;
                    println!(
                        "granted {} to {}",
                        list(&c.permissions),
                        c.key.fingerprint()
                    );
                }
                AdminCommand::Revoke(c) => {
                    let entries = vec![OperatorEntry::Revoke {
                        key_id: c.key_id,
                        permissions: c.permissions.clone(),
                    }];
                    append(&c.dir.data, |_| Ok(entries)).await?;
                    println!("revoked {} from {}", list(&c.permissions), c.key_id);
                }
                AdminCommand::RotateKey(c) => rotate(&c.dir.data).await?,
                AdminCommand::Publisher(c) => super::publisher::run(c).await?,
            }
            anyhow::Ok(())
        })
    }
}

fn list(permissions: &[OperatorPermission]) -> String {
    permissions
        .iter()
        .map(|p| p.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

async fn open(dir: &Path) -> anyhow::Result<(std::fs::File, Registry)> {
    if !dir.join(cairn_server::DATABASE_FILE).is_file() {
        bail!(
            "{} has no registry; run `cairn serve --data {}` once first",
            dir.display(),
            dir.display()
        );
    }
    let lock = super::lock_data_dir(dir)?;
    let registry = Registry::open(Settings {
        data_dir: dir.to_owned(),
        namespaces: Vec::new(),
        checkpoint_interval: std::time::Duration::ZERO,
        max_content_size: 0,
        connections: Default::default(),
        uploads: Default::default(),
        require_publisher_token: false,
    })
    .await
    .with_context(|| format!("cannot open the registry in {}", dir.display()))?;
    registry.sequence_pending().await?;
    Ok((lock, registry))
}

/// Appends one operator record with the entries `make` returns, signed by the operator key,
/// and sequences it. Fails with the validator's reason if the record is refused.
async fn append(
    dir: &Path,
    make: impl FnOnce(&Registry) -> anyhow::Result<Vec<OperatorEntry>>,
) -> anyhow::Result<Registry> {
    let (_lock, mut registry) = open(dir).await?;
    let entries = make(&registry)?;
    let key = registry.operator_key().clone();
    append_to(&mut registry, entries, &key, None).await?;
    Ok(registry)
}

/// Signs a record of `entries` with `key`, links it to the operator log's head, and sequences
/// it; the covering checkpoint is signed by `checkpoint_key` if given (key rotation), else by
/// the operator key.
async fn append_to(
    registry: &mut Registry,
    entries: Vec<OperatorEntry>,
    key: &PrivateKey,
    checkpoint_key: Option<PrivateKey>,
) -> anyhow::Result<()> {
    let head = registry
        .state()
        .read()
        .expect("state lock")
        .operator()
        .head()
        .map(|h| h.record_id);
    let record = Record {
        prev: head,
        version: 0,
        time: Timestamp::now(),
        entries,
    };
    let envelope = Envelope::signed(record, key);
    let record_id = *envelope.record_id();
    registry.queue_operator_record(envelope).await?;
    if let Some(checkpoint_key) = checkpoint_key {
        registry.set_operator_key(checkpoint_key);
    }
    registry.sequence_pending().await?;
    let row = registry
        .store()
        .record(&record_id)
        .await?
        .context("the operator record was not stored")?;
    match row.status {
        RecordStatus::Validated => Ok(()),
        _ => bail!(
            "the operator record was refused: {}",
            row.reason.unwrap_or_default()
        ),
    }
}

async fn rotate(dir: &Path) -> anyhow::Result<()> {
    let (_lock, mut registry) = open(dir).await?;
    let old = registry.operator_key().clone();
    let new = PrivateKey::generate()?;
    // The new key is on disk before the log names it; a restart finishes a rotation that
    // stopped after the record was sequenced (see `cairn_server::Registry::open`).
    let new_file = dir.join(cairn_server::NEW_OPERATOR_KEY_FILE);
    let _ = std::fs::remove_file(&new_file);
    cairn_server::write_secret(&new_file, &new.to_secret_text())
        .with_context(|| format!("cannot write {}", new_file.display()))?;
    let all = OperatorPermission::ALL.to_vec();
    let entries = vec![
        OperatorEntry::Grant {
            key: new.public_key().clone(),
            permissions: all.clone(),
        },
        OperatorEntry::Revoke {
            key_id: old.public_key().fingerprint(),
            permissions: all,
        },
    ];
    // The old key signs the record; the checkpoint that covers it must be signed by the new
    // key, the only one that holds `commit` once the record applies.
    if let Err(error) = append_to(&mut registry, entries, &old, Some(new.clone())).await {
        let _ = std::fs::remove_file(&new_file);
        return Err(error);
    }
    let key_file = dir.join(cairn_server::OPERATOR_KEY_FILE);
    let old_file = dir.join(format!("{}.old", cairn_server::OPERATOR_KEY_FILE));
    std::fs::rename(&key_file, &old_file)
        .with_context(|| format!("cannot move {}", key_file.display()))?;
    std::fs::rename(&new_file, &key_file)
        .with_context(|| format!("cannot move {}", new_file.display()))?;
    println!(
        "rotated the operator key: {} replaces {} (kept in {})",
        new.public_key().fingerprint(),
        old.public_key().fingerprint(),
        old_file.display()
    );
    Ok(())
}
