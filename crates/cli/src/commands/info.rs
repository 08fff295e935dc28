//! `cairn info`: what the client trusts about packages.

use cairn_protocol::{PackageName, ReleaseState};
use clap::Args;
use serde::Serialize;

use super::client::{runtime, ClientArgs};
use crate::output;

/// Show what you trust about followed packages.
///
/// Versions (and which are yanked), keys and their permissions, of one followed package or of
/// all of them, from the local trusted state (run `cairn update` first for news). Each release's
/// referrers (signatures, SBOMs, attestations pushed beside it over OCI) are asked of the
/// registry; they are not in the log.
#[derive(Args)]
#[command(
    after_help = "Examples:\n  cairn info\n  cairn info example:hello\n  cairn info example:hello --offline --json"
)]
pub struct InfoCommand {
    /// The package, `namespace:name` (default: every followed package).
    package: Option<PackageName>,
    /// Do not ask the registry for referrers: show only the local trusted state.
    #[arg(long)]
    offline: bool,
    #[command(flatten)]
    client: ClientArgs,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct PackageInfo {
    name: String,
    versions: Vec<VersionInfo>,
    keys: Vec<KeyInfo>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct VersionInfo {
    version: String,
    content: Option<String>,
    yanked: bool,
    /// The digest of the release's OCI manifest, when the registry serves one.
    #[serde(skip_serializing_if = "Option::is_none")]
    manifest: Option<String>,
    /// Artifacts whose subject is that manifest (not in the log).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    referrers: Vec<ReferrerInfo>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ReferrerInfo {
    artifact_type: Option<String>,
    digest: String,
    size: u64,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct KeyInfo {
    key_id: String,
    permissions: Vec<String>,
}

impl InfoCommand {
    pub fn run(self) -> anyhow::Result<()> {
        let client = self.client.open(self.package.as_ref())?;
        let trusted = client.trusted();
        let mut packages = Vec::new();
        for package in trusted.packages() {
            if self.package.as_ref().is_some_and(|p| p != package.name()) {
                continue;
            }
            let state = package.state();
            packages.push(PackageInfo {
                name: package.name().to_string(),
                versions: state
                    .releases()
                    .values()
                    .map(|release| VersionInfo {
                        version: release.version.to_string(),
                        content: match &release.state {
                            ReleaseState::Released { content } => Some(content.to_string()),
                            ReleaseState::Yanked { .. } => None,
                        },
                        yanked: matches!(release.state, ReleaseState::Yanked { .. }),
                        manifest: None,
                        referrers: Vec::new(),
                    })
                    .collect(),
                keys: state
                    .keys()
                    .keys()
                    .map(|key_id| KeyInfo {
                        key_id: key_id.to_string(),
                        permissions: state
                            .permissions(key_id)
                            .iter()
                            .map(|p| p.to_string())
                            .collect(),
                    })
                    .collect(),
            });
        }
        if let Some(name) = &self.package {
            anyhow::ensure!(
                !packages.is_empty(),
                "`{name}` is not followed yet: `cairn fetch {name}` follows it"
            );
        }
        if !self.offline {
            let runtime = runtime()?;
            'packages: for package in &mut packages {
                let name: PackageName = package.name.parse()?;
                for version in package.versions.iter_mut().filter(|v| !v.yanked) {
                    let number = version.version.parse()?;
                    match runtime.block_on(client.referrers(&name, &number)) {
                        Ok(Some(found)) => {
                            version.manifest = Some(found.manifest);
                            version.referrers = found
                                .referrers
                                .into_iter()
                                .map(|r| ReferrerInfo {
                                    artifact_type: r.artifact_type,
                                    digest: r.digest,
                                    size: r.size,
                                })
                                .collect();
                        }
                        Ok(None) => {}
                        Err(error) => {
                            eprintln!(
                                "warning: referrers of {name} not listed: {error} \
                                 (`--offline` does not ask)"
                            );
                            continue 'packages;
                        }
                    }
                }
            }
        }
        if self.client.json {
            return output::print_json(&packages);
        }
        if let Some(checkpoint) = trusted.checkpoint() {
            crate::outln!(
                "registry {} at log length {}",
                client.config().registry_url,
                checkpoint.contents.log_length
            );
        }
        for package in &packages {
            crate::outln!("{}", package.name);
            for version in &package.versions {
                match &version.content {
                    Some(content) => crate::outln!("  {}  {content}", version.version),
                    None => crate::outln!("  {}  (yanked)", version.version),
                }
                for referrer in &version.referrers {
                    crate::outln!(
                        "    referrer {} {} ({})",
                        referrer
                            .artifact_type
                            .as_deref()
                            .unwrap_or("(no artifact type)"),
                        referrer.digest,
                        output::size(referrer.size)
                    );
                }
            }
            for key in &package.keys {
                let permissions = if key.permissions.is_empty() {
                    "none".to_owned()
                } else {
                    key.permissions.join(", ")
                };
                crate::outln!("  key {}: {permissions}", key.key_id);
            }
        }
        Ok(())
    }
}
