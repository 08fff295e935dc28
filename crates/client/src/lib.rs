//! cairn's verifying client for warg v1 registries (cairn, and the reference `warg-server`).
//!
//! Every byte the client accepts is checked against something signed, as warg-v1 section
//! 4.5 describes and beyond it:
//!
//! * [`Client::update`] fetches the latest checkpoint and the new records of the operator log
//!   and of every followed package; validates each record (signature, chain, permissions,
//!   timestamps); verifies the checkpoint's signature with a key that holds `commit` in the
//!   operator log; proves every log head's inclusion in the registry log and in the map; and
//!   proves the new checkpoint consistent with the last one trusted (never shorter, never the
//!   same length with other roots). Only then is the new state saved.
//! * [`Client::publish`] signs a package record, posts it, uploads the content it needs (only
//!   the blobs the registry lacks when it speaks cairn's split extension), waits until the
//!   record is published or rejected, and updates the package.
//! * [`Client::fetch`] resolves a semver requirement to the highest release that is not
//!   yanked and downloads its content: from a split-aware registry, only the blobs missing
//!   from the local [`FragmentCache`], in parallel and each verified, then joined; otherwise
//!   the whole file. Either way the file's SHA-256 must be the one the release signs.
//!
//! A failure returns a [`ClientError`]; an attack is a [`SecurityError`] inside it, and
//! leaves the trusted state, in memory and on disk, exactly as it was.
//!
//! The client trusts the operator log it sees on its first update (trust on first use);
//! from then on the registry can only extend that history.
//!
//! Storage directory layout: `trust.json` (the [`TrustState`], see [`state`]) and
//! `fragments/sha256/<hex>` (the fragment cache). One directory per registry.

#![forbid(unsafe_code)]

mod cache;
mod error;
mod fetch;
mod http;
mod patch_bases;
mod progress;
mod publish;
mod referrers;
pub mod registry_url;
pub mod state;
mod update;

use std::path::PathBuf;
use std::time::Duration;

pub use cache::FragmentCache;
pub use error::{ClientError, SecurityError};
pub use fetch::{DownloadStats, Fetched, Yanked};
pub use http::Limits;
pub use progress::{Progress, ProgressSink, Transfer};
pub use publish::{PublishEntry, Published};
pub use referrers::{Referrer, ReleaseReferrers};
pub use registry_url::RegistryUrl;
pub use state::STATE_FILE;
pub use state::{LoggedRecord, PackageLog, TrustState, VerifiedLog};
pub use update::UpdateSummary;

use http::Http;
use state::StateStore;

/// How to reach a registry and where to keep what the client trusts.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// The registry's URL (`http://127.0.0.1:8090`); requests go to paths under it.
    pub registry_url: String,
    /// Where the trusted state and the fragment cache live.
    pub storage_dir: PathBuf,
    /// Response size limits.
    pub limits: Limits,
    /// How many blobs are downloaded or uploaded at once.
    pub concurrency: usize,
    /// How often a published record's state is polled.
    pub poll_interval: Duration,
    /// How long to wait for a record to be published.
    pub publish_timeout: Duration,
    /// Refuse checkpoints older than this (a freeze defence); `None` accepts any age.
    pub max_checkpoint_age: Option<Duration>,
    /// Where upload and download progress is reported (off by default).
    pub progress: ProgressSink,
    /// The publisher token sent (as `Authorization: Bearer`) with every request to the
    /// registry, as `warg login` does; a registry that requires one refuses publishes
    /// without it.
    pub auth_token: Option<AuthToken>,
    /// Certificates (PEM) trusted as roots for HTTPS beside the system's (`--ca-cert`): a
    /// registry behind a proxy whose certificate your own CA signed.
    pub ca_certificates: Vec<Vec<u8>>,
}

/// A registry token; it never prints.
#[derive(Clone, PartialEq, Eq)]
pub struct AuthToken(pub String);

impl std::fmt::Debug for AuthToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AuthToken(<redacted>)")
    }
}

impl ClientConfig {
    /// How many blobs move at once unless configured.
    pub const DEFAULT_CONCURRENCY: usize = 8;

    /// The defaults for the registry at `registry_url`, storing in `storage_dir`: 8 transfers
    /// at once, polling every 250 ms for up to 2 minutes, no maximum checkpoint age.
    pub fn new(registry_url: impl Into<String>, storage_dir: impl Into<PathBuf>) -> Self {
        ClientConfig {
            registry_url: registry_url.into(),
            storage_dir: storage_dir.into(),
            limits: Limits::default(),
            concurrency: Self::DEFAULT_CONCURRENCY,
            poll_interval: Duration::from_millis(250),
            publish_timeout: Duration::from_secs(120),
            max_checkpoint_age: None,
            progress: ProgressSink::default(),
            auth_token: None,
            ca_certificates: Vec::new(),
        }
    }
}

/// A verifying client of one registry, with its trusted state and fragment cache.
#[derive(Debug)]
pub struct Client {
    config: ClientConfig,
    http: Http,
    store: StateStore,
    state: TrustState,
    cache: FragmentCache,
}

impl Client {
    /// Opens the storage directory (creating it), loading and re-verifying the trusted state
    /// saved there. Nothing is fetched.
    pub fn open(config: ClientConfig) -> Result<Client, ClientError> {
        let http = Http::new(&config.registry_url, config.limits, &config.ca_certificates)?
            .with_token(config.auth_token.clone());
        std::fs::create_dir_all(&config.storage_dir)
            .map_err(ClientError::io("create", &config.storage_dir))?;
        let store = StateStore::new(&config.storage_dir, http.base().as_str());
        let state = store.load()?;
        let cache = FragmentCache::new(config.storage_dir.join("fragments"));
        Ok(Client {
            config,
            http,
            store,
            state,
            cache,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &ClientConfig {
        &self.config
    }

    /// What the client trusts now.
    pub fn trusted(&self) -> &TrustState {
        &self.state
    }

    /// The file holding the trusted state.
    pub fn state_file(&self) -> &std::path::Path {
        self.store.path()
    }

    /// The fragment cache.
    pub fn cache(&self) -> &FragmentCache {
        &self.cache
    }
}
