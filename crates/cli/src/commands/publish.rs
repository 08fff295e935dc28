//! `cairn publish`: sign and publish package records.

use std::path::PathBuf;

use anyhow::Context;
use cairn_client::{PublishEntry, Published};
use cairn_protocol::{KeyId, PackageName, PackagePermission, PublicKey};
use clap::{Args, Subcommand};
use semver::Version;
use serde::Serialize;

use super::client::{runtime, ClientArgs, KeyArg};
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
    /// The public key receiving the permissions (`ecdsa-p256:...`).
    public_key: PublicKey,
    /// A permission, `release` or `yank` (repeatable; default both).
    #[arg(long = "permission")]
    permissions: Vec<PackagePermission>,
}

#[derive(Args)]
pub struct Revoke {
    #[command(flatten)]
    common: Common,
    /// The id of the key losing the permissions (`sha256:...`).
    key_id: KeyId,
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

fn read(path: &PathBuf) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))
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
        let (common, entries, what) = match self {
            PublishCommand::Init(c) => {
                (c.common, vec![PublishEntry::Init], "initialised".to_owned())
            }
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
                )
            }
            PublishCommand::Yank(c) => {
                let what = format!("yanked {}", c.version);
                (
                    c.common,
                    vec![PublishEntry::Yank { version: c.version }],
                    what,
                )
            }
            PublishCommand::Grant(c) => {
                let permissions = permissions_or_all(c.permissions);
                let what = format!(
                    "granted {} to {}",
                    list(&permissions),
                    c.public_key.fingerprint()
                );
                (
                    c.common,
                    vec![PublishEntry::Grant {
                        key: c.public_key,
                        permissions,
                    }],
                    what,
                )
            }
            PublishCommand::Revoke(c) => {
                let permissions = permissions_or_all(c.permissions);
                let what = format!("revoked {} from {}", list(&permissions), c.key_id);
                (
                    c.common,
                    vec![PublishEntry::Revoke {
                        key_id: c.key_id,
                        permissions,
                    }],
                    what,
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
                (c.common, entries, what)
            }
        };
        let key = common.key.load()?;
        let mut client = common.client.open(Some(&common.package))?;
        let package = common.package.clone();
        let published: Published = runtime()?
            .block_on(client.publish(&package, &key, entries))
            .with_context(|| format!("cannot publish to `{package}`"))?;
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
        println!(
            "{what} in `{package}`: record {} at registry index {}",
            report.record_id, report.registry_index
        );
        if report.bytes_uploaded > 0 || report.blobs_skipped > 0 {
            println!(
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
