//! What stands in front of the routes: the service `cairn serve` runs, which answers CORS
//! preflights and requests for another registry, routes every other request to its one
//! handler, gives every error a JSON body, and logs failed requests.

use axum::body::Body;
use axum::extract::Request;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;

use crate::app::AppState;
use crate::error::ApiError;

/// Builds the service `cairn serve` runs: the routes, behind [`Front`]. OCI pushes follow
/// `push`.
pub fn service(app: AppState, push: crate::oci::PushSettings) -> Front {
    Front {
        router: router(app.clone(), push),
        app,
    }
}

/// Builds the router: the warg API's routes and the OCI API's, each request to its one
/// handler.
fn router(app: AppState, push: crate::oci::PushSettings) -> Router {
    crate::api::routes()
        .merge(crate::operations::routes())
        .merge(crate::oci::router(app.clone()).layer(axum::Extension(push)))
        .with_state(app)
}

/// What every request passes before routing: a CORS preflight (any `OPTIONS` request) is
/// answered; a `Warg-Registry` header naming another registry gets the reference's 501 (one
/// naming this registry is accepted, where the reference refuses every one); and every answer
/// lets pages of any origin read it. One service in front of the router rather than router
/// layers, which axum clones, layer by layer, for each request: in the publish benchmark those
/// clones took about 5% of the server's CPU per record.
#[derive(Clone)]
pub struct Front {
    router: Router,
    app: AppState,
}

impl tower_service::Service<Request> for Front {
    type Response = Response;
    type Error = std::convert::Infallible;
    type Future =
        std::pin::Pin<Box<dyn std::future::Future<Output = Result<Response, Self::Error>> + Send>>;

    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let seen = RequestSeen::new(&request);
        let early = if request.method() == Method::OPTIONS {
            Some(preflight_answer())
        } else if names_another_registry(&self.app, request.headers()) {
            Some(
                ApiError::Message(
                    StatusCode::NOT_IMPLEMENTED,
                    "`Warg-Registry` header is not supported".into(),
                )
                .into_response(),
            )
        } else {
            None
        };
        if let Some(mut response) = early {
            allow_any_origin(response.headers_mut());
            seen.answered(response.status(), &self.app.metrics);
            return Box::pin(std::future::ready(Ok(response)));
        }
        let is_head = request.method() == Method::HEAD;
        let is_oci = request.uri().path() == "/v2" || request.uri().path().starts_with("/v2/");
        let answer = tower_service::Service::call(&mut self.router, request);
        let metrics = self.app.metrics.clone();
        Box::pin(async move {
            let mut response = answer.await?;
            if response.status().as_u16() >= 400 && !is_head && !has_json_body(&response) {
                response = with_json_error_body(response, is_oci).await;
            }
            allow_any_origin(response.headers_mut());
            seen.answered(response.status(), &metrics);
            Ok(response)
        })
    }
}

/// A request as the server's log names it if it fails: one line per failed request, with its
/// method, path, status and time (`warn` for the server's own failures, `info` for a client's
/// errors, `debug` for a `HEAD` that finds nothing, which is how clients ask whether a blob
/// exists). Events of the target `cairn_server::requests`.
struct RequestSeen {
    method: Method,
    uri: axum::http::Uri,
    started: std::time::Instant,
}

impl RequestSeen {
    fn new(request: &Request) -> Self {
        RequestSeen {
            method: request.method().clone(),
            uri: request.uri().clone(),
            started: std::time::Instant::now(),
        }
    }

    /// Counts the request in `metrics`, and logs it if it failed.
    fn answered(&self, status: StatusCode, metrics: &crate::metrics::Metrics) {
        let seconds = self.started.elapsed().as_secs_f64();
        metrics.request(&self.method, self.uri.path(), status.as_u16(), seconds);
        if status.as_u16() < 400 {
            return;
        }
        let (method, path, status) = (self.method.as_str(), self.uri.path(), status.as_u16());
        let ms = seconds * 1000.0;
        let ms = (ms * 10.0).round() / 10.0;
        if status >= 500 {
            tracing::warn!(target: "cairn_server::requests", method, path, status, ms, "request failed");
        } else if status == 404 && self.method == Method::HEAD {
            tracing::debug!(target: "cairn_server::requests", method, path, status, ms, "request failed");
        } else {
            tracing::info!(target: "cairn_server::requests", method, path, status, ms, "request failed");
        }
    }
}

/// Whether an answer's body is JSON (`application/json` or a `+json` type).
fn has_json_body(response: &Response) -> bool {
    response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or("").trim())
        .is_some_and(|v| v.eq_ignore_ascii_case("application/json") || v.ends_with("+json"))
}

/// Gives an error answer that has no JSON body (the router's own 404 and 405, a rejected
/// path parameter or body, in plain text or empty) the JSON error body of its API: the
/// distribution spec's under `/v2/`, `docs/api.md`'s elsewhere. Its text, if any, becomes
/// the message.
async fn with_json_error_body(response: Response, is_oci: bool) -> Response {
    let (mut parts, body) = response.into_parts();
    let text = axum::body::to_bytes(body, 16 * 1024)
        .await
        .ok()
        .and_then(|bytes| String::from_utf8(bytes.to_vec()).ok())
        .map(|text| text.trim().to_owned())
        .filter(|text| !text.is_empty());
    let status = parts.status;
    let message = text.unwrap_or_else(|| match status {
        StatusCode::NOT_FOUND => "the requested resource was not found".to_owned(),
        StatusCode::METHOD_NOT_ALLOWED => {
            let allowed = parts
                .headers
                .get(header::ALLOW)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_owned();
            if allowed.is_empty() {
                "this method is not allowed here".to_owned()
            } else {
                format!("this method is not allowed here; allowed: {allowed}")
            }
        }
        other => other
            .canonical_reason()
            .unwrap_or("the request failed")
            .to_ascii_lowercase(),
    });
    let answer = if is_oci {
        crate::oci::generic_error(status, message)
    } else {
        ApiError::Message(status, message).into_response()
    };
    let (answer_parts, body) = answer.into_parts();
    parts.headers.remove(header::CONTENT_LENGTH);
    for (name, value) in &answer_parts.headers {
        parts.headers.insert(name, value.clone());
    }
    Response::from_parts(parts, body)
}

/// The answer to a CORS preflight: pages may send GET and POST requests with JSON bodies.
fn preflight_answer() -> Response {
    let mut response = Response::new(Body::empty());
    let headers = response.headers_mut();
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("GET,POST"),
    );
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static("content-type,accept"),
    );
    response
}

/// Lets pages of any origin read an answer; says that answers depend on the CORS request
/// headers (added to any `Vary` the answer has, not in place of it).
fn allow_any_origin(headers: &mut HeaderMap) {
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    headers.append(
        header::VARY,
        HeaderValue::from_static(
            "origin, access-control-request-method, access-control-request-headers",
        ),
    );
}

/// Whether a `Warg-Registry` header names a registry other than this one.
fn names_another_registry(app: &AppState, headers: &HeaderMap) -> bool {
    let Some(value) = headers.get("warg-registry") else {
        return false;
    };
    let named = value.to_str().unwrap_or("").trim().trim_end_matches('/');
    !app.settings
        .registry_names
        .iter()
        .any(|name| name.eq_ignore_ascii_case(named))
}

// ---------------------------------------------------------------------------------------
// Plumbing: JSON bodies, path parameters.
