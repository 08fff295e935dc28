//! The user's client settings and signing keys, in the XDG config folder
//! (`$XDG_CONFIG_HOME/cairn`, by default `~/.config/cairn`):
//!
//! * `config.json`: the default registry URL and per-namespace registries;
//! * `keys/<name>.key`: signing keys, one `ecdsa-p256:...` secret per file, mode 0600.
//!
//! `CAIRN_CONFIG_DIR` moves the folder; `CAIRN_KEY` supplies a key (its secret text) without
//! any file, for CI jobs.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use cairn_protocol::PrivateKey;
use serde::{Deserialize, Serialize};

/// The XDG base folders (on every platform, as command-line tools keep them), from `etcetera`.
fn base_dirs() -> anyhow::Result<etcetera::base_strategy::Xdg> {
    etcetera::base_strategy::Xdg::new()
        .context("cannot find your home folder: set HOME (or XDG_CONFIG_HOME and XDG_DATA_HOME)")
}

/// The folder holding `config.json` and `keys/`.
pub fn config_dir() -> anyhow::Result<PathBuf> {
    use etcetera::BaseStrategy as _;
    if let Some(dir) = std::env::var_os("CAIRN_CONFIG_DIR") {
        return Ok(PathBuf::from(dir));
    }
    Ok(base_dirs()?.config_dir().join("cairn"))
}

/// The folder for the client's trusted state and fragment cache (`$XDG_DATA_HOME/cairn`).
pub fn data_dir() -> anyhow::Result<PathBuf> {
    use etcetera::BaseStrategy as _;
    if let Some(dir) = std::env::var_os("CAIRN_DATA_DIR") {
        return Ok(PathBuf::from(dir));
    }
    Ok(base_dirs()?.data_dir().join("cairn"))
}

/// `config.json`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ClientSettings {
    /// The registry used when a namespace has none of its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registry: Option<String>,
    /// Registries by namespace.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub namespaces: BTreeMap<String, String>,
}

impl ClientSettings {
    fn path() -> anyhow::Result<PathBuf> {
        Ok(config_dir()?.join("config.json"))
    }

    /// Reads the settings (empty if there is no file yet).
    pub fn load() -> anyhow::Result<Self> {
        let path = Self::path()?;
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .with_context(|| format!("{} is not valid", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
        }
    }

    /// Writes the settings.
    pub fn save(&self) -> anyhow::Result<PathBuf> {
        let path = Self::path()?;
        std::fs::create_dir_all(path.parent().expect("a file in a folder"))?;
        let json = serde_json::to_string_pretty(self)?;
        crate::destination::write_atomically(&path, json.as_bytes())?;
        Ok(path)
    }

    /// The registry for a package of `namespace`: its own, else the default.
    pub fn registry_for(&self, namespace: Option<&str>) -> anyhow::Result<String> {
        if let Some(url) = namespace.and_then(|ns| self.namespaces.get(ns)) {
            return Ok(url.clone());
        }
        self.registry.clone().context(
            "no registry configured: run `cairn config --registry URL` (or pass --registry)",
        )
    }
}

/// Checks a key name: letters, digits, `-` and `_`.
fn key_path(name: &str) -> anyhow::Result<PathBuf> {
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        bail!("invalid key name {name:?} (use letters, digits, `-` and `_`)");
    }
    Ok(config_dir()?.join("keys").join(format!("{name}.key")))
}

/// Stores a new key under `name`, refusing to overwrite one.
pub fn save_key(name: &str, key: &PrivateKey) -> anyhow::Result<PathBuf> {
    let path = key_path(name)?;
    std::fs::create_dir_all(path.parent().expect("a file in a folder"))?;
    if path.exists() {
        bail!("a key named {name:?} exists already ({})", path.display());
    }
    cairn_server::write_secret(&path, &key.to_secret_text())
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(path)
}

/// The key named `name`, or the one in `CAIRN_KEY` if that is set.
pub fn load_key(name: &str) -> anyhow::Result<PrivateKey> {
    if let Ok(text) = std::env::var("CAIRN_KEY") {
        return text
            .trim()
            .parse()
            .context("CAIRN_KEY does not hold a valid `ecdsa-p256:` private key");
    }
    let path = key_path(name)?;
    let text = std::fs::read_to_string(&path).with_context(|| {
        format!("no key named {name:?}: create one with `cairn key new --name {name}`")
    })?;
    if !is_private(&path) {
        eprintln!(
            "warning: {} can be read by other users; run `chmod 600` on it",
            path.display()
        );
    }
    text.trim()
        .parse()
        .with_context(|| format!("{} does not hold a valid key", path.display()))
}

/// The names of the stored keys.
pub fn key_names() -> anyhow::Result<Vec<String>> {
    let dir = config_dir()?.join("keys");
    let mut names = Vec::new();
    let entries = match std::fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(names),
        Err(e) => return Err(e).with_context(|| format!("cannot list {}", dir.display())),
    };
    for entry in entries {
        let path = entry?.path();
        if let Some(name) = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(".key"))
        {
            names.push(name.to_owned());
        }
    }
    names.sort();
    Ok(names)
}

/// Whether `path` is readable by its owner only.
pub fn is_private(path: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::metadata(path).is_ok_and(|m| m.permissions().mode() & 0o077 == 0)
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        true
    }
}

/// `tokens.json`: publisher tokens by registry URL (mode 0600), as `cairn login` keeps them.
fn tokens_path() -> anyhow::Result<PathBuf> {
    Ok(config_dir()?.join("tokens.json"))
}

fn load_tokens() -> anyhow::Result<BTreeMap<String, String>> {
    let path = tokens_path()?;
    match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .with_context(|| format!("{} is not valid", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(BTreeMap::new()),
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

fn save_tokens(tokens: &BTreeMap<String, String>) -> anyhow::Result<PathBuf> {
    let path = tokens_path()?;
    let dir = path.parent().expect("a file in a folder");
    std::fs::create_dir_all(dir)?;
    let json = serde_json::to_string_pretty(tokens)?;
    write_secret_atomically(&path, json.as_bytes())
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(path)
}

/// The publisher token for the registry at `url`: `CAIRN_TOKEN`, else the one `cairn login`
/// saved for it.
pub fn token_for(url: &str) -> anyhow::Result<Option<String>> {
    if let Some(token) = std::env::var("CAIRN_TOKEN").ok().filter(|t| !t.is_empty()) {
        return Ok(Some(token));
    }
    Ok(load_tokens()?.get(url.trim_end_matches('/')).cloned())
}

/// Saves (or with `None`, forgets) the token for the registry at `url`.
pub fn set_token(url: &str, token: Option<&str>) -> anyhow::Result<PathBuf> {
    let mut tokens = load_tokens()?;
    let url = url.trim_end_matches('/').to_owned();
    match token {
        Some(token) => tokens.insert(url, token.to_owned()),
        None => tokens.remove(&url),
    };
    save_tokens(&tokens)
}

/// Writes `bytes` to `path` atomically as a secret: readable by its owner only (mode 0600).
fn write_secret_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut options = atomic_write_file::AtomicWriteFile::options();
    #[cfg(unix)]
    {
        use atomic_write_file::unix::OpenOptionsExt as _;
        use std::os::unix::fs::OpenOptionsExt as _;
        options.preserve_mode(false).mode(0o600);
    }
    let mut file = options.open(path)?;
    std::io::Write::write_all(&mut file, bytes)?;
    file.commit()
}
