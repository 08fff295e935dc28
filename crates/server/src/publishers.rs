//! Publisher accounts as the server uses them: the tokens that name them, the signing keys
//! the registry keeps for them, and the short-lived scoped tokens of the OCI token flow.
//!
//! * An account's token is `cairn_pub_` and 43 characters of base64url (32 random bytes). The
//!   store keeps only its SHA-256; it is printed once, when the account is made.
//! * Its signing key is `DATA/publishers/NAME.key` (mode 0600, like the operator key). The
//!   registry signs the warg records of the account's OCI pushes with it, and with nothing
//!   else: a package accepts them only if its log grants that key.
//! * A scoped token, from `GET /v2/token`, is a JSON Web Token signed with HS256 (RFC 7519,
//!   so that clients can read its expiry): its claims name the account (`sub`), its expiry
//!   (`exp`) and the repositories it may push to (`push`); the key is `DATA/token.key` (32
//!   random bytes, mode 0600, made at first start). It is checked against the account at
//!   every use, so revoking the account revokes it.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use cairn_protocol::PrivateKey;
use cairn_store::{NewPublisher, Publisher, PublisherAccounts, PublisherScope, StoreError};
use hmac::{Hmac, Mac as _};
use sha2::{Digest as _, Sha256};

/// The folder of the data directory holding the accounts' signing keys.
pub const PUBLISHERS_DIR: &str = "publishers";
/// The file holding the key of scoped tokens.
pub const TOKEN_KEY_FILE: &str = "token.key";
/// How every account token starts.
pub const TOKEN_PREFIX: &str = "cairn_pub_";
/// The header of every scoped token, base64url: `{"alg":"HS256","typ":"JWT"}`.
const JWT_HEADER: &str = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9";
/// How long a scoped token is worth pushes, in seconds.
pub const SCOPED_LIFETIME: u64 = 3600;

/// Why an account could not be made or used.
#[derive(Debug, thiserror::Error)]
pub enum PublisherError {
    /// The name cannot be an account's.
    #[error("`{0}` cannot name a publisher account: use 1 to 64 lowercase letters, digits, `-` or `_`, starting with a letter or digit")]
    BadName(String),
    /// No scope was given.
    #[error("a publisher account needs at least one --namespace or --package to publish to")]
    NoScope,
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A key file could not be read or written.
    #[error("{what} {path}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// Why it failed.
        source: std::io::Error,
    },
    /// A key file does not hold the account's key.
    #[error("the signing key of publisher `{0}` in {1} is not the account's (its public key differs); restore the file or make a new account")]
    WrongKey(String, PathBuf),
    /// Randomness was not available.
    #[error("the operating system gave no random bytes: {0}")]
    Random(String),
}

fn random_bytes() -> Result<[u8; 32], PublisherError> {
    let mut bytes = [0u8; 32];
    getrandom::getrandom(&mut bytes).map_err(|e| PublisherError::Random(e.to_string()))?;
    Ok(bytes)
}

/// The SHA-256 of `token`, in lowercase hex: what the store keeps.
pub fn token_sha256(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Whether `name` can be an account's name (it names a file, so it is strict).
pub fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
        && name
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphanumeric())
}

/// The key file of account `name`.
pub fn key_path(data_dir: &Path, name: &str) -> PathBuf {
    data_dir.join(PUBLISHERS_DIR).join(format!("{name}.key"))
}

/// An account just made: its token, shown once.
#[derive(Debug)]
pub struct CreatedPublisher {
    /// The account.
    pub publisher: Publisher,
    /// Its token.
    pub token: String,
}

/// Makes account `name` in the registry at `data_dir`: its signing key file, then its row.
pub async fn create(
    data_dir: &Path,
    store: &dyn PublisherAccounts,
    name: &str,
    scopes: &[PublisherScope],
) -> Result<CreatedPublisher, PublisherError> {
    if !valid_name(name) {
        return Err(PublisherError::BadName(name.to_owned()));
    }
    if scopes.is_empty() {
        return Err(PublisherError::NoScope);
    }
    if store.publisher(name).await?.is_some() {
        return Err(StoreError::PublisherExists(name.to_owned()).into());
    }
    let token = format!(
        "{TOKEN_PREFIX}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(random_bytes()?)
    );
    let key = PrivateKey::generate().map_err(|e| PublisherError::Random(e.to_string()))?;
    let path = key_path(data_dir, name);
    let io = |what| {
        move |source| PublisherError::Io {
            what,
            path: key_path(data_dir, name),
            source,
        }
    };
    std::fs::create_dir_all(data_dir.join(PUBLISHERS_DIR))
        .map_err(io("cannot create the folder of"))?;
    // A key file left by an account whose row was never written is replaced.
    match std::fs::remove_file(&path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            return Err(io("cannot replace")(e));
        }
        _ => {}
    }
    crate::write_secret(&path, &key.to_secret_text()).map_err(io("cannot write"))?;
    let scopes = {
        let mut scopes = scopes.to_vec();
        scopes.sort();
        scopes.dedup();
        scopes
    };
    let created = unix_now() as i64;
    let public_key = key.public_key().to_string();
    store
        .add_publisher(&NewPublisher {
            name,
            token_sha256: &token_sha256(&token),
            public_key: &public_key,
            scopes: &scopes,
            created,
        })
        .await?;
    Ok(CreatedPublisher {
        publisher: Publisher {
            name: name.to_owned(),
            public_key,
            scopes,
            created,
            revoked: None,
        },
        token,
    })
}

/// The scopes of `publisher` for a message: `` `a`, `b:c` ``.
pub fn describe_scopes(publisher: &Publisher) -> String {
    let scopes: Vec<String> = publisher
        .scopes
        .iter()
        .map(|scope| format!("`{scope}`"))
        .collect();
    scopes.join(", ")
}

pub(crate) fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs()
}

/// The accounts of a running registry, with the keys read so far.
pub struct Accounts {
    store: Arc<dyn PublisherAccounts>,
    data_dir: PathBuf,
    keys: Mutex<HashMap<String, PrivateKey>>,
    token_key: [u8; 32],
}

/// What a scoped token says.
#[derive(serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Claims {
    /// The account.
    sub: String,
    /// Expiry, Unix seconds.
    exp: u64,
    /// Repositories (`ns/name`) it may push to.
    push: Vec<String>,
}

impl Accounts {
    /// Opens the accounts of the registry at `data_dir`, making its token key if needed.
    pub async fn open(
        data_dir: &Path,
        store: Arc<dyn PublisherAccounts>,
    ) -> Result<Self, PublisherError> {
        let path = data_dir.join(TOKEN_KEY_FILE);
        let io = |what| {
            let path = path.clone();
            move |source| PublisherError::Io { what, path, source }
        };
        let token_key = match std::fs::read_to_string(&path) {
            Ok(text) => hex::decode(text.trim())
                .ok()
                .and_then(|bytes| <[u8; 32]>::try_from(bytes).ok())
                .ok_or_else(|| {
                    io("cannot read")(std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        "not 64 hex digits",
                    ))
                })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let key = random_bytes()?;
                crate::write_secret(&path, &hex::encode(key)).map_err(io("cannot write"))?;
                key
            }
            Err(e) => return Err(io("cannot read")(e)),
        };
        Ok(Accounts {
            store,
            data_dir: data_dir.to_owned(),
            keys: Mutex::default(),
            token_key,
        })
    }

    /// The account store.
    pub fn store(&self) -> &dyn PublisherAccounts {
        &*self.store
    }

    /// The active account whose token is `token`.
    pub async fn by_token(&self, token: &str) -> Result<Option<Publisher>, StoreError> {
        if !token.starts_with(TOKEN_PREFIX) {
            return Ok(None);
        }
        self.store.publisher_by_token(&token_sha256(token)).await
    }

    /// The signing key the registry keeps for `publisher`.
    pub fn signing_key(&self, publisher: &Publisher) -> Result<PrivateKey, PublisherError> {
        if let Some(key) = self
            .keys
            .lock()
            .expect("keys poisoned")
            .get(&publisher.name)
        {
            return Ok(key.clone());
        }
        let path = key_path(&self.data_dir, &publisher.name);
        let text = std::fs::read_to_string(&path).map_err(|source| PublisherError::Io {
            what: "cannot read the publisher key",
            path: path.clone(),
            source,
        })?;
        let key: PrivateKey = text
            .trim()
            .parse()
            .map_err(|_| PublisherError::WrongKey(publisher.name.clone(), path.clone()))?;
        if key.public_key().to_string() != publisher.public_key {
            return Err(PublisherError::WrongKey(publisher.name.clone(), path));
        }
        self.keys
            .lock()
            .expect("keys poisoned")
            .insert(publisher.name.clone(), key.clone());
        Ok(key)
    }

    fn mac(&self, claims: &str) -> Hmac<Sha256> {
        let mut mac =
            Hmac::<Sha256>::new_from_slice(&self.token_key).expect("HMAC takes keys of any length");
        mac.update(claims.as_bytes());
        mac
    }

    /// A scoped token for `publisher`, worth pushes to `repositories` until `expiry`.
    pub fn issue(&self, publisher: &Publisher, repositories: Vec<String>, expiry: u64) -> String {
        let claims = Claims {
            sub: publisher.name.clone(),
            exp: expiry,
            push: repositories,
        };
        let claims = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(serde_json::to_vec(&claims).expect("claims serialize"));
        let signed = format!("{JWT_HEADER}.{claims}");
        let mac = self.mac(&signed).finalize().into_bytes();
        format!(
            "{signed}.{}",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(mac)
        )
    }

    /// The account and repositories of a scoped token this registry issued, if it has not
    /// expired at `now` and its account is still active.
    pub async fn scoped(
        &self,
        token: &str,
        now: u64,
    ) -> Result<Option<(Publisher, Vec<String>)>, StoreError> {
        let Some((signed, mac)) = token.rsplit_once('.') else {
            return Ok(None);
        };
        let Some(claims_text) = signed
            .strip_prefix(JWT_HEADER)
            .and_then(|rest| rest.strip_prefix('.'))
        else {
            return Ok(None);
        };
        let Ok(mac) = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(mac) else {
            return Ok(None);
        };
        // `verify_slice` compares in constant time.
        if self.mac(signed).verify_slice(&mac).is_err() {
            return Ok(None);
        }
        let Some(claims) = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(claims_text)
            .ok()
            .and_then(|bytes| serde_json::from_slice::<Claims>(&bytes).ok())
        else {
            return Ok(None);
        };
        if claims.exp <= now {
            return Ok(None);
        }
        let publisher = self.store.publisher(&claims.sub).await?;
        Ok(publisher
            .filter(|p| p.revoked.is_none())
            .map(|p| (p, claims.push)))
    }
}
