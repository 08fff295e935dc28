//! cairn's registry server: the warg v1 API over a durable store, content stored split, and
//! the sequencer that turns accepted records into log entries and signed checkpoints.
//!
//! [`Registry::open`] opens (or creates) a data directory: the SQLite database, the content
//! store (a blob directory, or a repository of an OCI registry; see
//! [`Registry::open_with_content`]) and the operator key. On first start it creates the operator key (mode 0600)
//! and the operator log; namespaces named in the settings and not yet defined are defined by
//! new operator records. [`Registry::serve`] runs the HTTP server and the sequencer until
//! the shutdown signal, then stops gracefully.

#![deny(unsafe_code)]

pub mod api;
pub mod app;
pub mod audit;
pub mod blob_routes;
pub mod connections;
pub mod content;
mod error;
pub mod front;
pub mod key_rotation;
pub mod metrics;
pub mod node;
pub mod oci;
pub mod operations;
pub mod patches;
pub mod publishers;
pub mod record_events;
mod release;
pub mod sequencer;
pub mod state;
pub mod upload;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use cairn_protocol::{
    Envelope, HashAlgorithm, LogId, Namespace, OperatorEntry, OperatorEnvelope, PrivateKey, Record,
    Timestamp,
};
use cairn_store::{
    BlobStore, ContentLocation, ContentLocationError, Database, InsertOutcome, NewRecord,
    RecordStatus, Store,
};
use tokio::sync::{watch, Notify};

pub use app::{ApiSettings, AppState, AppStateParts};
pub use error::ApiError;
pub use front::{service, Front};
pub use key_rotation::NEW_OPERATOR_KEY_FILE;
pub use sequencer::Sequencer;
pub use state::{RegistryState, ReplayError};

/// The settings of a registry.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The data directory.
    pub data_dir: PathBuf,
    /// Namespaces that must be defined.
    pub namespaces: Vec<Namespace>,
    /// The shortest time between two checkpoints.
    pub checkpoint_interval: Duration,
    /// The largest content upload.
    pub max_content_size: u64,
    /// How connections are bounded.
    pub connections: connections::ConnectionLimits,
    /// How much may wait in uploads, and for how long.
    pub uploads: upload::UploadLimits,
    /// Whether every publish needs a publisher account's token (OCI pushes always do).
    pub require_publisher_token: bool,
    /// The most bytes of patches kept in `DATA/patches`.
    pub patch_cache_bytes: u64,
    /// Where the database is: `None` for the SQLite file `DATA/cairn.db`.
    pub database: Option<Database>,
}

/// Why the registry could not start or run.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// A file or directory could not be used.
    #[error("{what} {path}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The path.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The operator key file is not a key.
    #[error("the operator key in {path} is invalid: {source}")]
    BadKey {
        /// The file.
        path: PathBuf,
        /// Why.
        source: cairn_protocol::KeyError,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] cairn_store::StoreError),
    /// The content store cannot be used.
    #[error(transparent)]
    Content(#[from] ContentLocationError),
    /// The stored records and checkpoints do not hold together. (Not a `source`: the message
    /// says it already, and error reports print each source after the message.)
    #[error("the stored registry does not verify: {0}")]
    Replay(ReplayError),
    /// The sequencer stopped.
    #[error(transparent)]
    Sequencer(#[from] sequencer::SequencerError),
    /// An operator record was refused.
    #[error("operator record refused: {0}")]
    Operator(String),
}

impl From<ReplayError> for ServerError {
    fn from(error: ReplayError) -> Self {
        ServerError::Replay(error)
    }
}

/// The name of the operator key file in the data directory.
pub const OPERATOR_KEY_FILE: &str = "operator.key";
/// The name of the uploads folder in the data directory.
pub const UPLOADS_DIR: &str = "uploads";
/// The name of the patch cache folder in the data directory.
pub const PATCHES_DIR: &str = "patches";
/// How many uploads may be held in memory at once, to be validated and split.
const CONCURRENT_INGESTS: usize = 2;

/// Removes, now and then, what was uploaded for records that were not published: blobs staged
/// for records whose content was not completed in time, and content no record that uploaded
/// it can publish any more (`cairn_store`'s `claims.rs`).
async fn sweep_uploads(app: AppState) {
    let deadline = app.uploads.limits().deadline;
    let every = (deadline / 10).clamp(Duration::from_millis(100), Duration::from_secs(60));
    loop {
        let uploads = app.uploads.clone();
        let _ = tokio::task::spawn_blocking(move || uploads.sweep()).await;
        if let Err(error) = withdraw_abandoned_content(&app, deadline).await {
            tracing::warn!(%error, "cannot remove content uploaded for records that were not published");
        }
        tokio::time::sleep(every).await;
    }
}

/// Withdraws content that no record can publish any more, and deletes its blobs that no
/// other content and no OCI repository holds.
async fn withdraw_abandoned_content(app: &AppState, deadline: Duration) -> Result<(), ServerError> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let cutoff = now.saturating_sub(i64::try_from(deadline.as_secs()).unwrap_or(i64::MAX));
    let abandoned = app.store.abandoned_contents(cutoff).await?;
    if abandoned.is_empty() {
        return Ok(());
    }
    // No content is stored meanwhile: an upload must not find a blob stored that is about
    // to be deleted.
    let _all = app
        .ingests
        .acquire_many(CONCURRENT_INGESTS as u32)
        .await
        .map_err(|e| ServerError::Operator(e.to_string()))?;
    let (mut withdrawn, mut deleted) = (0, 0);
    for digest in abandoned {
        let Some(blobs) = app.store.withdraw_content(&digest, cutoff).await? else {
            continue;
        };
        withdrawn += 1;
        for blob in blobs {
            let Ok(parsed) = blob.parse::<cairn_store::BlobDigest>() else {
                continue;
            };
            if app.store.oci_blob_anywhere(&blob).await? {
                continue;
            }
            let store = app.blobs.clone();
            tokio::task::spawn_blocking(move || store.delete(&parsed))
                .await
                .map_err(|e| ServerError::Operator(e.to_string()))?
                .map_err(io_error("cannot delete a blob", Path::new(&blob)))?;
            deleted += 1;
        }
    }
    tracing::info!(
        contents = withdrawn,
        blobs = deleted,
        "removed content uploaded for records that were not published"
    );
    Ok(())
}

/// The name of the database file in the data directory.
pub const DATABASE_FILE: &str = "cairn.db";

/// An open registry.
pub struct Registry {
    store: Arc<dyn Store>,
    blobs: Arc<dyn BlobStore>,
    state: Arc<RwLock<RegistryState>>,
    operator_key: PrivateKey,
    settings: Settings,
    wake: Arc<Notify>,
    verified: Arc<state::VerifiedSignatures>,
    oci_push_token: Option<String>,
    uploads: upload::Uploads,
    accounts: Arc<publishers::Accounts>,
    rounds: Arc<watch::Sender<u64>>,
    metrics: Arc<metrics::Metrics>,
    follower: Arc<node::Follower>,
}

pub(crate) fn io_error<'a>(
    what: &'static str,
    path: &'a Path,
) -> impl FnOnce(std::io::Error) -> ServerError + 'a {
    move |source| ServerError::Io {
        what,
        path: path.to_owned(),
        source,
    }
}

/// Reads the operator key, creating it (mode 0600) if the file does not exist.
pub fn load_or_create_operator_key(path: &Path) -> Result<PrivateKey, ServerError> {
    match std::fs::read_to_string(path) {
        Ok(text) => text.trim().parse().map_err(|source| ServerError::BadKey {
            path: path.to_owned(),
            source,
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let key = PrivateKey::generate().map_err(|source| ServerError::BadKey {
                path: path.to_owned(),
                source,
            })?;
            write_secret(path, &key.to_secret_text())
                .map_err(io_error("cannot write the operator key", path))?;
            tracing::info!(path = %path.display(), key_id = %key.public_key().fingerprint(), "created the operator key");
            Ok(key)
        }
        Err(e) => Err(io_error("cannot read the operator key", path)(e)),
    }
}

/// Writes a secret file readable by its owner only.
pub fn write_secret(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write as _;
    #[cfg(unix)]
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    options.mode(0o600);
    let mut file = options.open(path)?;
    file.write_all(text.as_bytes())?;
    file.write_all(b"\n")?;
    file.sync_all()
}

impl Registry {
    /// Opens the registry in `settings.data_dir`, replays and checks its state, and queues
    /// the operator records it needs (the operator log's init, new namespaces). Content is
    /// kept where the data directory records it (`<data>/content` by default).
    pub async fn open(settings: Settings) -> Result<Self, ServerError> {
        Self::open_with_content(settings, None).await
    }

    /// Like [`Registry::open`], keeping content in `content` if given. The first start
    /// records the location in the data directory; later starts use the recorded one, and
    /// `content` naming a different store is an error
    /// ([`cairn_store::resolve_content_location`]). An OCI store must answer `GET /v2/`.
    pub async fn open_with_content(
        settings: Settings,
        content: Option<ContentLocation>,
    ) -> Result<Self, ServerError> {
        let dir = &settings.data_dir;
        std::fs::create_dir_all(dir).map_err(io_error("cannot create the data directory", dir))?;
        // Decided before the database file is created: a data directory with a database but
        // no recorded location predates the record and keeps its content in `<data>/content`.
        let registry_exists = dir.join(DATABASE_FILE).is_file();
        let content_dir = dir.clone();
        let blobs = tokio::task::spawn_blocking(move || {
            let location =
                cairn_store::resolve_content_location(&content_dir, content, registry_exists)?;
            let blobs = location.open()?;
            cairn_store::record_content_location(&content_dir, &location)?;
            Ok::<_, ContentLocationError>(blobs)
        })
        .await
        .expect("opening the content store panicked")?;
        let operator_key = load_or_create_operator_key(&dir.join(OPERATOR_KEY_FILE))?;
        let uploads_dir = dir.join(UPLOADS_DIR);
        let uploads = upload::Uploads::open(&uploads_dir, settings.uploads)
            .map_err(io_error("cannot open the uploads folder", &uploads_dir))?;
        let database = settings
            .database
            .clone()
            .unwrap_or_else(|| Database::Sqlite(dir.join(DATABASE_FILE)));
        let store = cairn_store::open(&database).await?;
        let accounts = publishers::Accounts::open(dir, store.clone())
            .await
            .map_err(|e| ServerError::Operator(e.to_string()))?;
        let (records, checkpoints) = store.committed().await?;
        let state = RegistryState::replay(&records, &checkpoints)?;
        drop(records);
        let operator_key = key_rotation::finish(dir, operator_key, &state)?;
        tracing::info!(
            log_length = state.log().len(),
            checkpoints = state
                .latest_checkpoint()
                .map(|c| c.contents.log_length)
                .unwrap_or(0),
            "replayed the stored registry"
        );
        let state = Arc::new(RwLock::new(state));
        let rounds = Arc::new(watch::channel(0).0);
        let follower = Arc::new(node::Follower::new(
            store.clone(),
            state.clone(),
            rounds.clone(),
        ));
        let registry = Registry {
            store,
            blobs,
            state,
            operator_key,
            settings,
            wake: Arc::new(Notify::new()),
            verified: Arc::default(),
            oci_push_token: None,
            uploads,
            accounts: Arc::new(accounts),
            rounds,
            metrics: Arc::default(),
            follower,
        };
        registry.queue_operator_records().await?;
        Ok(registry)
    }

    /// Enables OCI pushes to scratch repositories for clients presenting `token` (bearer, or
    /// basic with the token as password); `None` refuses every push.
    pub fn with_oci_push_token(mut self, token: Option<String>) -> Self {
        self.oci_push_token = token;
        self
    }

    /// Queues the operator records the settings call for, if they are not in the log or
    /// pending already.
    async fn queue_operator_records(&self) -> Result<(), ServerError> {
        let operator = LogId::operator_log();
        let (head, defined) = {
            let state = self.state.read().expect("state lock poisoned");
            let head = state.operator().head().map(|h| h.record_id);
            let defined: Vec<Namespace> = state.operator().namespaces().keys().cloned().collect();
            (head, defined)
        };
        let pending = self.store.pending(u32::MAX).await?;
        if pending.iter().any(|row| row.log_id == operator) {
            return Ok(());
        }
        let mut entries = Vec::new();
        if head.is_none() {
            entries.push(OperatorEntry::Init {
                hash_algorithm: HashAlgorithm::Sha256,
                key: self.operator_key.public_key().clone(),
            });
        }
        for namespace in &self.settings.namespaces {
            if !defined.contains(namespace) && !entries.iter().any(|e| matches!(e, OperatorEntry::DefineNamespace { namespace: n } if n == namespace)) {
                entries.push(OperatorEntry::DefineNamespace { namespace: namespace.clone() });
            }
        }
        let mut hosted: Vec<String> = defined.iter().map(ToString::to_string).collect();
        hosted.extend(entries.iter().filter_map(|e| match e {
            OperatorEntry::DefineNamespace { namespace } => Some(namespace.to_string()),
            _ => None,
        }));
        if hosted.is_empty() {
            tracing::warn!("this registry hosts no namespace yet: nothing can be published (`cairn serve --namespace NS` defines one)");
        } else {
            tracing::info!(namespaces = hosted.join(", "), "hosted namespaces");
        }
        if entries.is_empty() {
            return Ok(());
        }
        let record = Record {
            prev: head,
            version: 0,
            time: Timestamp::now(),
            entries,
        };
        self.queue_operator_record(Envelope::signed(record, &self.operator_key))
            .await
    }

    /// Stores an operator record as pending.
    pub async fn queue_operator_record(
        &self,
        envelope: OperatorEnvelope,
    ) -> Result<(), ServerError> {
        let outcome = self
            .store
            .insert_record(NewRecord {
                record_id: *envelope.record_id(),
                log_id: LogId::operator_log(),
                package_name: None,
                envelope: &envelope.to_protobuf(),
                missing_content: &[],
                is_init: false,
            })
            .await?;
        if let InsertOutcome::Inserted(row) = outcome {
            debug_assert_eq!(row.status, RecordStatus::Pending);
        }
        self.wake.notify_one();
        Ok(())
    }

    /// Signs checkpoints with `key` from now on (key rotation).
    pub fn set_operator_key(&mut self, key: PrivateKey) {
        self.operator_key = key;
    }

    /// Runs the sequencer until no record is pending (for offline administration and tests).
    /// When another node holds the sequencer's lease, waits for it to sequence them instead.
    pub async fn sequence_pending(&self) -> Result<(), ServerError> {
        let node = node::Node {
            sequencer: self.sequencer(),
            follower: self.follower.clone(),
        };
        let follow = |error: node::FollowError| ServerError::Operator(error.to_string());
        let Some(_lease) = self.store.sequencer_lease().await? else {
            let deadline = std::time::Instant::now() + Duration::from_secs(60);
            while self.store.pending_count().await? > 0 {
                if std::time::Instant::now() > deadline {
                    return Err(ServerError::Operator(
                        "the node holding the sequencer's lease has not sequenced the records \
                         waiting for a minute; check that it runs"
                            .into(),
                    ));
                }
                tokio::time::sleep(node::FOLLOW_INTERVAL).await;
            }
            node.follower.follow().await.map_err(follow)?;
            return Ok(());
        };
        node.follower.follow().await.map_err(follow)?;
        while node.sequencer.round().await? {}
        Ok(())
    }

    fn sequencer(&self) -> Sequencer {
        Sequencer {
            store: self.store.clone(),
            state: self.state.clone(),
            operator_key: self.operator_key.clone(),
            wake: self.wake.clone(),
            interval: self.settings.checkpoint_interval,
            verified: self.verified.clone(),
            rounds: self.rounds.clone(),
            metrics: self.metrics.clone(),
        }
    }

    /// The shared state (for tests and administration).
    pub fn state(&self) -> &Arc<RwLock<RegistryState>> {
        &self.state
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// The operator's signing key.
    pub fn operator_key(&self) -> &PrivateKey {
        &self.operator_key
    }

    /// Serves the API on `listener` until `shutdown` resolves, then finishes the requests in
    /// flight and the sequencer's round, and returns.
    pub async fn serve(
        self,
        listener: tokio::net::TcpListener,
        base_url: String,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> Result<(), ServerError> {
        let address: SocketAddr = listener
            .local_addr()
            .map_err(io_error("cannot read the listening address", Path::new("")))?;
        let settings = ApiSettings {
            registry_names: registry_names(&base_url, address),
            base_url,
            max_content_size: self.settings.max_content_size,
            require_publisher_token: self.settings.require_publisher_token,
        };
        let patches_dir = self.settings.data_dir.join(PATCHES_DIR);
        let patches = patches::Patches::open(patches_dir.clone(), self.settings.patch_cache_bytes)
            .map_err(io_error("cannot open the patch cache", &patches_dir))?;
        let app = AppState::new(AppStateParts {
            store: self.store.clone(),
            blobs: self.blobs.clone(),
            state: self.state.clone(),
            wake: self.wake.clone(),
            settings: Arc::new(settings),
            stored_content: Arc::default(),
            verified: self.verified.clone(),
            uploads: self.uploads.clone(),
            ingests: tokio::sync::Semaphore::new(CONCURRENT_INGESTS),
            accounts: self.accounts.clone(),
            rounds: self.rounds.subscribe(),
            patches: Arc::new(patches),
            gzip_turns: Arc::new(tokio::sync::Semaphore::new(content::GZIP_STREAMS)),
            metrics: self.metrics.clone(),
            follower: self.follower.clone(),
        });
        let sweeper = tokio::spawn(sweep_uploads(app.clone()));
        let (stop_tx, stop_rx) = watch::channel(false);
        // A node whose store only it writes to stops the server when its sequencer fails (its
        // store failed), so that it does not go on accepting records nothing will sequence;
        // a restart replays the store. On a shared store it follows instead (`node.rs`).
        let (failed_tx, failed_rx) = tokio::sync::oneshot::channel::<()>();
        let sequencer = {
            let node = node::Node {
                sequencer: self.sequencer(),
                follower: self.follower.clone(),
            };
            tokio::spawn(async move {
                let result = node.run(stop_rx).await;
                if result.is_err() {
                    let _ = failed_tx.send(());
                }
                result
            })
        };
        tracing::info!(%address, "serving");
        let push = oci::PushSettings::new(self.oci_push_token.clone(), &self.settings.data_dir);
        let open_files = connections::raise_open_file_limit();
        let mut limits = self.settings.connections;
        let wanted = limits.max_connections;
        limits.max_connections = connections::fitting_cap(wanted, open_files);
        if limits.max_connections < wanted {
            tracing::warn!(
                wanted,
                allowed = limits.max_connections,
                open_files,
                "the open-file limit allows fewer connections than asked for"
            );
        }
        connections::serve(
            listener,
            front::service(app, push),
            limits,
            SHUTDOWN_GRACE,
            async move {
                tokio::select! {
                    _ = shutdown => tracing::info!("shutting down"),
                    // Sent on an error, dropped unsent if the task panicked: stopped either way.
                    _ = failed_rx => tracing::error!("the sequencer stopped; shutting down"),
                }
            },
        )
        .await;
        sweeper.abort();
        let _ = stop_tx.send(true);
        let sequenced = sequencer
            .await
            .map_err(|e| ServerError::Operator(e.to_string()))?;
        self.store.close().await;
        sequenced?;
        Ok(())
    }
}

/// How long requests in flight may take to finish once the server is asked to stop.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

/// The names a `Warg-Registry` header may use for this registry: the base URL's host (with
/// and without port) and the listening address.
fn registry_names(base_url: &str, address: SocketAddr) -> Vec<String> {
    let host_port = base_url
        .split("://")
        .nth(1)
        .unwrap_or(base_url)
        .trim_end_matches('/')
        .to_ascii_lowercase();
    let host = host_port
        .rsplit_once(':')
        .map(|(h, _)| h.to_owned())
        .unwrap_or_else(|| host_port.clone());
    let mut names = vec![host_port, host, address.to_string()];
    names.sort();
    names.dedup();
    names
}
