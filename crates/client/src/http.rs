//! The client's HTTP transport: requests relative to the registry URL, response bodies read
//! under a size limit, and registry error bodies turned into [`ClientError`]s.
//!
//! Every body is read chunk by chunk and counted; a `Content-Length` above the limit is
//! refused before reading, but the count is what enforces the limit, since a hostile server
//! can send more than it announced. This module verifies nothing else: what the bytes mean
//! is checked by the callers.

use std::time::Duration;

use cairn_protocol::api::{ErrorBody, ErrorId, ProofFailure};
use reqwest::{Method, StatusCode, Url};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::{ClientError, SecurityError};
use crate::progress::ProgressSink;

/// How much the client reads from a registry, at most.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The largest JSON body (checkpoints, records, proofs, split manifests).
    pub json_bytes: u64,
    /// The largest content (a whole file, or the joined size of a split manifest).
    pub content_bytes: u64,
}

impl Default for Limits {
    /// 16 MiB of JSON (a manifest of 100,000 blobs fits), 256 MiB of content (the
    /// registry's own default upload limit).
    fn default() -> Self {
        Limits {
            json_bytes: 16 << 20,
            content_bytes: 256 << 20,
        }
    }
}

/// Error bodies are read up to this size; the rest is ignored.
const ERROR_BODY_LIMIT: u64 = 64 << 10;

/// A registry endpoint with limits.
#[derive(Debug, Clone)]
pub(crate) struct Http {
    client: reqwest::Client,
    base: Url,
    pub(crate) limits: Limits,
    token: Option<crate::AuthToken>,
}

/// Why a body could not be read in full.
pub(crate) enum BodyError {
    /// Longer than the limit.
    TooLong,
    /// The connection failed.
    Network(String),
}

impl Http {
    /// A transport for the registry at `url`, trusting the system's roots (and
    /// `SSL_CERT_FILE`, through the platform verifier) and the PEM certificates in
    /// `ca_certificates`.
    pub(crate) fn new(
        url: &str,
        limits: Limits,
        ca_certificates: &[Vec<u8>],
    ) -> Result<Self, ClientError> {
        let bad = |reason: String| ClientError::BadUrl {
            url: url.to_owned(),
            reason,
        };
        let mut base = Url::parse(url).map_err(|e| bad(e.to_string()))?;
        if !matches!(base.scheme(), "http" | "https") {
            return Err(bad("only http and https registries are supported".into()));
        }
        if !base.path().ends_with('/') {
            let path = format!("{}/", base.path());
            base.set_path(&path);
        }
        let mut builder = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .read_timeout(Duration::from_secs(60));
        for pem in ca_certificates {
            let certificates = reqwest::Certificate::from_pem_bundle(pem).map_err(|e| {
                ClientError::BadCaCertificate {
                    reason: error_chain(&e),
                }
            })?;
            if certificates.is_empty() {
                return Err(ClientError::BadCaCertificate {
                    reason: "it holds no PEM certificate".into(),
                });
            }
            builder = builder.tls_certs_merge(certificates);
        }
        let client = builder.build().map_err(|e| bad(e.to_string()))?;
        Ok(Http {
            client,
            base,
            limits,
            token: None,
        })
    }

    /// Sends `token` as a bearer token with every request to the registry's own origin.
    pub(crate) fn with_token(mut self, token: Option<crate::AuthToken>) -> Self {
        self.token = token;
        self
    }

    /// The registry URL, ending with `/`.
    pub(crate) fn base(&self) -> &Url {
        &self.base
    }

    /// `path` (relative, no leading `/`) or an absolute URL, resolved against the registry.
    pub(crate) fn url(&self, path: &str) -> Result<Url, ClientError> {
        self.base.join(path).map_err(|e| ClientError::BadUrl {
            url: path.to_owned(),
            reason: e.to_string(),
        })
    }

    /// Sends a request and returns the response, whatever its status.
    pub(crate) async fn send(
        &self,
        method: Method,
        url: Url,
        body: Option<(Vec<u8>, &str)>,
    ) -> Result<reqwest::Response, ClientError> {
        self.send_with(self.client.request(method, url.clone()), url, body)
            .await
    }

    /// Sends `bytes` as the body, reporting each chunk to `progress` as it is handed to the
    /// connection.
    pub(crate) async fn send_counted(
        &self,
        method: Method,
        url: Url,
        bytes: Vec<u8>,
        content_type: &str,
        progress: &ProgressSink,
    ) -> Result<reqwest::Response, ClientError> {
        const CHUNK: usize = 64 << 10;
        let length = bytes.len();
        let bytes = bytes::Bytes::from(bytes);
        let progress = progress.clone();
        let chunks = (0..length.div_ceil(CHUNK)).map(move |index| {
            let chunk = bytes.slice(index * CHUNK..((index + 1) * CHUNK).min(length));
            progress.advance(chunk.len() as u64);
            Ok::<_, std::convert::Infallible>(chunk)
        });
        let request = self
            .client
            .request(method, url.clone())
            .header(reqwest::header::CONTENT_TYPE, content_type)
            .header(reqwest::header::CONTENT_LENGTH, length)
            .body(reqwest::Body::wrap_stream(futures_util::stream::iter(
                chunks,
            )));
        self.send_with(request, url, None).await
    }

    /// Sends a bodiless request with one extra header (`Accept`, `Accept-Encoding`), whatever
    /// the response's status.
    pub(crate) async fn send_with_header(
        &self,
        method: Method,
        url: Url,
        header: reqwest::header::HeaderName,
        value: &str,
    ) -> Result<reqwest::Response, ClientError> {
        let request = self
            .client
            .request(method, url.clone())
            .header(header, value);
        self.send_with(request, url, None).await
    }

    async fn send_with(
        &self,
        mut request: reqwest::RequestBuilder,
        url: Url,
        body: Option<(Vec<u8>, &str)>,
    ) -> Result<reqwest::Response, ClientError> {
        if let Some(token) = self.token.as_ref() {
            // Never to another origin (a content location elsewhere).
            if url.origin() == self.base.origin() {
                request = request.bearer_auth(&token.0);
            }
        }
        if let Some((bytes, content_type)) = body {
            request = request
                .header(reqwest::header::CONTENT_TYPE, content_type)
                .body(bytes);
        }
        request.send().await.map_err(|e| {
            let reason = error_chain(&e);
            if reason.contains("certificate") {
                ClientError::UntrustedCertificate {
                    url: url.origin().ascii_serialization(),
                    reason: innermost_error(&e),
                }
            } else {
                ClientError::Network {
                    url: url.origin().ascii_serialization(),
                    reason: innermost_error(&e),
                }
            }
        })
    }

    /// A JSON request to `path`; the answer is parsed as `T` when successful.
    pub(crate) async fn json<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&impl Serialize>,
        what: &str,
    ) -> Result<T, ClientError> {
        let body = body.map(|b| {
            (
                serde_json::to_vec(b).expect("request types always serialize"),
                "application/json",
            )
        });
        let response = self.send(method, self.url(path)?, body).await?;
        let bytes = self
            .success_body(response, self.limits.json_bytes, what)
            .await?;
        serde_json::from_slice(&bytes).map_err(|e| ClientError::BadResponse {
            what: what.to_owned(),
            reason: e.to_string(),
        })
    }

    /// GET `path` as JSON.
    pub(crate) async fn get_json<T: DeserializeOwned>(
        &self,
        path: &str,
        what: &str,
    ) -> Result<T, ClientError> {
        self.json(Method::GET, path, None::<&()>, what).await
    }

    /// POST a JSON body to `path` and parse the JSON answer.
    pub(crate) async fn post_json<T: DeserializeOwned>(
        &self,
        path: &str,
        body: &impl Serialize,
        what: &str,
    ) -> Result<T, ClientError> {
        self.json(Method::POST, path, Some(body), what).await
    }

    /// The body of a successful response, at most `limit` bytes; an error response becomes
    /// [`ClientError::Registry`].
    pub(crate) async fn success_body(
        &self,
        response: reqwest::Response,
        limit: u64,
        what: &str,
    ) -> Result<Vec<u8>, ClientError> {
        if !response.status().is_success() {
            return Err(registry_error(response, what).await);
        }
        self.success_body_counted(response, limit, what, None).await
    }

    /// [`Http::success_body`], reporting each chunk received to `progress`.
    pub(crate) async fn success_body_counted(
        &self,
        response: reqwest::Response,
        limit: u64,
        what: &str,
        progress: Option<&ProgressSink>,
    ) -> Result<Vec<u8>, ClientError> {
        if !response.status().is_success() {
            return Err(registry_error(response, what).await);
        }
        let url = response.url().to_string();
        read_body(response, limit, progress)
            .await
            .map_err(|e| match e {
                BodyError::TooLong => SecurityError::OversizedResponse {
                    what: what.to_owned(),
                    limit,
                }
                .into(),
                BodyError::Network(reason) => ClientError::Network { url, reason },
            })
    }
}

/// Reads a body, refusing more than `limit` bytes whatever `Content-Length` says, and
/// reporting each chunk to `progress` as it arrives.
pub(crate) async fn read_body(
    mut response: reqwest::Response,
    limit: u64,
    progress: Option<&ProgressSink>,
) -> Result<Vec<u8>, BodyError> {
    if response
        .content_length()
        .is_some_and(|length| length > limit)
    {
        return Err(BodyError::TooLong);
    }
    let mut body = Vec::with_capacity(
        response
            .content_length()
            .unwrap_or(0)
            .min(limit)
            .min(1 << 20) as usize,
    );
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| BodyError::Network(error_chain(&e)))?
    {
        if body.len() as u64 + chunk.len() as u64 > limit {
            return Err(BodyError::TooLong);
        }
        body.extend_from_slice(&chunk);
        if let Some(progress) = progress {
            progress.advance(chunk.len() as u64);
        }
    }
    Ok(body)
}

/// Turns an error response into [`ClientError::Registry`], with the registry's explanation.
pub(crate) async fn registry_error(response: reqwest::Response, what: &str) -> ClientError {
    let status = response.status();
    let body = read_body(response, ERROR_BODY_LIMIT, None)
        .await
        .unwrap_or_default();
    let (kind, message) = match serde_json::from_slice::<ErrorBody>(&body) {
        Ok(ErrorBody::Typed { kind, id, .. }) => {
            let id = match id {
                ErrorId::Number(n) => n.to_string(),
                ErrorId::Text(text) => text,
            };
            let message = format!("unknown or conflicting {kind} {id}");
            (Some(kind), message)
        }
        Ok(ErrorBody::Proof { failure, .. }) => (
            None,
            match failure {
                ProofFailure::PackageNotIncluded { log_id } => {
                    format!("log {log_id} is not in the map")
                }
                ProofFailure::IncorrectProof { root, found } => {
                    format!("incorrect proof: root {root}, found {found}")
                }
                ProofFailure::Failure { message } => message,
            },
        ),
        Ok(ErrorBody::Message { message, .. }) => (None, message),
        Ok(ErrorBody::Status { .. }) | Err(_) => {
            let text = String::from_utf8_lossy(&body);
            let text = text.trim();
            let message = if text.is_empty() {
                status
                    .canonical_reason()
                    .unwrap_or("no explanation")
                    .to_owned()
            } else {
                text.chars().take(500).collect()
            };
            (None, message)
        }
    };
    ClientError::Registry {
        what: what.to_owned(),
        status: status.as_u16(),
        kind,
        message,
    }
}

/// Whether `error` is the registry's 404.
pub(crate) fn is_not_found(error: &ClientError) -> bool {
    matches!(error, ClientError::Registry { status, .. } if *status == StatusCode::NOT_FOUND.as_u16())
}

/// What an error's deepest source says (TLS's own words, without the layers above it).
fn innermost_error(error: &dyn std::error::Error) -> String {
    let mut inner = error;
    while let Some(source) = inner.source() {
        inner = source;
    }
    inner.to_string()
}

/// An error and its sources, as one line.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(inner) = source {
        text.push_str(": ");
        text.push_str(&inner.to_string());
        source = inner.source();
    }
    text
}
