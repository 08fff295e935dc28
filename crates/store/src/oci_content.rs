//! Content blobs kept as blobs of one repository in an external OCI distribution-spec
//! registry: [`OciContentStore`], a [`BlobStore`] over the registry's HTTP API, and
//! [`OciLocation`], the `oci://HOST[:PORT]/REPOSITORY` text that names such a store.
//!
//! Every call blocks (a small synchronous HTTP client); the server runs them on blocking
//! threads, never on the async runtime. Nothing read from the registry is trusted: joins
//! verify every blob's digest as they stream, so this module never hashes what it reads.
//!
//! * `has` and `size`: `HEAD /v2/<repo>/blobs/<digest>`.
//! * `open`: `GET` of the same URL, streamed (never buffered whole).
//! * `put`: a `HEAD` first (a blob the registry has is never uploaded again), then
//!   `POST /v2/<repo>/blobs/uploads/` and `PUT <Location>?digest=<digest>` with the bytes.
//!   The `PUT` is never repeated: after a connection error the blob is asked for, and uploaded
//!   again in a new session (once) only if the registry does not have it.
//! * `delete`: `DELETE` of the blob URL. A registry with deletes disabled (405) or without the
//!   blob (404) is not an error: the blob stays in the registry and a warning is logged once.
//!
//! Authentication: basic credentials from the location's userinfo or from
//! `CAIRN_CONTENT_USERNAME` / `CAIRN_CONTENT_PASSWORD`, sent when the registry asks for basic
//! auth; or the token flow (a `401` with `WWW-Authenticate: Bearer realm=..`: the token is
//! fetched from the realm with the basic credentials, cached, and fetched again when the
//! registry refuses it). Credentials go to the registry's own origin only, and only its
//! challenges are answered: a `401` from another host (an upload `Location` or a redirect
//! there) is an error.
//!
//! Timeouts: 10 s to connect, 60 s for an answer's headers, 10 minutes to send or to receive
//! a whole body, so that a registry that stalls never holds a thread for ever.

use std::collections::BTreeSet;
use std::io::{self, Read};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use base64::Engine as _;
use ureq::http::Response;
use ureq::{Body, ResponseExt as _};

use crate::content::{BlobDigest, BlobStore};

/// The environment variable holding the user name for the content registry.
pub const CONTENT_USERNAME_ENV: &str = "CAIRN_CONTENT_USERNAME";
/// The environment variable holding the password (or token) for the content registry.
pub const CONTENT_PASSWORD_ENV: &str = "CAIRN_CONTENT_PASSWORD";

/// How the registry is reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// Plain HTTP.
    Http,
    /// HTTP over TLS.
    Https,
}

/// A user name and password for a registry. The password never prints.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The user name.
    pub username: String,
    /// The password or access token.
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

impl Credentials {
    /// The credentials in `CAIRN_CONTENT_USERNAME` and `CAIRN_CONTENT_PASSWORD`, if the
    /// password is set (the user name may be empty).
    pub fn from_env() -> Option<Credentials> {
        let password = std::env::var(CONTENT_PASSWORD_ENV).ok()?;
        let username = std::env::var(CONTENT_USERNAME_ENV).unwrap_or_default();
        Some(Credentials { username, password })
    }

    fn basic_header(&self) -> String {
        let pair = format!("{}:{}", self.username, self.password);
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(pair)
        )
    }
}

/// Why a text is not an OCI content location.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum OciLocationError {
    /// The scheme is not one of ours.
    #[error("unknown content store scheme in {0:?} (use oci://, oci+http://, oci+https:// or a directory path)")]
    UnknownScheme(String),
    /// No host after the scheme.
    #[error("no registry host in {0:?} (expected oci://HOST[:PORT]/REPOSITORY)")]
    MissingHost(String),
    /// The port is not a number from 1 to 65535.
    #[error("invalid port in {0:?}")]
    BadPort(String),
    /// The host is not a DNS name or an IP address.
    #[error("invalid registry host in {0:?}")]
    BadHost(String),
    /// No repository after the host.
    #[error("no repository in {0:?} (expected oci://HOST[:PORT]/REPOSITORY)")]
    MissingRepository(String),
    /// The repository is not an OCI repository name.
    #[error("invalid repository name {0:?} (lowercase letters and digits, separated by `.`, `_`, `__`, `-` or `/`)")]
    BadRepository(String),
    /// A query or fragment follows the repository.
    #[error("a content location takes no query or fragment: {0:?}")]
    QueryOrFragment(String),
    /// The user information is not valid percent-encoded UTF-8.
    #[error("invalid percent-encoding in the credentials of the content location")]
    BadUserinfo,
    /// An `@` follows the host: credentials holding an unencoded `/`.
    #[error("an `@` after the registry host in {0:?} (percent-encode `/`, `@`, `:`, `?` and `#` in credentials as %2F, %40, %3A, %3F and %23)")]
    UnencodedUserinfo(String),
}

/// Where an OCI content store lives: a registry and a repository in it, and the credentials
/// given with the location, if any. Displays without the credentials.
#[derive(Clone, PartialEq, Eq)]
pub struct OciLocation {
    /// How the registry is reached.
    pub transport: Transport,
    /// `host` or `host:port`, lowercase (IPv6 addresses in brackets).
    pub authority: String,
    /// The repository holding the blobs, e.g. `cairn/content`.
    pub repository: String,
    /// Credentials from the location's userinfo.
    pub credentials: Option<Credentials>,
    /// Whether the scheme named the transport (`oci+http://`, `oci+https://`).
    explicit_transport: bool,
}

impl std::fmt::Debug for OciLocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{self}")
    }
}

impl std::fmt::Display for OciLocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let scheme = match (self.explicit_transport, self.transport) {
            (false, _) => "oci",
            (true, Transport::Http) => "oci+http",
            (true, Transport::Https) => "oci+https",
        };
        write!(f, "{scheme}://{}/{}", self.authority, self.repository)
    }
}

/// Whether a text starts like an OCI content location: `oci` (in any case) followed by `:` or
/// `+`. Such a text is a location or an error, never a directory.
pub(crate) fn is_oci_location(text: &str) -> bool {
    text.get(..3)
        .is_some_and(|start| start.eq_ignore_ascii_case("oci"))
        && matches!(text.as_bytes().get(3), Some(b':' | b'+'))
}

/// The scheme of a URL-like text: a letter, then letters, digits, `+`, `-` or `.`, before a `:`.
pub(crate) fn scheme_of(text: &str) -> Option<&str> {
    let (scheme, _) = text.split_once(':')?;
    let mut bytes = scheme.bytes();
    let valid = bytes.next()?.is_ascii_alphabetic()
        && bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'));
    valid.then_some(scheme)
}

/// `text` with its credentials hidden, for every error message: everything between the scheme
/// (and the slashes after it) and the last `@` becomes `***@`, so that a password is hidden
/// whatever it holds (an unencoded `/`, `?`, `#`, ...). Without a scheme followed by `/`, it is
/// everything between the `://`, or else the start, and the last `@`. Text without `@` is
/// returned as it is.
pub(crate) fn redact_credentials(text: &str) -> String {
    let Some(at) = text.rfind('@') else {
        return text.to_owned();
    };
    let start = match scheme_of(text) {
        Some(scheme) if text[scheme.len() + 1..].starts_with('/') => {
            let after = scheme.len() + 1;
            after + text[after..].bytes().take_while(|&b| b == b'/').count()
        }
        _ => text[..at].find("://").map_or(0, |index| index + 3),
    };
    if start > at {
        return text.to_owned();
    }
    format!("{}***@{}", &text[..start], &text[at + 1..])
}

impl std::str::FromStr for OciLocation {
    type Err = OciLocationError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let shown = redact_credentials(text);
        let Some((scheme, rest)) = text.split_once("://") else {
            return Err(OciLocationError::UnknownScheme(shown));
        };
        // Schemes are case-insensitive.
        let scheme = scheme.to_ascii_lowercase();
        let transport = match scheme.as_str() {
            "oci" => None,
            "oci+http" => Some(Transport::Http),
            "oci+https" => Some(Transport::Https),
            _ => return Err(OciLocationError::UnknownScheme(shown)),
        };
        if rest.contains(['?', '#']) {
            return Err(OciLocationError::QueryOrFragment(shown));
        }
        let (authority_with_userinfo, path) = rest.split_once('/').unwrap_or((rest, ""));
        // Repository names hold no `@`: one after the host ends credentials with an unencoded
        // `/` in them.
        if path.contains('@') {
            return Err(OciLocationError::UnencodedUserinfo(shown));
        }
        let (credentials, authority) = match authority_with_userinfo.rsplit_once('@') {
            Some((userinfo, authority)) => {
                let (username, password) = userinfo.split_once(':').unwrap_or((userinfo, ""));
                let credentials = Credentials {
                    username: percent_decode(username)?,
                    password: percent_decode(password)?,
                };
                (Some(credentials), authority)
            }
            None => (None, authority_with_userinfo),
        };
        let authority = parse_authority(authority, &shown)?;
        let repository = path.trim_end_matches('/');
        if repository.is_empty() {
            return Err(OciLocationError::MissingRepository(shown));
        }
        if !is_repository_name(repository) {
            return Err(OciLocationError::BadRepository(redact_credentials(
                repository,
            )));
        }
        let transport = transport.unwrap_or(if is_loopback(&authority) {
            Transport::Http
        } else {
            Transport::Https
        });
        Ok(OciLocation {
            transport,
            authority,
            repository: repository.to_owned(),
            credentials,
            explicit_transport: scheme != "oci",
        })
    }
}

impl OciLocation {
    /// `http://authority` or `https://authority`.
    pub fn origin(&self) -> String {
        let scheme = match self.transport {
            Transport::Http => "http",
            Transport::Https => "https",
        };
        format!("{scheme}://{}", self.authority)
    }

    /// Whether `other` names the same repository of the same registry, reached the same
    /// way (credentials aside).
    pub fn same_store(&self, other: &OciLocation) -> bool {
        self.transport == other.transport
            && self.authority == other.authority
            && self.repository == other.repository
    }
}

fn host_of(authority: &str) -> &str {
    if let Some(rest) = authority.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    authority.split(':').next().unwrap_or(authority)
}

/// The origin of an absolute `http` or `https` URL: its scheme and host in lowercase and its
/// port (the scheme's default port when none is given, so that `https://h` and `https://h:443`
/// are the same origin). `None` for anything else.
fn url_origin(url: &str) -> Option<(String, String, u16)> {
    let scheme = scheme_of(url)?;
    let rest = url[scheme.len() + 1..].strip_prefix("//")?;
    let scheme = scheme.to_ascii_lowercase();
    let default_port = match scheme.as_str() {
        "http" => 80,
        "https" => 443,
        _ => return None,
    };
    let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
    let authority = authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host);
    let host_end = match authority.strip_prefix('[') {
        Some(v6) => v6.find(']')? + 2,
        None => authority.find(':').unwrap_or(authority.len()),
    };
    let (host, port) = authority.split_at(host_end);
    let port = match port {
        "" | ":" => default_port,
        _ => port.strip_prefix(':')?.parse().ok()?,
    };
    if host.is_empty() {
        return None;
    }
    Some((scheme, host.to_ascii_lowercase(), port))
}

fn percent_decode(text: &str) -> Result<String, OciLocationError> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        if bytes[index] == b'%' {
            let pair = text
                .get(index + 1..index + 3)
                .ok_or(OciLocationError::BadUserinfo)?;
            let byte = u8::from_str_radix(pair, 16).map_err(|_| OciLocationError::BadUserinfo)?;
            out.push(byte);
            index += 3;
        } else {
            out.push(bytes[index]);
            index += 1;
        }
    }
    String::from_utf8(out).map_err(|_| OciLocationError::BadUserinfo)
}

/// Checks `host[:port]` and returns it with the host in lowercase.
fn parse_authority(authority: &str, shown: &str) -> Result<String, OciLocationError> {
    if authority.is_empty() {
        return Err(OciLocationError::MissingHost(shown.to_owned()));
    }
    let (host, port) = if let Some(rest) = authority.strip_prefix('[') {
        let (address, after) = rest
            .split_once(']')
            .ok_or_else(|| OciLocationError::BadHost(shown.to_owned()))?;
        if address.parse::<std::net::Ipv6Addr>().is_err() {
            return Err(OciLocationError::BadHost(shown.to_owned()));
        }
        let port = match after {
            "" => None,
            _ => Some(
                after
                    .strip_prefix(':')
                    .ok_or_else(|| OciLocationError::BadHost(shown.to_owned()))?,
            ),
        };
        (format!("[{address}]"), port)
    } else {
        let (host, port) = match authority.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        };
        let valid = !host.is_empty()
            && host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-');
        if !valid {
            return Err(OciLocationError::BadHost(shown.to_owned()));
        }
        (host.to_ascii_lowercase(), port)
    };
    match port {
        None => Ok(host),
        Some(port) => match port.parse::<u16>() {
            Ok(number) if number > 0 && !port.starts_with('0') => Ok(format!("{host}:{number}")),
            _ => Err(OciLocationError::BadPort(shown.to_owned())),
        },
    }
}

fn is_loopback(authority: &str) -> bool {
    let host = host_of(authority);
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|address| address.is_loopback())
}

/// The distribution spec's repository name grammar: path components of lowercase
/// alphanumerics separated by `.`, `_`, `__` or runs of `-`, joined by `/`.
fn is_repository_name(name: &str) -> bool {
    name.split('/').all(|component| {
        let bytes = component.as_bytes();
        let alphanumeric = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
        if bytes.is_empty() || !alphanumeric(bytes[0]) || !alphanumeric(bytes[bytes.len() - 1]) {
            return false;
        }
        let mut index = 0;
        while index < bytes.len() {
            if alphanumeric(bytes[index]) {
                index += 1;
                continue;
            }
            let start = index;
            while index < bytes.len() && !alphanumeric(bytes[index]) {
                index += 1;
            }
            let separator = &component[start..index];
            let dashes = separator.bytes().all(|b| b == b'-');
            if !(separator == "." || separator == "_" || separator == "__" || dashes) {
                return false;
            }
        }
        true
    })
}

/// The `Authorization` the store sends, learnt from the registry's challenges.
#[derive(Default)]
struct AuthState {
    /// The registry asked for basic credentials.
    basic: bool,
    /// The bearer token in use.
    token: Option<String>,
    /// The actions on our repository that tokens were asked for so far; each new token asks
    /// for all of them so that pulls and pushes do not take turns invalidating each other.
    actions: BTreeSet<String>,
}

/// A `WWW-Authenticate` challenge.
#[derive(Debug, PartialEq, Eq)]
struct Challenge {
    scheme: String,
    parameters: Vec<(String, String)>,
}

impl Challenge {
    fn parameter(&self, name: &str) -> Option<&str> {
        self.parameters
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }
}

/// Parses the first challenge of a `WWW-Authenticate` value: `Scheme k="v",k2=v2`.
fn parse_challenge(text: &str) -> Option<Challenge> {
    let text = text.trim();
    let (scheme, mut rest) = text.split_once(' ').unwrap_or((text, ""));
    let mut parameters = Vec::new();
    loop {
        rest = rest.trim_start_matches([' ', ',']);
        if rest.is_empty() {
            break;
        }
        let (key, after) = rest.split_once('=')?;
        let key = key.trim();
        let after = after.trim_start();
        let (value, remaining) = if let Some(quoted) = after.strip_prefix('"') {
            let mut value = String::new();
            let mut chars = quoted.char_indices();
            let mut end = None;
            while let Some((index, c)) = chars.next() {
                match c {
                    '\\' => {
                        if let Some((_, escaped)) = chars.next() {
                            value.push(escaped);
                        }
                    }
                    '"' => {
                        end = Some(index + 1);
                        break;
                    }
                    _ => value.push(c),
                }
            }
            (value, &quoted[end?..])
        } else {
            let end = after.find(',').unwrap_or(after.len());
            (after[..end].trim().to_owned(), &after[end..])
        };
        parameters.push((key.to_owned(), value));
        rest = remaining;
    }
    Some(Challenge {
        scheme: scheme.to_owned(),
        parameters,
    })
}

/// What one request does, for log lines and error messages.
#[derive(Clone, Copy)]
struct Operation<'a> {
    what: &'a str,
    digest: Option<&'a BlobDigest>,
    /// Whether sending it twice does no harm (then a connection error is retried once).
    idempotent: bool,
}

/// How long the store waits on the registry.
#[derive(Debug, Clone, Copy)]
struct Timeouts {
    /// To connect (name resolution included).
    connect: Duration,
    /// For the answer's status and headers once the request (and its body) is sent.
    response: Duration,
    /// To send or to receive a whole body (blobs are up to 256 MiB); the budget runs from the
    /// start of the body, also while the reader of a streamed blob is not being read.
    body: Duration,
}

impl Timeouts {
    const DEFAULT: Timeouts = Timeouts {
        connect: Duration::from_secs(10),
        response: Duration::from_secs(60),
        body: Duration::from_secs(10 * 60),
    };
}

/// What an `io::Error` holds for a request that failed on the way (the connection broke, or a
/// timeout ran out): the registry may or may not have acted on it.
#[derive(Debug)]
struct ConnectionFailure(String);

impl std::fmt::Display for ConnectionFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConnectionFailure {}

fn is_connection_failure(error: &io::Error) -> bool {
    error
        .get_ref()
        .is_some_and(|inner| inner.is::<ConnectionFailure>())
}

/// Blobs in a repository of an OCI distribution-spec registry.
pub struct OciContentStore {
    location: OciLocation,
    credentials: Option<Credentials>,
    agent: ureq::Agent,
    auth: Mutex<AuthState>,
    warned_deletes_disabled: AtomicBool,
}

impl std::fmt::Debug for OciContentStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OciContentStore")
            .field("location", &self.location)
            .finish_non_exhaustive()
    }
}

impl OciContentStore {
    /// A store for `location`, using the location's credentials or else those in the
    /// environment. Sends nothing yet: [`OciContentStore::ping`] checks the registry.
    pub fn new(location: OciLocation) -> Self {
        Self::with_timeouts(location, Timeouts::DEFAULT)
    }

    fn with_timeouts(location: OciLocation, timeouts: Timeouts) -> Self {
        let credentials = location.credentials.clone().or_else(Credentials::from_env);
        // No request waits for ever on a registry that stalls.
        let mut config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .https_only(location.transport == Transport::Https)
            .timeout_connect(Some(timeouts.connect))
            .timeout_recv_response(Some(timeouts.response))
            .timeout_send_body(Some(timeouts.body))
            .timeout_recv_body(Some(timeouts.body))
            .max_idle_connections_per_host(64)
            .user_agent(concat!("cairn/", env!("CARGO_PKG_VERSION")));
        if is_loopback(&location.authority) {
            config = config.proxy(None);
        }
        OciContentStore {
            location,
            credentials,
            agent: ureq::Agent::new_with_config(config.build()),
            auth: Mutex::new(AuthState::default()),
            warned_deletes_disabled: AtomicBool::new(false),
        }
    }

    /// The location of the store.
    pub fn location(&self) -> &OciLocation {
        &self.location
    }

    /// Checks that the registry answers the distribution API (`GET /v2/`) and accepts our
    /// credentials.
    pub fn ping(&self) -> io::Result<()> {
        let url = format!("{}/v2/", self.location.origin());
        let operation = Operation {
            what: "ping (GET /v2/)",
            digest: None,
            idempotent: true,
        };
        let mut response = self.send(operation, |authorization| {
            with_authorization(self.agent.get(&url), authorization).call()
        })?;
        match response.status().as_u16() {
            200 => {
                drain(&mut response);
                Ok(())
            }
            _ => Err(self.registry_error(operation, response)),
        }
    }

    fn blob_url(&self, digest: &BlobDigest) -> String {
        format!(
            "{}/v2/{}/blobs/{digest}",
            self.location.origin(),
            self.location.repository
        )
    }

    fn head(&self, digest: &BlobDigest) -> io::Result<Option<u64>> {
        let url = self.blob_url(digest);
        let operation = Operation {
            what: "HEAD blob",
            digest: Some(digest),
            idempotent: true,
        };
        let response = self.send(operation, |authorization| {
            with_authorization(self.agent.head(&url), authorization).call()
        })?;
        match response.status().as_u16() {
            200 => {
                let length = response
                    .headers()
                    .get("content-length")
                    .and_then(|value| value.to_str().ok())
                    .and_then(|value| value.parse::<u64>().ok())
                    .ok_or_else(|| {
                        io::Error::other(format!(
                            "OCI registry {}: HEAD blob {digest} answered without a Content-Length",
                            self.location
                        ))
                    })?;
                Ok(Some(length))
            }
            404 => Ok(None),
            _ => Err(self.registry_error(operation, response)),
        }
    }

    /// Starts an upload session and returns the URL to `PUT` the blob to.
    fn start_upload(&self, digest: &BlobDigest) -> io::Result<String> {
        let url = format!(
            "{}/v2/{}/blobs/uploads/",
            self.location.origin(),
            self.location.repository
        );
        let operation = Operation {
            what: "start blob upload",
            digest: Some(digest),
            idempotent: false,
        };
        let mut response = self.send(operation, |authorization| {
            with_authorization(self.agent.post(&url), authorization).send_empty()
        })?;
        if response.status().as_u16() != 202 {
            return Err(self.registry_error(operation, response));
        }
        let location = response
            .headers()
            .get("location")
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned);
        drain(&mut response);
        let location = location.ok_or_else(|| {
            io::Error::other(format!(
                "OCI registry {}: the blob upload for {digest} answered without a Location",
                self.location
            ))
        })?;
        Ok(self.upload_url(&location, digest))
    }

    /// Whether `url` is on the registry's origin (scheme, host and port, a default port
    /// written out or not): only there go credentials and challenges are answered.
    fn is_registry_url(&self, url: &str) -> bool {
        let ours = url_origin(&self.location.origin());
        ours.is_some() && url_origin(url) == ours
    }

    /// The URL that completes an upload: the session's `Location` (absolute in any case of
    /// its scheme, scheme-relative `//host/path`, or relative to the registry) with `digest=`
    /// added to its query.
    fn upload_url(&self, location: &str, digest: &BlobDigest) -> String {
        let absolute = if let Some(scheme) = scheme_of(location) {
            format!(
                "{}{}",
                scheme.to_ascii_lowercase(),
                &location[scheme.len()..]
            )
        } else if let Some(rest) = location.strip_prefix("//") {
            let scheme = match self.location.transport {
                Transport::Http => "http",
                Transport::Https => "https",
            };
            format!("{scheme}://{rest}")
        } else if location.starts_with('/') {
            format!("{}{location}", self.location.origin())
        } else {
            format!(
                "{}/v2/{}/blobs/uploads/{location}",
                self.location.origin(),
                self.location.repository
            )
        };
        let separator = if absolute.contains('?') { '&' } else { '?' };
        format!(
            "{absolute}{separator}digest={}%3A{}",
            digest.algorithm(),
            digest.to_hex()
        )
    }

    /// Uploads a blob the registry does not have: a `POST` and one `PUT` of `size` bytes from
    /// what `body` returns. The `PUT` is never sent twice to a session: after a connection
    /// error the registry may have stored the blob already (a second `PUT` gets
    /// `BLOB_UPLOAD_UNKNOWN`) or part of the body (`DIGEST_INVALID`). The blob is asked for
    /// instead: there, the upload succeeded; not there, the upload starts over once in a new
    /// session.
    fn upload<B: ureq::AsSendBody>(
        &self,
        digest: &BlobDigest,
        size: u64,
        body: impl Fn() -> io::Result<B>,
    ) -> io::Result<()> {
        let url = self.start_upload(digest)?;
        let error = match self.finish_upload(&url, digest, size, &body) {
            Err(error) if is_connection_failure(&error) => error,
            other => return other,
        };
        match self.head(digest) {
            Ok(Some(_)) => {
                tracing::debug!(store = %self.location, %digest, %error, "the registry stored the blob before the connection failed");
                return Ok(());
            }
            Ok(None) => {}
            Err(head_error) => {
                tracing::debug!(store = %self.location, %digest, %head_error, "cannot ask for the blob after its upload failed");
                return Err(error);
            }
        }
        tracing::debug!(store = %self.location, %digest, %error, "uploading the blob again, in a new session");
        let url = self.start_upload(digest)?;
        self.finish_upload(&url, digest, size, &body)
    }

    /// Finishes an upload with one `PUT` of `size` bytes from what `body` returns (not retried
    /// here: see [`OciContentStore::upload`]).
    fn finish_upload<B: ureq::AsSendBody>(
        &self,
        url: &str,
        digest: &BlobDigest,
        size: u64,
        body: impl Fn() -> io::Result<B>,
    ) -> io::Result<()> {
        // Credentials go to the registry only, not to another host a Location may name.
        let same_origin = self.is_registry_url(url);
        let operation = Operation {
            what: "upload blob",
            digest: Some(digest),
            idempotent: false,
        };
        let mut response = self.send(operation, |authorization| {
            let request = self
                .agent
                .put(url)
                .header("content-type", "application/octet-stream")
                .header("content-length", size.to_string());
            let request = if same_origin {
                with_authorization(request, authorization)
            } else {
                request
            };
            // Not `ureq::Error::Io`: a body that cannot be read is no connection error.
            request.send(body().map_err(|error| ureq::Error::Other(Box::new(error)))?)
        })?;
        match response.status().as_u16() {
            201 | 204 => {
                drain(&mut response);
                tracing::debug!(store = %self.location, %digest, size, "uploaded a blob");
                Ok(())
            }
            _ => Err(self.registry_error(operation, response)),
        }
    }

    /// Sends a request built by `request` (given the `Authorization` value to send, if any),
    /// answering the registry's authentication challenges, and retrying an idempotent
    /// request once on a connection error. Returns every response but a refused `401`.
    /// Only a `401` from the registry's own origin is answered: one from another host (an
    /// upload `Location` or a redirect elsewhere) is an error, so that neither the
    /// credentials nor a token of ours go there, and the cached token stays.
    fn send(
        &self,
        operation: Operation<'_>,
        request: impl Fn(Option<&str>) -> Result<Response<Body>, ureq::Error>,
    ) -> io::Result<Response<Body>> {
        let sent = self.authorization();
        let mut response = self.send_once(operation, &request, sent.as_deref())?;
        if response.status().as_u16() != 401 {
            return Ok(response);
        }
        if let Some(error) = self.refused_elsewhere(operation, &mut response) {
            return Err(error);
        }
        let challenge = response
            .headers()
            .get("www-authenticate")
            .and_then(|value| value.to_str().ok())
            .and_then(parse_challenge);
        drain(&mut response);
        let Some(challenge) = challenge else {
            return Err(self.refused(operation, "(HTTP 401) with no WWW-Authenticate challenge"));
        };
        let authorization = if challenge.scheme.eq_ignore_ascii_case("basic") {
            let Some(credentials) = &self.credentials else {
                return Err(self.refused(
                    operation,
                    &format!("(HTTP 401) and asks for credentials (give them in the location or in {CONTENT_USERNAME_ENV} and {CONTENT_PASSWORD_ENV})"),
                ));
            };
            let header = credentials.basic_header();
            if sent.as_deref() == Some(header.as_str()) {
                return Err(self.refused(operation, "(HTTP 401) with the credentials given"));
            }
            self.auth.lock().expect("auth lock poisoned").basic = true;
            header
        } else if challenge.scheme.eq_ignore_ascii_case("bearer") {
            format!("Bearer {}", self.fetch_token(&challenge)?)
        } else {
            return Err(self.refused(
                operation,
                &format!(
                    "(HTTP 401) and asks for unsupported {} authentication",
                    challenge.scheme
                ),
            ));
        };
        let mut response = self.send_once(operation, &request, Some(&authorization))?;
        if response.status().as_u16() == 401 {
            if let Some(error) = self.refused_elsewhere(operation, &mut response) {
                return Err(error);
            }
            let detail = error_detail(&mut response);
            return Err(self.refused(
                operation,
                &format!(
                    "(HTTP 401) with the {} credentials sent{detail}",
                    challenge.scheme
                ),
            ));
        }
        Ok(response)
    }

    /// For a `401` whose final URI (after redirects) is not on the registry's origin, the
    /// error saying that this other host refused the request.
    fn refused_elsewhere(
        &self,
        operation: Operation<'_>,
        response: &mut Response<Body>,
    ) -> Option<io::Error> {
        let uri = response.get_uri().to_string();
        if self.is_registry_url(&uri) {
            return None;
        }
        drain(response);
        // The origin only: the path and query of a redirect may hold signatures.
        let host = match url_origin(&uri) {
            Some((scheme, host, port)) => match (scheme.as_str(), port) {
                ("http", 80) | ("https", 443) => format!("{scheme}://{host}"),
                _ => format!("{scheme}://{host}:{port}"),
            },
            None => "an unknown host".to_owned(),
        };
        Some(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!(
                "OCI registry {}: {}{}: another host than the registry, {host}, refused it (HTTP 401); \
                 cairn sends its credentials to the registry only",
                self.location,
                operation.what,
                operation
                    .digest
                    .map(|d| format!(" {d}"))
                    .unwrap_or_default()
            ),
        ))
    }

    fn send_once(
        &self,
        operation: Operation<'_>,
        request: &impl Fn(Option<&str>) -> Result<Response<Body>, ureq::Error>,
        authorization: Option<&str>,
    ) -> io::Result<Response<Body>> {
        match request(authorization) {
            Ok(response) => Ok(response),
            Err(error) if operation.idempotent && is_connection_error(&error) => {
                tracing::debug!(store = %self.location, what = operation.what, %error, "retrying after a connection error");
                request(authorization).map_err(|error| self.connection_error(operation, error))
            }
            Err(error) => Err(self.connection_error(operation, error)),
        }
    }

    /// The `Authorization` value the registry asked for last.
    fn authorization(&self) -> Option<String> {
        let auth = self.auth.lock().expect("auth lock poisoned");
        if let Some(token) = &auth.token {
            return Some(format!("Bearer {token}"));
        }
        if auth.basic {
            return self.credentials.as_ref().map(Credentials::basic_header);
        }
        None
    }

    /// Asks the challenge's realm for a token (with the basic credentials, if any), for the
    /// challenge's scope joined with every action asked for before, and caches it.
    fn fetch_token(&self, challenge: &Challenge) -> io::Result<String> {
        let realm = challenge.parameter("realm").ok_or_else(|| {
            io::Error::other(format!(
                "OCI registry {}: bearer challenge without a realm",
                self.location
            ))
        })?;
        let our_resource = format!("repository:{}", self.location.repository);
        let mut scopes = Vec::new();
        {
            let mut auth = self.auth.lock().expect("auth lock poisoned");
            for scope in challenge
                .parameter("scope")
                .unwrap_or("")
                .split(' ')
                .filter(|s| !s.is_empty())
            {
                match scope.rsplit_once(':') {
                    Some((resource, actions)) if resource == our_resource => {
                        auth.actions.extend(actions.split(',').map(str::to_owned));
                    }
                    _ => scopes.push(scope.to_owned()),
                }
            }
            if !auth.actions.is_empty() {
                let actions: Vec<&str> = auth.actions.iter().map(String::as_str).collect();
                scopes.push(format!("{our_resource}:{}", actions.join(",")));
            }
        }
        let operation = Operation {
            what: "fetch a token",
            digest: None,
            idempotent: true,
        };
        let request = || {
            let mut request = self.agent.get(realm);
            if let Some(service) = challenge.parameter("service") {
                request = request.query("service", service);
            }
            for scope in &scopes {
                request = request.query("scope", scope);
            }
            if let Some(credentials) = &self.credentials {
                request = request.header("authorization", credentials.basic_header());
            }
            request.call()
        };
        let mut response = match request() {
            Err(error) if is_connection_error(&error) => request(),
            other => other,
        }
        .map_err(|error| self.connection_error(operation, error))?;
        if matches!(response.status().as_u16(), 401 | 403) {
            let detail = error_detail(&mut response);
            let sent = match self.credentials {
                Some(_) => "the credentials sent",
                None => "no credentials",
            };
            return Err(self.refused(operation, &format!("by {realm} with {sent}{detail}")));
        }
        if response.status().as_u16() != 200 {
            return Err(self.registry_error(operation, response));
        }
        let body = response
            .body_mut()
            .with_config()
            .limit(1 << 20)
            .read_to_string()
            .map_err(|error| self.connection_error(operation, error))?;
        let json: serde_json::Value = serde_json::from_str(&body).map_err(|error| {
            io::Error::other(format!(
                "OCI registry {}: the token realm {realm} answered with invalid JSON: {error}",
                self.location
            ))
        })?;
        let token = json["token"]
            .as_str()
            .or_else(|| json["access_token"].as_str())
            .filter(|token| !token.is_empty())
            .ok_or_else(|| {
                io::Error::other(format!(
                    "OCI registry {}: the token realm {realm} answered without a token",
                    self.location
                ))
            })?
            .to_owned();
        tracing::debug!(store = %self.location, scopes = ?scopes, "fetched a registry token");
        self.auth.lock().expect("auth lock poisoned").token = Some(token.clone());
        Ok(token)
    }

    fn connection_error(&self, operation: Operation<'_>, error: ureq::Error) -> io::Error {
        let message = format!(
            "cannot reach the OCI registry {} to {}{}: {error}",
            self.location,
            operation.what,
            operation
                .digest
                .map(|d| format!(" {d}"))
                .unwrap_or_default()
        );
        let kind = match &error {
            ureq::Error::Io(error) => error.kind(),
            ureq::Error::ConnectionFailed => io::ErrorKind::ConnectionRefused,
            ureq::Error::Timeout(_) => io::ErrorKind::TimedOut,
            _ => io::ErrorKind::Other,
        };
        if is_connection_error(&error) || matches!(error, ureq::Error::Timeout(_)) {
            io::Error::new(kind, ConnectionFailure(message))
        } else {
            io::Error::new(kind, message)
        }
    }

    fn refused(&self, operation: Operation<'_>, why: &str) -> io::Error {
        io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!(
                "OCI registry {}: {} refused {why}",
                self.location, operation.what
            ),
        )
    }

    /// An error naming the operation, the HTTP status and the distribution-spec error code
    /// and message of the body, if any.
    fn registry_error(&self, operation: Operation<'_>, mut response: Response<Body>) -> io::Error {
        let status = response.status();
        let detail = error_detail(&mut response);
        let kind = match status.as_u16() {
            404 => io::ErrorKind::NotFound,
            401 | 403 => io::ErrorKind::PermissionDenied,
            _ => io::ErrorKind::Other,
        };
        io::Error::new(
            kind,
            format!(
                "OCI registry {}: {}{} failed: HTTP {status}{detail}",
                self.location,
                operation.what,
                operation
                    .digest
                    .map(|d| format!(" {d}"))
                    .unwrap_or_default()
            ),
        )
    }
}

/// ` (CODE: message)` from a distribution-spec error body, or nothing.
fn error_detail(response: &mut Response<Body>) -> String {
    let body = response
        .body_mut()
        .with_config()
        .limit(64 << 10)
        .read_to_string()
        .unwrap_or_default();
    serde_json::from_str::<serde_json::Value>(&body)
        .ok()
        .and_then(|json| {
            let error = json["errors"].get(0)?.clone();
            let code = error["code"].as_str()?.to_owned();
            let message = error["message"].as_str().unwrap_or("").to_owned();
            Some(format!(" ({code}: {message})"))
        })
        .unwrap_or_default()
}

fn with_authorization<B>(
    request: ureq::RequestBuilder<B>,
    authorization: Option<&str>,
) -> ureq::RequestBuilder<B> {
    match authorization {
        Some(value) => request.header("authorization", value),
        None => request,
    }
}

/// Errors after which sending the same request again may succeed: the connection failed or
/// was closed under us (a pooled connection the registry had dropped).
fn is_connection_error(error: &ureq::Error) -> bool {
    matches!(
        error,
        ureq::Error::Io(_)
            | ureq::Error::ConnectionFailed
            | ureq::Error::Protocol(_)
            | ureq::Error::Timeout(ureq::Timeout::Connect)
    )
}

/// Reads a small response body to its end, so that the connection goes back to the pool.
fn drain(response: &mut Response<Body>) {
    let _ = response
        .body_mut()
        .with_config()
        .limit(64 << 10)
        .read_to_vec();
}

impl BlobStore for OciContentStore {
    fn has(&self, digest: &BlobDigest) -> io::Result<bool> {
        Ok(self.head(digest)?.is_some())
    }

    fn put(&self, digest: &BlobDigest, bytes: &[u8]) -> io::Result<()> {
        if self.has(digest)? {
            return Ok(());
        }
        self.upload(digest, bytes.len() as u64, || Ok(bytes))
    }

    fn put_file(&self, digest: &BlobDigest, path: &Path) -> io::Result<()> {
        if self.has(digest)? {
            return Ok(());
        }
        let size = std::fs::metadata(path)?.len();
        self.upload(digest, size, || std::fs::File::open(path))
    }

    fn open(&self, digest: &BlobDigest) -> io::Result<Box<dyn Read + Send>> {
        let url = self.blob_url(digest);
        let operation = Operation {
            what: "GET blob",
            digest: Some(digest),
            idempotent: true,
        };
        let response = self.send(operation, |authorization| {
            with_authorization(self.agent.get(&url), authorization).call()
        })?;
        match response.status().as_u16() {
            200 => Ok(Box::new(response.into_body().into_reader())),
            _ => Err(self.registry_error(operation, response)),
        }
    }

    fn open_at(&self, digest: &BlobDigest, offset: u64) -> io::Result<Box<dyn Read + Send>> {
        if offset == 0 {
            return self.open(digest);
        }
        let url = self.blob_url(digest);
        let operation = Operation {
            what: "GET blob range",
            digest: Some(digest),
            idempotent: true,
        };
        let range = format!("bytes={offset}-");
        let response = self.send(operation, |authorization| {
            with_authorization(self.agent.get(&url).header("Range", &range), authorization).call()
        })?;
        match response.status().as_u16() {
            206 => Ok(Box::new(response.into_body().into_reader())),
            // A registry that ignores ranges sends the whole blob: skip to the offset.
            200 => {
                let mut reader = response.into_body().into_reader();
                io::copy(&mut (&mut reader).take(offset), &mut io::sink())?;
                Ok(Box::new(reader))
            }
            // Starting at the end: nothing to read.
            416 => Ok(Box::new(io::empty())),
            _ => Err(self.registry_error(operation, response)),
        }
    }

    fn size(&self, digest: &BlobDigest) -> io::Result<Option<u64>> {
        self.head(digest)
    }

    fn delete(&self, digest: &BlobDigest) -> io::Result<()> {
        let url = self.blob_url(digest);
        let operation = Operation {
            what: "DELETE blob",
            digest: Some(digest),
            idempotent: true,
        };
        let mut response = self.send(operation, |authorization| {
            with_authorization(self.agent.delete(&url), authorization).call()
        })?;
        match response.status().as_u16() {
            200 | 202 | 204 | 404 => {
                drain(&mut response);
                Ok(())
            }
            405 => {
                drain(&mut response);
                if !self.warned_deletes_disabled.swap(true, Ordering::Relaxed) {
                    tracing::warn!(store = %self.location, "the content registry does not delete blobs (HTTP 405); deleted blobs stay there");
                }
                Ok(())
            }
            _ => Err(self.registry_error(operation, response)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<OciLocation, OciLocationError> {
        text.parse()
    }

    #[test]
    fn loopback_hosts_use_plain_http_and_others_https() {
        for (text, transport) in [
            ("oci://127.0.0.1:5000/cairn/content", Transport::Http),
            ("oci://localhost/cairn", Transport::Http),
            ("oci://[::1]:5000/cairn", Transport::Http),
            ("oci://ghcr.io/acme/cairn-content", Transport::Https),
            ("oci+http://registry.internal:5000/cairn", Transport::Http),
            ("oci+https://127.0.0.1:5000/cairn", Transport::Https),
        ] {
            assert_eq!(parse(text).unwrap().transport, transport, "{text}");
        }
    }

    #[test]
    fn a_location_displays_canonically_without_credentials() {
        let location = parse("oci://user:p%40ss@Registry.Example:443/a/b/").unwrap();
        assert_eq!(location.to_string(), "oci://registry.example:443/a/b");
        assert_eq!(
            location.credentials,
            Some(Credentials {
                username: "user".into(),
                password: "p@ss".into()
            })
        );
        assert!(!format!("{location:?}").contains("p@ss"));
        assert_eq!(
            parse("oci+http://h:1/r").unwrap().to_string(),
            "oci+http://h:1/r"
        );
    }

    #[test]
    fn the_same_store_ignores_credentials_and_an_implied_scheme() {
        let a = parse("oci://u:p@127.0.0.1:5000/cairn").unwrap();
        let b = parse("oci+http://127.0.0.1:5000/cairn/").unwrap();
        assert!(a.same_store(&b));
        let c = parse("oci+https://127.0.0.1:5000/cairn").unwrap();
        assert!(!a.same_store(&c));
        let d = parse("oci://127.0.0.1:5000/other").unwrap();
        assert!(!a.same_store(&d));
    }

    #[test]
    fn malformed_locations_are_typed_errors() {
        assert!(matches!(
            parse("s3://bucket/x"),
            Err(OciLocationError::UnknownScheme(_))
        ));
        assert!(matches!(
            parse("oci:///repo"),
            Err(OciLocationError::MissingHost(_))
        ));
        assert!(matches!(
            parse("oci://host:99999/repo"),
            Err(OciLocationError::BadPort(_))
        ));
        assert!(matches!(
            parse("oci://host"),
            Err(OciLocationError::MissingRepository(_))
        ));
        assert!(matches!(
            parse("oci://host/Upper"),
            Err(OciLocationError::BadRepository(_))
        ));
        assert!(matches!(
            parse("oci://host/a//b"),
            Err(OciLocationError::BadRepository(_))
        ));
        assert!(matches!(
            parse("oci://host/repo?x=1"),
            Err(OciLocationError::QueryOrFragment(_))
        ));
        assert!(matches!(
            parse("oci://u:%zz@host/repo"),
            Err(OciLocationError::BadUserinfo)
        ));
        assert!(matches!(
            parse("oci://ho st/repo"),
            Err(OciLocationError::BadHost(_))
        ));
        let error = parse("oci://user:secret@host").unwrap_err().to_string();
        assert!(!error.contains("secret"), "{error}");
    }

    #[test]
    fn repository_names_follow_the_distribution_grammar() {
        for good in ["a", "cairn/content", "a.b_c__d---e/f0", "x/y/z"] {
            assert!(is_repository_name(good), "{good}");
        }
        for bad in ["", "-a", "a-", "a..b", "a___b", "a/", "A", "a b"] {
            assert!(!is_repository_name(bad), "{bad}");
        }
    }

    #[test]
    fn challenges_parse_quoted_and_bare_parameters() {
        let challenge = parse_challenge(
            r#"Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull,push""#,
        )
        .unwrap();
        assert_eq!(challenge.scheme, "Bearer");
        assert_eq!(
            challenge.parameter("realm"),
            Some("https://auth.example/token")
        );
        assert_eq!(challenge.parameter("service"), Some("registry.example"));
        assert_eq!(
            challenge.parameter("scope"),
            Some("repository:a/b:pull,push")
        );
        let basic = parse_challenge(r#"Basic realm="Registry Realm""#).unwrap();
        assert_eq!(basic.scheme, "Basic");
        assert_eq!(basic.parameter("realm"), Some("Registry Realm"));
        let bare = parse_challenge("Bearer realm=x, error=\"a\\\"b\"").unwrap();
        assert_eq!(bare.parameter("realm"), Some("x"));
        assert_eq!(bare.parameter("error"), Some("a\"b"));
    }

    #[test]
    fn upload_urls_take_absolute_relative_and_query_locations() {
        let store = OciContentStore::new(parse("oci://127.0.0.1:5000/cairn").unwrap());
        let digest: BlobDigest = format!("sha256:{}", "ab".repeat(32)).parse().unwrap();
        let suffix = format!("digest=sha256%3A{}", "ab".repeat(32));
        assert_eq!(
            store.upload_url("/v2/cairn/blobs/uploads/u1", &digest),
            format!("http://127.0.0.1:5000/v2/cairn/blobs/uploads/u1?{suffix}")
        );
        assert_eq!(
            store.upload_url(
                "http://127.0.0.1:5000/v2/cairn/blobs/uploads/u1?_state=xyz",
                &digest
            ),
            format!("http://127.0.0.1:5000/v2/cairn/blobs/uploads/u1?_state=xyz&{suffix}")
        );
        assert_eq!(
            store.upload_url("u2", &digest),
            format!("http://127.0.0.1:5000/v2/cairn/blobs/uploads/u2?{suffix}")
        );
    }

    #[test]
    fn credentials_are_redacted_in_every_error_however_they_are_written() {
        assert_eq!(
            redact_credentials("oci://u:pa/ss@host/repo"),
            "oci://***@host/repo"
        );
        assert_eq!(redact_credentials("https://u:pw@h/r"), "https://***@h/r");
        assert_eq!(redact_credentials("oci:/u:pw@h/r"), "oci:/***@h/r");
        assert_eq!(redact_credentials("u:pw@h/r"), "***@h/r");
        assert_eq!(redact_credentials("oci://h/r"), "oci://h/r");
        for text in [
            "https://u:secret@h/r",
            "ftp://u:secret@h/r",
            "oci:/u:secret@h/r",
            "oci:u:secret@h/r",
            "oci+ftp://u:secret@h/r",
            // An unencoded `/` ends the authority early: the rest used to show.
            "oci://u:sec/ret@host/repo",
            "oci://u:sec/ret@host:99999/repo",
            "oci://u:sec:ret/x@host/repo",
            "oci://u:sec?ret@host/repo",
            "oci://u:secret@host",
            "oci://u:secret@ho st/repo",
            "oci://u:secret@host/Upper",
        ] {
            let error = parse(text).unwrap_err();
            for shown in [error.to_string(), format!("{error:?}")] {
                assert!(
                    !shown.contains("secret") && !shown.contains("sec/") && !shown.contains("ret"),
                    "{text}: {shown}"
                );
            }
        }
        assert!(matches!(
            parse("oci://u:pa/ss@host/repo"),
            Err(OciLocationError::UnencodedUserinfo(_))
        ));
    }

    #[test]
    fn schemes_are_case_insensitive() {
        let location = parse("OCI+HTTP://u:p@Host:5000/repo").unwrap();
        assert_eq!(location.to_string(), "oci+http://host:5000/repo");
        assert!(location.same_store(&parse("oci+http://host:5000/repo").unwrap()));
        assert_eq!(parse("Oci://h/r").unwrap().to_string(), "oci://h/r");
        assert!(is_oci_location("OCI:/x") && is_oci_location("oci+ftp://x"));
        assert!(!is_oci_location("ocifs/x") && !is_oci_location("/oci:x"));
    }

    #[test]
    fn origins_treat_default_ports_scheme_case_and_scheme_relative_locations_alike() {
        let origin = |url| url_origin(url);
        assert_eq!(
            origin("https://Ghcr.IO/v2/"),
            origin("HTTPS://ghcr.io:443/x")
        );
        assert_eq!(origin("http://h/"), origin("http://h:80"));
        assert_ne!(origin("http://h/"), origin("https://h/"));
        assert_ne!(origin("http://h:5000/"), origin("http://h:5001/"));
        assert_eq!(origin("http://[::1]:5000/x"), origin("http://[::1]:5000"));
        assert_eq!(origin("ftp://h/"), None);

        let store = OciContentStore::new(parse("oci://ghcr.io/acme/content").unwrap());
        assert!(store.is_registry_url("https://ghcr.io:443/v2/acme/content/blobs/uploads/u"));
        assert!(store.is_registry_url("HTTPS://GHCR.io/v2/"));
        assert!(!store.is_registry_url("http://ghcr.io/v2/"));
        assert!(!store.is_registry_url("https://ghcr.io.evil/v2/"));
        assert!(!store.is_registry_url("https://u@evil:443@ghcr.io.evil/"));

        let digest: BlobDigest = format!("sha256:{}", "ab".repeat(32)).parse().unwrap();
        let suffix = format!("digest=sha256%3A{}", "ab".repeat(32));
        let url = store.upload_url("//ghcr.io:443/v2/acme/content/blobs/uploads/u3", &digest);
        assert_eq!(
            url,
            format!("https://ghcr.io:443/v2/acme/content/blobs/uploads/u3?{suffix}")
        );
        assert!(store.is_registry_url(&url));
        let url = store.upload_url("//uploads.example/u4", &digest);
        assert_eq!(url, format!("https://uploads.example/u4?{suffix}"));
        assert!(!store.is_registry_url(&url));
        let url = store.upload_url("HTTPS://ghcr.io/v2/acme/content/blobs/uploads/u5", &digest);
        assert_eq!(
            url,
            format!("https://ghcr.io/v2/acme/content/blobs/uploads/u5?{suffix}")
        );
        assert!(store.is_registry_url(&url));
    }

    /// A request as the fake registry saw it.
    #[derive(Debug, Clone)]
    struct Seen {
        method: String,
        path: String,
        headers: Vec<(String, String)>,
        body_len: usize,
    }

    impl Seen {
        fn header(&self, name: &str) -> Option<&str> {
            self.headers
                .iter()
                .find(|(key, _)| key.eq_ignore_ascii_case(name))
                .map(|(_, value)| value.as_str())
        }
    }

    /// An answer of the fake registry: status, headers, body; or `None` to close the connection
    /// without answering (after reading the whole request).
    type Answer = Option<(u16, Vec<(String, String)>, Vec<u8>)>;

    /// A minimal HTTP/1.1 server on loopback, one request per connection, recording the
    /// requests it sees. Its thread stays blocked in `accept` until the test process ends.
    struct Fake {
        port: u16,
        seen: std::sync::Arc<Mutex<Vec<Seen>>>,
    }

    impl Fake {
        fn start(answer: impl Fn(&Seen) -> Answer + Send + 'static) -> Fake {
            use std::io::{BufRead, BufReader, Write};
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let port = listener.local_addr().unwrap().port();
            let seen = std::sync::Arc::new(Mutex::new(Vec::new()));
            let log = seen.clone();
            std::thread::spawn(move || {
                for stream in listener.incoming() {
                    let Ok(mut stream) = stream else { continue };
                    let mut reader = BufReader::new(stream.try_clone().unwrap());
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 {
                        continue;
                    }
                    let mut parts = line.split_whitespace();
                    let method = parts.next().unwrap_or("").to_owned();
                    let path = parts.next().unwrap_or("").to_owned();
                    let mut headers = Vec::new();
                    loop {
                        let mut line = String::new();
                        if reader.read_line(&mut line).unwrap_or(0) == 0 || line.trim().is_empty() {
                            break;
                        }
                        if let Some((key, value)) = line.split_once(':') {
                            headers.push((key.trim().to_owned(), value.trim().to_owned()));
                        }
                    }
                    let mut request = Seen {
                        method,
                        path,
                        headers,
                        body_len: 0,
                    };
                    let length: u64 = request
                        .header("content-length")
                        .and_then(|value| value.parse().ok())
                        .unwrap_or(0);
                    request.body_len = io::copy(&mut (&mut reader).take(length), &mut io::sink())
                        .unwrap_or(0) as usize;
                    log.lock().unwrap().push(request.clone());
                    let Some((status, headers, body)) = answer(&request) else {
                        continue;
                    };
                    let mut head = format!("HTTP/1.1 {status} X\r\nConnection: close\r\n");
                    if !headers.iter().any(|(key, _)| key == "Content-Length") {
                        head.push_str(&format!("Content-Length: {}\r\n", body.len()));
                    }
                    for (key, value) in headers {
                        head.push_str(&format!("{key}: {value}\r\n"));
                    }
                    head.push_str("\r\n");
                    let _ = stream.write_all(head.as_bytes());
                    if request.method != "HEAD" {
                        let _ = stream.write_all(&body);
                    }
                }
            });
            Fake { port, seen }
        }

        fn seen(&self) -> Vec<Seen> {
            self.seen.lock().unwrap().clone()
        }

        fn count(&self, method: &str) -> usize {
            self.seen().iter().filter(|r| r.method == method).count()
        }
    }

    fn reply(status: u16, headers: &[(&str, String)]) -> Answer {
        let headers = headers
            .iter()
            .map(|(key, value)| (key.to_string(), value.clone()))
            .collect();
        Some((status, headers, Vec::new()))
    }

    fn test_digest(bytes: &[u8]) -> BlobDigest {
        use sha2::Digest as _;
        format!("sha256:{}", hex::encode(sha2::Sha256::digest(bytes)))
            .parse()
            .unwrap()
    }

    #[test]
    fn a_401_from_another_host_is_not_answered_with_our_credentials() {
        // The token realm the other host names: it must never be asked.
        let realm = Fake::start(|_| Some((200, Vec::new(), br#"{"token":"stolen"}"#.to_vec())));
        let challenge = format!(
            r#"Bearer realm="http://127.0.0.1:{}/token",service="elsewhere""#,
            realm.port
        );
        let elsewhere =
            Fake::start(move |_| reply(401, &[("WWW-Authenticate", challenge.clone())]));
        let elsewhere_url = format!("http://127.0.0.1:{}", elsewhere.port);
        let redirect = elsewhere_url.clone();
        let registry = Fake::start(move |request| match request.method.as_str() {
            "GET" => reply(307, &[("Location", format!("{redirect}/blob"))]),
            "HEAD" => reply(404, &[]),
            "POST" => reply(202, &[("Location", format!("{redirect}/upload/1"))]),
            _ => reply(500, &[]),
        });
        let store = OciContentStore::new(
            parse(&format!(
                "oci://user:secret@127.0.0.1:{}/cairn",
                registry.port
            ))
            .unwrap(),
        );
        let digest = test_digest(b"blob");

        let error = match store.open(&digest) {
            Ok(_) => panic!("a blob behind a refusing host opened"),
            Err(error) => error,
        };
        assert_eq!(error.kind(), io::ErrorKind::PermissionDenied);
        assert!(
            error.to_string().contains(&format!(
                "another host than the registry, {elsewhere_url}, refused"
            )),
            "{error}"
        );
        let error = store.put(&digest, b"blob").unwrap_err();
        assert!(
            error
                .to_string()
                .contains(&format!("{elsewhere_url}, refused")),
            "{error}"
        );
        assert_eq!(elsewhere.count("GET"), 1);
        assert_eq!(elsewhere.count("PUT"), 1);
        assert!(
            elsewhere
                .seen()
                .iter()
                .all(|r| r.header("authorization").is_none()),
            "{:?}",
            elsewhere.seen()
        );
        assert!(
            realm.seen().is_empty(),
            "the realm was asked: {:?}",
            realm.seen()
        );
        assert!(store.auth.lock().unwrap().token.is_none());
    }

    /// A fake registry holding one blob's state: `HEAD` answers whether it is stored, `POST`
    /// opens session `n`, and `PUT` calls `put` with the number of `PUT`s so far (from 1) to
    /// decide: `Some(true)` stores the blob and answers 201, `Some(false)` stores it and closes
    /// the connection unanswered, `None` closes it unanswered without storing. A `PUT` to a
    /// session that was `PUT` to before gets 404 `BLOB_UPLOAD_UNKNOWN`, as from a real one.
    fn upload_registry(size: usize, put: impl Fn(usize) -> Option<bool> + Send + 'static) -> Fake {
        let stored = AtomicBool::new(false);
        let sessions = std::sync::atomic::AtomicUsize::new(0);
        let puts = std::sync::atomic::AtomicUsize::new(0);
        let closed = Mutex::new(BTreeSet::new());
        Fake::start(move |request| match request.method.as_str() {
            "HEAD" if stored.load(Ordering::SeqCst) => {
                reply(200, &[("Content-Length", size.to_string())])
            }
            "HEAD" => reply(404, &[]),
            "POST" => {
                let n = sessions.fetch_add(1, Ordering::SeqCst) + 1;
                reply(
                    202,
                    &[("Location", format!("/v2/cairn/blobs/uploads/s{n}"))],
                )
            }
            "PUT" => {
                let session = request.path.split('?').next().unwrap().to_owned();
                if !closed.lock().unwrap().insert(session) {
                    let body = br#"{"errors":[{"code":"BLOB_UPLOAD_UNKNOWN","message":"blob upload unknown to registry"}]}"#;
                    return Some((404, Vec::new(), body.to_vec()));
                }
                assert_eq!(request.body_len, size);
                match put(puts.fetch_add(1, Ordering::SeqCst) + 1) {
                    Some(answer) => {
                        stored.store(true, Ordering::SeqCst);
                        if answer {
                            reply(201, &[])
                        } else {
                            None
                        }
                    }
                    None => None,
                }
            }
            _ => reply(500, &[]),
        })
    }

    fn store_at(registry: &Fake) -> OciContentStore {
        OciContentStore::new(parse(&format!("oci://127.0.0.1:{}/cairn", registry.port)).unwrap())
    }

    #[test]
    fn a_closing_put_cut_off_after_the_registry_stored_the_blob_is_not_sent_again() {
        let bytes = vec![7u8; 100_000];
        let registry = upload_registry(bytes.len(), |_| Some(false));
        let store = store_at(&registry);
        store.put(&test_digest(&bytes), &bytes).unwrap();
        assert_eq!(registry.count("POST"), 1);
        assert_eq!(registry.count("PUT"), 1);
    }

    #[test]
    fn a_closing_put_cut_off_before_the_blob_was_stored_starts_over_once_in_a_new_session() {
        let bytes = vec![7u8; 100_000];
        let registry = upload_registry(bytes.len(), |n| (n > 1).then_some(true));
        let store = store_at(&registry);
        store.put(&test_digest(&bytes), &bytes).unwrap();
        assert_eq!(registry.count("POST"), 2);
        assert_eq!(registry.count("PUT"), 2);
        assert!(registry
            .seen()
            .iter()
            .filter(|r| r.method == "PUT")
            .map(|r| r.path.split('?').next().unwrap().to_owned())
            .eq(["/v2/cairn/blobs/uploads/s1", "/v2/cairn/blobs/uploads/s2"]));

        // Only once.
        let registry = upload_registry(bytes.len(), |_| None);
        let store = store_at(&registry);
        let error = store.put(&test_digest(&bytes), &bytes).unwrap_err();
        assert!(
            error.to_string().contains("cannot reach the OCI registry"),
            "{error}"
        );
        assert_eq!(registry.count("POST"), 2);
        assert_eq!(registry.count("PUT"), 2);
    }

    #[test]
    fn a_registry_that_stalls_in_a_body_times_out() {
        use std::io::Write as _;
        // Headers promising a body that never comes.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        std::thread::spawn(move || {
            let mut held = Vec::new();
            for mut stream in listener.incoming().flatten() {
                let mut buffer = [0u8; 4096];
                let _ = stream.read(&mut buffer);
                let _ =
                    stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\nonly this");
                held.push(stream);
            }
        });
        let store = OciContentStore::with_timeouts(
            parse(&format!("oci://127.0.0.1:{port}/cairn")).unwrap(),
            Timeouts {
                body: Duration::from_millis(300),
                ..Timeouts::DEFAULT
            },
        );
        let (done, result) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let read = store
                .open(&test_digest(b"x"))
                .and_then(|mut reader| reader.read_to_end(&mut Vec::new()));
            let _ = done.send(read.map_err(|error| error.kind()));
        });
        let read = result
            .recv_timeout(Duration::from_secs(20))
            .expect("the read of a stalled body did not time out");
        assert!(read.is_err(), "{read:?}");
        // And the agent the store uses for real has every timeout set.
        let timeouts = OciContentStore::new(parse("oci://127.0.0.1:1/cairn").unwrap())
            .agent
            .config()
            .timeouts();
        assert_eq!(timeouts.connect, Some(Duration::from_secs(10)));
        assert_eq!(timeouts.recv_response, Some(Duration::from_secs(60)));
        assert_eq!(timeouts.send_body, Some(Duration::from_secs(600)));
        assert_eq!(timeouts.recv_body, Some(Duration::from_secs(600)));
    }
}
