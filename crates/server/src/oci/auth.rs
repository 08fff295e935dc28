//! Who may push: the credentials a push presents (a publisher account's token, a scoped token
//! from `/v2/token`, or the scratch credential), the challenge that asks for them, and the
//! token endpoint.

use std::path::{Path as FsPath, PathBuf};

use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use base64::Engine as _;
use cairn_protocol::{NamespaceState, PackageName, Timestamp};
use cairn_store::{BlobDigest, Publisher};
use hmac::{Hmac, Mac as _};
use sha2::Sha256;

use super::*;

/// What the push side needs from the operator: the credential and where sessions live.
#[derive(Clone)]
pub struct PushSettings {
    pub(super) token: Option<String>,
    pub(super) uploads: PathBuf,
    pub(super) staged: PathBuf,
    pub(super) locks: SessionLocks,
}

impl PushSettings {
    /// Pushes need `token`; sessions go under `<data_dir>/content/tmp/oci-uploads`, where
    /// they survive restarts.
    pub fn new(token: Option<String>, data_dir: &FsPath) -> Self {
        PushSettings {
            token: token.filter(|t| !t.is_empty() && t != ANONYMOUS_TOKEN),
            uploads: data_dir.join("content").join("tmp").join("oci-uploads"),
            staged: data_dir.join("content").join("tmp").join("oci-staged"),
            locks: SessionLocks::default(),
        }
    }
}

impl PushSettings {
    /// Where a blob pushed to package repository `repository` waits until a manifest uses
    /// it: blobs of package repositories enter the content store only as part of a release
    /// (the layer, split) or of an accepted manifest (configs, referrers' blobs).
    pub(super) fn staged_blob(&self, repository: &str, digest: &BlobDigest) -> PathBuf {
        let digest = digest.to_string().replace(':', "-");
        self.staged.join(repository).join(digest)
    }
}

pub(super) type Push = Option<Extension<PushSettings>>;

/// Base64 of Basic credentials, padded or not.
pub(super) const BASIC_BASE64: base64::engine::GeneralPurpose = base64::engine::GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    base64::engine::general_purpose::PAD
        .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
);

/// Whether pushes are configured (and so the ping asks for credentials).
pub(super) fn requires_credentials(push: &Push) -> bool {
    push.as_ref().is_some_and(|Extension(p)| p.token.is_some())
}

/// The `WWW-Authenticate` value of the token flow, for `repository` if given.
pub(super) fn challenge(oci: &Oci, repository: Option<&str>) -> String {
    let realm = format!(
        "Bearer realm=\"{}/v2/token\",service=\"{TOKEN_SERVICE}\"",
        oci.app.settings.base_url.trim_end_matches('/')
    );
    match repository {
        Some(repository) => format!("{realm},scope=\"repository:{repository}:pull,push\""),
        None => realm,
    }
}

/// What an `Authorization` header presents: a bearer token or a Basic password.
pub(super) enum Presented {
    Bearer(String),
    Password(Vec<u8>),
}

pub(super) fn presented(headers: &HeaderMap) -> Option<Presented> {
    let value = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())?;
    let (scheme, rest) = value.split_once(' ').unwrap_or((value, ""));
    if scheme.eq_ignore_ascii_case("bearer") {
        Some(Presented::Bearer(rest.trim().to_owned()))
    } else if scheme.eq_ignore_ascii_case("basic") {
        let pair = BASIC_BASE64.decode(rest.trim()).ok()?;
        let colon = pair.iter().position(|b| *b == b':')?;
        Some(Presented::Password(pair[colon + 1..].to_vec()))
    } else {
        None
    }
}

/// Whether `given` is the credential, compared without stopping at the first difference.
pub(super) fn is_credential(credential: &str, given: &[u8]) -> bool {
    let expected = credential.as_bytes();
    given.len() == expected.len()
        && given
            .iter()
            .zip(expected)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

/// Whether the request carries the credential itself, as a bearer token or Basic password.
pub(super) fn carries_credential(push: &Push, headers: &HeaderMap) -> bool {
    let Some(credential) = push.as_ref().and_then(|Extension(p)| p.token.as_deref()) else {
        return false;
    };
    match presented(headers) {
        Some(Presented::Bearer(token)) => is_credential(credential, token.as_bytes()),
        Some(Presented::Password(password)) => is_credential(credential, &password),
        None => false,
    }
}

/// Whether the request may push: it carries the credential, or as a bearer token an
/// unexpired token the token endpoint derived from it.
pub(super) fn authenticated(push: &Push, headers: &HeaderMap) -> bool {
    if carries_credential(push, headers) {
        return true;
    }
    let Some(credential) = push.as_ref().and_then(|Extension(p)| p.token.as_deref()) else {
        return false;
    };
    match presented(headers) {
        Some(Presented::Bearer(token)) => {
            DerivedToken::verify(credential, &token, unix_now()).is_some()
        }
        _ => false,
    }
}

pub(super) fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs()
}

/// A push token the token endpoint issues in exchange for the credential:
/// `cairn1.<expiry>.<mac>`, where `expiry` is in Unix seconds (decimal) and `mac` is
/// base64url (unpadded) HMAC-SHA256 keyed with the credential over
/// `cairn oci token v1<expiry>`. It is worth a push until `expiry`, and reveals nothing of
/// the credential; changing the credential revokes every token.
pub(super) struct DerivedToken;

impl DerivedToken {
    pub(super) const PREFIX: &'static str = "cairn1.";
    /// How long a token is worth pushes, in seconds.
    pub(super) const LIFETIME: u64 = 3600;

    pub(super) fn mac(credential: &str, expiry: u64) -> Hmac<Sha256> {
        let mut mac = Hmac::<Sha256>::new_from_slice(credential.as_bytes())
            .expect("HMAC takes keys of any length");
        mac.update(b"cairn oci token v1");
        mac.update(expiry.to_string().as_bytes());
        mac
    }

    pub(super) fn issue(credential: &str, expiry: u64) -> String {
        let mac = DerivedToken::mac(credential, expiry)
            .finalize()
            .into_bytes();
        format!(
            "{}{expiry}.{}",
            DerivedToken::PREFIX,
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(mac)
        )
    }

    /// The expiry of `token` if the credential made it and it has not expired at `now`.
    pub(super) fn verify(credential: &str, token: &str, now: u64) -> Option<u64> {
        let (expiry_text, mac) = token.strip_prefix(DerivedToken::PREFIX)?.split_once('.')?;
        let expiry: u64 = expiry_text.parse().ok()?;
        // One spelling per expiry: no sign, no leading zeros.
        if expiry.to_string() != expiry_text || expiry <= now {
            return None;
        }
        let mac = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(mac)
            .ok()?;
        // `verify_slice` compares in constant time.
        DerivedToken::mac(credential, expiry)
            .verify_slice(&mac)
            .ok()?;
        Some(expiry)
    }
}

/// Whether `ns:name` is a warg package (published or not yet checkpointed).
pub(super) fn is_package(oci: &Oci, ns: &str, name: &str) -> bool {
    match format!("{ns}:{name}").parse::<PackageName>() {
        Ok(package) => oci
            .app
            .state
            .read()
            .expect("state lock poisoned")
            .package(&package.log_id())
            .is_some(),
        Err(_) => false,
    }
}

pub(super) fn check_name(ns: &str, name: &str) -> Result<String, OciError> {
    let repository = format!("{ns}/{name}");
    if is_name_component(ns) && is_name_component(name) {
        Ok(repository)
    } else {
        Err(OciError::new(
            StatusCode::BAD_REQUEST,
            "NAME_INVALID",
            "invalid repository name",
        )
        .with_detail(serde_json::json!({ "name": repository })))
    }
}

/// Who a write comes from.
pub(super) enum Writer {
    /// The holder of `--oci-push-token`: scratch repositories only.
    Operator,
    /// A publisher account; `repositories` limits it when it came with a scoped token.
    Publisher {
        account: Publisher,
        repositories: Option<Vec<String>>,
    },
}

/// The account or operator credential a request presents, if any: the push credential
/// (or a token derived from it), a publisher's token (as a Bearer token or the Basic
/// password), or a scoped token from `/v2/token`.
pub(super) async fn writer(
    oci: &Oci,
    push: &Push,
    headers: &HeaderMap,
) -> Result<Option<Writer>, Response> {
    if authenticated(push, headers) {
        return Ok(Some(Writer::Operator));
    }
    let token = match presented(headers) {
        Some(Presented::Bearer(token)) => token,
        Some(Presented::Password(password)) => match String::from_utf8(password) {
            Ok(password) => password,
            Err(_) => return Ok(None),
        },
        None => return Ok(None),
    };
    let accounts = &oci.app.accounts;
    if let Some((account, repositories)) = accounts
        .scoped(&token, unix_now())
        .await
        .map_err(internal)?
    {
        return Ok(Some(Writer::Publisher {
            account,
            repositories: Some(repositories),
        }));
    }
    Ok(accounts
        .by_token(&token)
        .await
        .map_err(internal)?
        .map(|account| Writer::Publisher {
            account,
            repositories: None,
        }))
}

/// Where a write goes.
pub(super) enum Target {
    /// A scratch repository.
    Scratch,
    /// A package repository, written by a publisher account that may publish the package.
    Package {
        publisher: Publisher,
        package: PackageName,
    },
}

pub(super) fn denied(message: String, repository: &str) -> Response {
    fail(
        OciError::new(StatusCode::FORBIDDEN, "DENIED", message)
            .with_detail(serde_json::json!({ "name": repository })),
    )
}

/// The gate of every write: a valid name, and a writer who may write there. A package
/// repository (a warg package, or any repository of a namespace this registry hosts when a
/// publisher account writes) takes writes from publisher accounts whose scope covers the
/// package; a scratch repository from the push credential. Without credentials: 401
/// `UNAUTHORIZED` with the token challenge.
pub(super) async fn writable(
    oci: &Oci,
    push: &Push,
    ns: &str,
    name: &str,
    headers: &HeaderMap,
) -> Result<(String, PushSettings, Target), Response> {
    let repository = check_name(ns, name).map_err(fail)?;
    let settings = match push {
        Some(Extension(settings)) => settings.clone(),
        None => return Err(fail(OciError::internal("pushes are not set up"))),
    };
    match writer(oci, push, headers).await? {
        None => {
            let mut response = fail(OciError::new(
                StatusCode::UNAUTHORIZED,
                "UNAUTHORIZED",
                "authentication required: push with a publisher account's token (as the \
                 password of any user name)",
            ));
            // The token flow of the distribution ecosystem: clients fetch a token from the
            // realm with the credential (as a Basic password) and retry with it. Clients may
            // also send the credential directly, as a Bearer token or a Basic password.
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header_value(&challenge(oci, Some(&repository))),
            );
            Err(response)
        }
        Some(Writer::Operator) => {
            if is_package(oci, ns, name) {
                return Err(denied(
                    format!(
                        "`{ns}:{name}` is a warg package: its releases are signed records, \
                         published by its keys or by a publisher account (the push \
                         credential writes scratch repositories only)"
                    ),
                    &repository,
                ));
            }
            Ok((repository, settings, Target::Scratch))
        }
        Some(Writer::Publisher {
            account,
            repositories,
        }) => {
            let package: Option<PackageName> = format!("{ns}:{name}").parse().ok();
            let Some(package) = package else {
                return Err(denied(
                    format!(
                        "`{ns}/{name}` cannot name a warg package (names are lowercase kebab-case)"
                    ),
                    &repository,
                ));
            };
            let in_token = repositories
                .as_ref()
                .is_none_or(|granted| granted.contains(&repository));
            if !account.covers(ns, name) || !in_token {
                let reason = if in_token {
                    format!(
                        "publisher `{}` may not publish `{package}`; it may publish to {}",
                        account.name,
                        crate::publishers::describe_scopes(&account)
                    )
                } else {
                    format!(
                        "the token was issued for other repositories than `{repository}`; ask \
                         /v2/token for scope repository:{repository}:push,pull"
                    )
                };
                return Err(denied(reason, &repository));
            }
            let hosted = matches!(
                oci.app
                    .state
                    .read()
                    .expect("state lock poisoned")
                    .operator()
                    .namespace(ns),
                Some(NamespaceState::Defined)
            );
            if !hosted {
                return Err(denied(
                    format!("this registry does not host namespace `{ns}`, so it has no package `{package}`"),
                    &repository,
                ));
            }
            Ok((
                repository,
                settings,
                Target::Package {
                    publisher: account,
                    package,
                },
            ))
        }
    }
}

/// The `service` of the token challenge.
pub(super) const TOKEN_SERVICE: &str = "cairn";

/// The token given to anonymous clients: it grants pulls, which need no token anyway.
pub(super) const ANONYMOUS_TOKEN: &str = "anonymous-pull";

/// Whether the request carries the anonymous (pull-only) token.
pub(super) fn anonymous_token(headers: &HeaderMap) -> bool {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .is_some_and(|(scheme, token)| {
            scheme.eq_ignore_ascii_case("bearer") && token.trim() == ANONYMOUS_TOKEN
        })
}

/// The repositories a token request asks to push to: each `scope` parameter (several may
/// be given, and one may hold several scopes separated by spaces) of the form
/// `repository:NAME:ACTIONS` whose actions include `push`.
pub(super) fn push_scopes(query: Option<&str>) -> Vec<String> {
    let mut repositories = Vec::new();
    for (key, value) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        if key != "scope" {
            continue;
        }
        for scope in value.split(' ') {
            let mut parts = scope.splitn(3, ':');
            let (Some("repository"), Some(name), Some(actions)) =
                (parts.next(), parts.next(), parts.next())
            else {
                continue;
            };
            if actions.split(',').any(|a| a == "push" || a == "*") {
                repositories.push(name.to_owned());
            }
        }
    }
    repositories
}

/// `GET /v2/token`: the token endpoint. A request carrying the push credential (as the Basic
/// password, any user name, or as a Bearer token) gets a [`DerivedToken`] worth pushes to
/// scratch repositories for an hour; one carrying a publisher account's token gets a scoped
/// token worth pushes, for an hour, to the repositories it asked for (`scope`) that the
/// account may publish to; a request without credentials gets a pull-only token; anything
/// else gets 401 (a derived or scoped token cannot renew itself).
pub(super) async fn token(
    State(oci): State<Oci>,
    push: Push,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let anonymous = !headers.contains_key(header::AUTHORIZATION);
    let now = unix_now();
    let mut expires_in = DerivedToken::LIFETIME;
    let granted = if anonymous {
        Some(ANONYMOUS_TOKEN.to_owned())
    } else if let Some(credential) = push
        .as_ref()
        .and_then(|Extension(p)| p.token.as_deref())
        .filter(|_| carries_credential(&push, &headers))
    {
        Some(DerivedToken::issue(
            credential,
            now + DerivedToken::LIFETIME,
        ))
    } else {
        let token = match presented(&headers) {
            Some(Presented::Bearer(token)) => Some(token),
            Some(Presented::Password(password)) => String::from_utf8(password).ok(),
            None => None,
        };
        let account = match token {
            Some(token) => match oci.app.accounts.by_token(&token).await {
                Ok(account) => account,
                Err(error) => return internal(error),
            },
            None => None,
        };
        account.map(|account| {
            let repositories: Vec<String> = push_scopes(query.as_deref())
                .into_iter()
                .filter(|repository| {
                    repository
                        .split_once('/')
                        .is_some_and(|(ns, name)| account.covers(ns, name))
                })
                .collect();
            expires_in = crate::publishers::SCOPED_LIFETIME;
            oci.app
                .accounts
                .issue(&account, repositories, now + expires_in)
        })
    };
    let Some(token) = granted else {
        let mut response = fail(OciError::new(
            StatusCode::UNAUTHORIZED,
            "UNAUTHORIZED",
            "a publisher account's token (or the push credential) is required: send it as \
             the Basic password",
        ));
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            header_value(&format!("Basic realm=\"{TOKEN_SERVICE}\"")),
        );
        return response;
    };
    let issued_at = Timestamp {
        seconds: i64::try_from(now).unwrap_or(i64::MAX),
        nanos: 0,
    }
    .to_rfc3339();
    let body = serde_json::json!({
        "token": token,
        "access_token": token,
        "expires_in": expires_in,
        "issued_at": issued_at,
    });
    (
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}
