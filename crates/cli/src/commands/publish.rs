//! `cairn publish`: sign and publish package records.

use std::path::PathBuf;

use anyhow::{bail, Context};
use cairn_client::{PublishEntry, Published};
use cairn_protocol::{KeyId, PackageName, PackagePermission, PublicKey};
use clap::{Args, Subcommand};
use semver::Version;
use serde::Serialize;

use super::client::{runtime, ClientArgs, KeyArg, TransferArg};
use crate::output;

/// Publish signed package records.
///
/// Each record is signed with your key; the command waits until it is published.
#[derive(Subcommand)]
pub enum PublishCommand {
    /// Create a package owned by your key.
    #[command(
        after_help = "Examples:\n  cairn publish init example:hello\n  cairn publish init example:hello --key work --registry https://registry.example.com"
    )]
    Init(Init),
    /// Release a version of a package.
    #[command(
        after_help = "Examples:\n  cairn publish release example:hello --version 1.0.0 hello.wasm\n  cairn publish release example:hello --version 1.1.0 target/wasm32-wasip2/release/hello.wasm --json"
    )]
    Release(Release),
    /// Yank a released version (it can never be released again).
    #[command(after_help = "Examples:\n  cairn publish yank example:hello --version 1.0.0")]
    Yank(Yank),
    /// Grant permissions on a package to another key.
    #[command(
        after_help = "Examples:\n  cairn publish grant example:hello ecdsa-p256:A2psbo+Ouyq05oJuAUUsHUiCII7af4nvpG2IX57oSVov --permission release\n  cairn publish grant example:hello ecdsa-p256:A2psbo+Ouyq05oJuAUUsHUiCII7af4nvpG2IX57oSVov --permission release --permission yank"
    )]
    Grant(Grant),
    /// Revoke permissions on a package from a key.
    #[command(
        after_help = "Examples:\n  cairn publish revoke example:hello sha256:0a360e0c0bfe184bde0cb59c912d0f9c9d799dd188b9b3d5fafd56d21e76c84d --permission release"
    )]
    Revoke(Revoke),
    /// Publish several entries in one record.
    #[command(
        after_help = "Examples:\n  cairn publish record example:hello --init --release 1.0.0=hello.wasm\n  cairn publish record example:hello --release 2.0.0=hello.wasm --yank 1.0.0"
    )]
    Record(RecordEntries),
}

#[derive(Args)]
pub struct Common {
    /// The package, `namespace:name`.
    package: PackageName,
    #[command(flatten)]
    key: KeyArg,
    #[command(flatten)]
    client: ClientArgs,
}

#[derive(Args)]
pub struct Init {
    #[command(flatten)]
    common: Common,
}

#[derive(Args)]
pub struct Release {
    #[command(flatten)]
    common: Common,
    /// The version.
    #[arg(long)]
    version: Version,
    /// The component or module to release.
    file: PathBuf,
    #[command(flatten)]
    transfer: TransferArg,
}

#[derive(Args)]
pub struct Yank {
    #[command(flatten)]
    common: Common,
    /// The version.
    #[arg(long)]
    version: Version,
}

#[derive(Args)]
pub struct Grant {
    #[command(flatten)]
    common: Common,
    /// The key receiving the permissions: its public key (`ecdsa-p256:...`) or the name of one
    /// of your keys.
    public_key: KeyRef,
    /// A permission, `release` or `yank` (repeatable; default both).
    #[arg(long = "permission")]
    permissions: Vec<PackagePermission>,
}

#[derive(Args)]
pub struct Revoke {
    #[command(flatten)]
    common: Common,
    /// The key losing the permissions: its id (`sha256:...`), its public key, or the name of
    /// one of your keys.
    key_id: KeyRef,
    /// A permission, `release` or `yank` (repeatable; default both).
    #[arg(long = "permission")]
    permissions: Vec<PackagePermission>,
}

#[derive(Args)]
pub struct RecordEntries {
    #[command(flatten)]
    common: Common,
    /// Start with an init entry.
    #[arg(long)]
    init: bool,
    /// A release, `VERSION=FILE` (repeatable).
    #[arg(long = "release", value_name = "VERSION=FILE")]
    releases: Vec<String>,
    /// A version to yank (repeatable).
    #[arg(long = "yank", value_name = "VERSION")]
    yanks: Vec<Version>,
    #[command(flatten)]
    transfer: TransferArg,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Report {
    package: String,
    record_id: String,
    registry_index: u64,
    bytes_uploaded: u64,
    blobs_skipped: u64,
}

/// Reads a file to release and checks that it is WebAssembly, before anything is signed.
fn read(path: &PathBuf) -> anyhow::Result<Vec<u8>> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut validator = wasmparser::Validator::new_with_features(wasmparser::WasmFeatures::all());
    if let Err(error) = validator.validate_all(&bytes) {
        let reason = if !bytes.starts_with(b"\0asm") {
            "it does not start with the WebAssembly magic bytes".to_owned()
        } else {
            format!("{} (at byte {:#x})", error.message(), error.offset())
        };
        bail!(
            "{} is not a valid WebAssembly component or module: {reason}; nothing was signed \
             or sent",
            path.display()
        );
    }
    Ok(bytes)
}

/// A key named the way people have it at hand: a key id (`sha256:...`), a public key
/// (`ecdsa-p256:...`), or the name of one of your keys (`cairn key list`).
#[derive(Clone, Debug)]
pub struct KeyRef(String);

impl std::str::FromStr for KeyRef {
    type Err = std::convert::Infallible;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Ok(KeyRef(text.trim().to_owned()))
    }
}

impl KeyRef {
    /// The public key: given, or of the local key of that name.
    fn public_key(&self) -> anyhow::Result<PublicKey> {
        if let Ok(key) = self.0.parse::<PublicKey>() {
            return Ok(key);
        }
        if self.0.starts_with("sha256:") {
            bail!(
                "{} is a key id; granting needs the public key (`ecdsa-p256:...`, which \
                 `cairn key info` prints) or the name of one of your keys",
                self.0
            );
        }
        self.local()
    }

    /// The key id: given, of the public key given, or of the local key of that name.
    fn key_id(&self) -> anyhow::Result<KeyId> {
        if let Ok(id) = self.0.parse::<KeyId>() {
            return Ok(id);
        }
        if let Ok(key) = self.0.parse::<PublicKey>() {
            return Ok(key.fingerprint());
        }
        Ok(self.local()?.fingerprint())
    }

    fn local(&self) -> anyhow::Result<PublicKey> {
        let known = crate::settings::key_names().unwrap_or_default();
        if !known.contains(&self.0) {
            bail!(
                "`{}` is neither a key id (`sha256:...`), a public key (`ecdsa-p256:...`), nor \
                 the name of one of your keys ({})",
                self.0,
                if known.is_empty() {
                    "you have none".to_owned()
                } else {
                    known.join(", ")
                }
            );
        }
        Ok(crate::settings::load_key(&self.0)?.public_key().clone())
    }
}

fn permissions_or_all(permissions: Vec<PackagePermission>) -> Vec<PackagePermission> {
    if permissions.is_empty() {
        PackagePermission::ALL.to_vec()
    } else {
        permissions
    }
}

impl PublishCommand {
    pub fn run(self) -> anyhow::Result<()> {
        let (common, entries, what, transfer) = match self {
            PublishCommand::Init(c) => (
                c.common,
                vec![PublishEntry::Init],
                "initialised".to_owned(),
                None,
            ),
            PublishCommand::Release(c) => {
                let content = read(&c.file)?;
                let what = format!("released {}", c.version);
                (
                    c.common,
                    vec![PublishEntry::Release {
                        version: c.version,
                        content,
                    }],
                    what,
                    Some(c.transfer),
                )
            }
            PublishCommand::Yank(c) => {
                let what = format!("yanked {}", c.version);
                (
                    c.common,
                    vec![PublishEntry::Yank { version: c.version }],
                    what,
                    None,
                )
            }
            PublishCommand::Grant(c) => {
                let permissions = permissions_or_all(c.permissions);
                let key = c.public_key.public_key()?;
                let what = format!("granted {} to {}", list(&permissions), key.fingerprint());
                (
                    c.common,
                    vec![PublishEntry::Grant { key, permissions }],
                    what,
                    None,
                )
            }
            PublishCommand::Revoke(c) => {
                let permissions = permissions_or_all(c.permissions);
                let key_id = c.key_id.key_id()?;
                let what = format!("revoked {} from {key_id}", list(&permissions));
                (
                    c.common,
                    vec![PublishEntry::Revoke {
                        key_id,
                        permissions,
                    }],
                    what,
                    None,
                )
            }
            PublishCommand::Record(c) => {
                let mut entries = Vec::new();
                if c.init {
                    entries.push(PublishEntry::Init);
                }
                for release in &c.releases {
                    let (version, file) = release.split_once('=').with_context(|| {
                        format!("--release takes VERSION=FILE, not {release:?}")
                    })?;
                    let version: Version = version
                        .parse()
                        .with_context(|| format!("invalid version {version:?}"))?;
                    entries.push(PublishEntry::Release {
                        version,
                        content: read(&PathBuf::from(file))?,
                    });
                }
                for version in c.yanks {
                    entries.push(PublishEntry::Yank { version });
                }
                let what = format!("published a record of {} entries", entries.len());
                (c.common, entries, what, Some(c.transfer))
            }
        };
        let key = common.key.load()?;
        let mut client = common
            .client
            .open_moving(Some(&common.package), transfer.as_ref())?;
        let package = common.package.clone();
        let published: Published = runtime()?.block_on(client.publish(&package, &key, entries))?;
        let report = Report {
            package: package.to_string(),
            record_id: published.record_id.to_string(),
            registry_index: published.registry_index,
            bytes_uploaded: published.bytes_uploaded,
            blobs_skipped: published.blobs_skipped,
        };
        if common.client.json {
            return output::print_json(&report);
        }
        crate::outln!(
            "{what} in `{package}`: record {} at registry index {}",
            report.record_id,
            report.registry_index
        );
        if report.bytes_uploaded > 0 || report.blobs_skipped > 0 {
            crate::outln!(
                "uploaded {}; {} already on the registry",
                output::size(report.bytes_uploaded),
                output::count(report.blobs_skipped as usize, "blob")
            );
        }
        Ok(())
    }
}

fn list(permissions: &[PackagePermission]) -> String {
    permissions
        .iter()
        .map(|p| p.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}
