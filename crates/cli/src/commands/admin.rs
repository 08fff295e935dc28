//! `cairn admin`: offline administration of a registry's operator log.

use anyhow::{bail, Context};
use cairn_protocol::{KeyId, Namespace, OperatorEntry, OperatorPermission, PublicKey};
use cairn_server::{key_rotation, Registry, Settings};
use clap::{Args, Subcommand};

use super::DataDir;
use crate::output::print_json;

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
    /// Print JSON for scripts.
    #[arg(long)]
    json: bool,
    /// The namespace.
    namespace: Namespace,
}

#[derive(Args)]
pub struct Grant {
    #[command(flatten)]
    dir: DataDir,
    /// Print JSON for scripts.
    #[arg(long)]
    json: bool,
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
    /// Print JSON for scripts.
    #[arg(long)]
    json: bool,
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
    /// Print JSON for scripts.
    #[arg(long)]
    json: bool,
}

impl AdminCommand {
    pub fn run(self) -> anyhow::Result<()> {
        let runtime = tokio::runtime::Runtime::new()?;
        runtime.block_on(async move {
            match self {
                AdminCommand::DefineNamespace(c) => {
                    append(&c.dir, |_| {
                        Ok(vec![OperatorEntry::DefineNamespace {
                            namespace: c.namespace.clone(),
                        }])
                    })
                    .await?;
                    if c.json {
                        return print_json(&serde_json::json!({
                            "defined": c.namespace.to_string(),
                        }));
                    }
                    crate::outln!("defined namespace {}", c.namespace);
                }
                AdminCommand::Grant(c) => {
                    let entries = vec![OperatorEntry::Grant {
                        key: c.key.clone(),
                        permissions: c.permissions.clone(),
                    }];
                    append(&c.dir, |_| Ok(entries)).await?;
                    if c.json {
                        return print_json(&serde_json::json!({
                            "granted": strings(&c.permissions),
                            "key": c.key.to_string(),
                            "keyId": c.key.fingerprint().to_string(),
                        }));
                    }
                    crate::outln!(
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
                    append(&c.dir, |_| Ok(entries)).await?;
                    if c.json {
                        return print_json(&serde_json::json!({
                            "revoked": strings(&c.permissions),
                            "keyId": c.key_id.to_string(),
                        }));
                    }
                    crate::outln!("revoked {} from {}", list(&c.permissions), c.key_id);
                }
                AdminCommand::RotateKey(c) => rotate(&c.dir, c.json).await?,
                AdminCommand::Publisher(c) => super::publisher::run(c).await?,
            }
            anyhow::Ok(())
        })
    }
}

fn strings(permissions: &[OperatorPermission]) -> Vec<String> {
    permissions.iter().map(|p| p.to_string()).collect()
}

fn list(permissions: &[OperatorPermission]) -> String {
    strings(permissions).join(", ")
}

async fn open(data: &DataDir) -> anyhow::Result<(std::fs::File, Registry)> {
    let dir = &data.data;
    if data.database.is_none() && !dir.join(cairn_server::DATABASE_FILE).is_file() {
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
        patch_cache_bytes: cairn_server::patches::DEFAULT_CACHE_BYTES,
        database: data.database.clone(),
    })
    .await
    .with_context(|| format!("cannot open the registry in {}", dir.display()))?;
    registry.sequence_pending().await?;
    Ok((lock, registry))
}

/// Appends one operator record with the entries `make` returns, signed by the operator key,
/// and sequences it. Fails with the validator's reason if the record is refused.
async fn append(
    dir: &DataDir,
    make: impl FnOnce(&Registry) -> anyhow::Result<Vec<OperatorEntry>>,
) -> anyhow::Result<Registry> {
    let (_lock, mut registry) = open(dir).await?;
    let entries = make(&registry)?;
    let key = registry.operator_key().clone();
    key_rotation::append_operator_record(&mut registry, entries, &key, None).await?;
    Ok(registry)
}

async fn rotate(dir: &DataDir, json: bool) -> anyhow::Result<()> {
    let (_lock, mut registry) = open(dir).await?;
    let rotation = key_rotation::rotate(&dir.data, &mut registry).await?;
    let (new, old) = (rotation.new_key.public_key(), rotation.old_key.public_key());
    if json {
        return print_json(&serde_json::json!({
            "keyId": new.fingerprint().to_string(),
            "publicKey": new.to_string(),
            "previousKeyId": old.fingerprint().to_string(),
            "previousKeyFile": rotation.old_key_file,
        }));
    }
    crate::outln!(
        "rotated the operator key: {} replaces {} (kept in {})",
        new.fingerprint(),
        old.fingerprint(),
        rotation.old_key_file.display()
    );
    Ok(())
}
