//! What the client commands share: choosing the registry, opening the client's storage for
//! it, loading the signing key.

use std::path::PathBuf;

use anyhow::Context;
use cairn_client::{Client, ClientConfig, RegistryUrl};
use cairn_protocol::{PackageName, PrivateKey};
use clap::Args;

use crate::settings::{self, ClientSettings};

/// The registry a command is about: every command that keeps state per registry.
#[derive(Args, Clone)]
pub struct RegistryArg {
    /// The registry URL (default: from `cairn config`).
    #[arg(long, env = "CAIRN_REGISTRY", value_name = "URL")]
    pub registry: Option<String>,
}

/// Options of the commands that talk to a registry.
#[derive(Args, Clone)]
pub struct ClientArgs {
    #[command(flatten)]
    pub registry: RegistryArg,
    /// Print JSON for scripts.
    #[arg(long)]
    pub json: bool,
    /// Refuse a checkpoint older than this (`90s`, `10m`, `24h`): a registry that keeps
    /// serving an old checkpoint may be hiding newer releases or revocations. Off by default.
    #[arg(
        long,
        env = "CAIRN_MAX_CHECKPOINT_AGE",
        value_name = "AGE",
        value_parser = crate::commands::serve::parse_duration
    )]
    pub max_checkpoint_age: Option<std::time::Duration>,
    /// Trust this CA certificate (PEM) for the registry's HTTPS, beside the system's roots
    /// (which `SSL_CERT_FILE` replaces): for a registry behind a proxy with a certificate
    /// signed by your own CA.
    #[arg(long, env = "CAIRN_CA_CERT", value_name = "FILE")]
    pub ca_cert: Option<PathBuf>,
}

/// The option of the commands that move content.
#[derive(Args, Clone)]
pub struct TransferArg {
    /// Fragments downloaded or uploaded at once.
    #[arg(long, default_value_t = ClientConfig::DEFAULT_CONCURRENCY, value_name = "N")]
    pub concurrency: usize,
}

/// The signing key option of the publishing commands.
#[derive(Args, Clone)]
pub struct KeyArg {
    /// The name of the signing key (`cairn key new`); `CAIRN_KEY` overrides it.
    #[arg(long = "key", default_value = "default", value_name = "NAME")]
    pub key: String,
}

impl KeyArg {
    pub fn load(&self) -> anyhow::Result<PrivateKey> {
        settings::load_key(&self.key)
    }
}

impl RegistryArg {
    /// The registry for `package` (or the default one).
    pub fn url(&self, package: Option<&PackageName>) -> anyhow::Result<RegistryUrl> {
        let text = match &self.registry {
            Some(url) => url.clone(),
            None => ClientSettings::load()?.registry_for(package.map(|p| p.namespace()))?,
        };
        Ok(text.parse()?)
    }

    /// Opens what the client trusts about the registry, without talking to it.
    pub fn open_offline(&self) -> anyhow::Result<Client> {
        let url = self.url(None)?;
        let config = ClientConfig::new(url.to_string(), storage_dir(&url)?);
        Client::open(config).with_context(|| format!("cannot open the client state for {url}"))
    }
}

impl ClientArgs {
    /// Opens the client for `package`'s registry; its trusted state lives in the XDG data
    /// folder, one directory per registry.
    pub fn open(&self, package: Option<&PackageName>) -> anyhow::Result<Client> {
        self.open_moving(package, None)
    }

    /// Opens the client for a command that moves content, `transfer.concurrency` fragments
    /// at once.
    pub fn open_moving(
        &self,
        package: Option<&PackageName>,
        transfer: Option<&TransferArg>,
    ) -> anyhow::Result<Client> {
        let url = self.registry.url(package)?;
        let mut config = ClientConfig::new(url.to_string(), storage_dir(&url)?);
        if let Some(transfer) = transfer {
            config.concurrency = transfer.concurrency.max(1);
        }
        config.max_checkpoint_age = self.max_checkpoint_age;
        config.auth_token = settings::token_for(&url.to_string())?.map(cairn_client::AuthToken);
        if let Some(path) = &self.ca_cert {
            let pem = std::fs::read(path)
                .with_context(|| format!("cannot read the CA certificate {}", path.display()))?;
            config.ca_certificates.push(pem);
        }
        if !self.json && std::io::IsTerminal::is_terminal(&std::io::stderr()) {
            let progress = std::sync::Arc::new(crate::progress::TerminalProgress::default());
            config.progress = cairn_client::ProgressSink::new(progress);
        }
        Client::open(config).with_context(|| format!("cannot open the client state for {url}"))
    }
}

/// `<data dir>/registries/<scheme>_<host>_<port>[_<path>]`: the trusted state and fragment
/// cache of the registry at `url`.
///
/// Earlier versions named the folder without the scheme (so `http://` and `https://` of one
/// host shared it); such a folder is renamed when the state in it is this registry's.
pub fn storage_dir(url: &RegistryUrl) -> anyhow::Result<PathBuf> {
    let registries = settings::data_dir()?.join("registries");
    let dir = registries.join(url.storage_name());
    if !dir.exists() {
        let text = url.to_string();
        let legacy = registries.join(legacy_storage_name(&text));
        if legacy_state_is(&legacy, &text) {
            std::fs::rename(&legacy, &dir).with_context(|| {
                format!("cannot rename {} to {}", legacy.display(), dir.display())
            })?;
        }
    }
    Ok(dir)
}

/// The folder name earlier versions used: the URL without its scheme.
fn legacy_storage_name(url: &str) -> String {
    cairn_client::registry_url::file_name_of(
        url.trim_start_matches("https://")
            .trim_start_matches("http://"),
    )
}

/// Whether `dir` holds the trusted state of the registry at `url`.
fn legacy_state_is(dir: &std::path::Path, url: &str) -> bool {
    #[derive(serde::Deserialize)]
    struct Registry {
        registry: String,
    }
    std::fs::read(dir.join(cairn_client::STATE_FILE))
        .ok()
        .and_then(|bytes| serde_json::from_slice::<Registry>(&bytes).ok())
        .is_some_and(|state| state.registry.trim_end_matches('/') == url)
}

/// A runtime for one command.
pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}
