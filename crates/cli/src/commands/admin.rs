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
    /// Copy a stopped registry's SQLite database into an empty PostgreSQL database, to serve
    /// it with `cairn serve --database postgres://...` (content, keys and the rest of the
    /// data directory stay where they are).
    #[command(
        after_help = "Examples:\n  createdb -h db.example.com cairn\n  cairn admin migrate --from cairn-data --to postgres://cairn@db.example.com:5432/cairn\n  cairn audit --data cairn-data --database postgres://cairn@db.example.com:5432/cairn\n  cairn serve --data cairn-data --database postgres://cairn@db.example.com:5432/cairn"
    )]
    Migrate(Migrate),
}

#[derive(Args)]
pub struct Migrate {
    /// The data directory of the registry to copy (its `cairn.db`).
    #[arg(long, value_name = "DIR")]
    from: std::path::PathBuf,
    /// The PostgreSQL database to copy it into, which must hold no registry yet.
    #[arg(long, value_name = "URL")]
    to: String,
    /// Print JSON for scripts.
    #[arg(long)]
    json: bool,
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
                AdminCommand::Migrate(c) => migrate(c).await?,
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
    let database = data.database()?;
    if database.is_none() && !dir.join(cairn_server::DATABASE_FILE).is_file() {
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
        database,
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

async fn migrate(c: Migrate) -> anyhow::Result<()> {
    // Parsed here, not by clap, whose errors would echo a password in the URL.
    let target = match cairn_store::Database::parse(&c.to)? {
        cairn_store::Database::Postgres(url) => url,
        cairn_store::Database::Sqlite(_) => {
            bail!("--to must be a PostgreSQL database: postgres://USER@HOST:PORT/DB")
        }
    };
    let database = c.from.join(cairn_server::DATABASE_FILE);
    if !database.is_file() {
        bail!(
            "{} has no registry to migrate (no {})",
            c.from.display(),
            cairn_server::DATABASE_FILE
        );
    }
    let _lock = super::lock_data_dir(&c.from)?;
    let source = cairn_store::SqliteStore::open(&database)
        .await
        .with_context(|| format!("cannot open {}", database.display()))?;
    let shown = cairn_store::Database::Postgres(target.clone()).display();
    let target = cairn_store::PostgresStore::open(&target)
        .await
        .with_context(|| format!("cannot open {shown}"))?;
    let json = c.json;
    let report = target
        .copy_from_sqlite(&source, |table, rows| {
            if !json {
                use std::io::Write as _;
                let _ = writeln!(std::io::stdout(), "copied {rows} rows of {table}");
            }
        })
        .await
        .with_context(|| format!("cannot copy {} into {shown}", database.display()))?;
    if json {
        let tables: serde_json::Map<String, serde_json::Value> = report
            .tables
            .iter()
            .map(|(table, rows)| (table.clone(), (*rows).into()))
            .collect();
        return print_json(&serde_json::json!({ "database": shown, "tables": tables }));
    }
    crate::outln!(
        "migrated {} into {shown}; serve it with `cairn serve --data {} --database URL`",
        database.display(),
        c.from.display()
    );
    Ok(())
}
