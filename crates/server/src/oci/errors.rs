//! The errors of the OCI API: the distribution spec's JSON error body, with its code, for
//! every failure, and the answers to what no route takes.

use axum::http::{header, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// An error as the distribution spec writes it: `{"errors":[{"code","message","detail"}]}`.
#[derive(Debug)]
pub(super) struct OciError {
    pub(super) status: StatusCode,
    pub(super) code: &'static str,
    pub(super) message: String,
    pub(super) detail: serde_json::Value,
}

impl OciError {
    pub(super) fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        OciError {
            status,
            code,
            message: message.into(),
            detail: serde_json::Value::Null,
        }
    }

    pub(super) fn with_detail(mut self, detail: serde_json::Value) -> Self {
        self.detail = detail;
        self
    }

    pub(super) fn name_unknown(repository: &str) -> Self {
        OciError::new(
            StatusCode::NOT_FOUND,
            "NAME_UNKNOWN",
            "repository name not known to registry",
        )
        .with_detail(serde_json::json!({ "name": repository }))
    }

    pub(super) fn manifest_unknown(reference: &str) -> Self {
        OciError::new(
            StatusCode::NOT_FOUND,
            "MANIFEST_UNKNOWN",
            "manifest unknown to registry",
        )
        .with_detail(serde_json::json!({ "reference": reference }))
    }

    pub(super) fn blob_unknown(digest: &str) -> Self {
        OciError::new(
            StatusCode::NOT_FOUND,
            "BLOB_UNKNOWN",
            "blob unknown to registry",
        )
        .with_detail(serde_json::json!({ "digest": digest }))
    }

    /// A failure answered by its kind (see [`crate::error::failure_kind`]): 507 when the disk
    /// is full, 503 when the request can simply be sent again, 409 for a conflict with what
    /// is stored, and otherwise a server fault, whose details go to the log, not the client.
    pub(super) fn internal(error: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        use cairn_store::StoreErrorKind;
        let error: Box<dyn std::error::Error + Send + Sync> = error.into();
        let kind = crate::error::failure_kind(&*error);
        let status = match kind {
            StoreErrorKind::DiskFull => {
                tracing::warn!("an OCI request failed because the disk is full");
                StatusCode::INSUFFICIENT_STORAGE
            }
            StoreErrorKind::Retryable => {
                tracing::warn!(%error, "an OCI request failed for a reason that may pass");
                StatusCode::SERVICE_UNAVAILABLE
            }
            StoreErrorKind::Conflict => StatusCode::CONFLICT,
            StoreErrorKind::Fault => {
                tracing::error!(%error, "internal error serving OCI");
                StatusCode::INTERNAL_SERVER_ERROR
            }
        };
        OciError::new(
            status,
            "UNKNOWN",
            crate::error::failure_message(kind, &error),
        )
    }
}

#[derive(Serialize)]
pub(super) struct ErrorsBody<'a> {
    pub(super) errors: [ErrorEntry<'a>; 1],
}

#[derive(Serialize)]
pub(super) struct ErrorEntry<'a> {
    pub(super) code: &'a str,
    pub(super) message: &'a str,
    pub(super) detail: &'a serde_json::Value,
}

impl IntoResponse for OciError {
    fn into_response(self) -> Response {
        let body = ErrorsBody {
            errors: [ErrorEntry {
                code: self.code,
                message: &self.message,
                detail: &self.detail,
            }],
        };
        let json = serde_json::to_vec(&body).expect("error bodies serialise");
        (
            self.status,
            [(header::CONTENT_TYPE, "application/json")],
            json,
        )
            .into_response()
    }
}

/// An OCI error answer for an error that came without a body (or with a plain-text one)
/// from a layer below the handlers, such as a rejected path or body.
pub(crate) fn generic_error(status: StatusCode, message: String) -> Response {
    let code = match status {
        StatusCode::UNAUTHORIZED => "UNAUTHORIZED",
        StatusCode::FORBIDDEN => "DENIED",
        StatusCode::NOT_FOUND => "NAME_UNKNOWN",
        StatusCode::METHOD_NOT_ALLOWED => "UNSUPPORTED",
        StatusCode::PAYLOAD_TOO_LARGE => "SIZE_INVALID",
        StatusCode::TOO_MANY_REQUESTS => "TOOMANYREQUESTS",
        _ => "UNKNOWN",
    };
    OciError::new(status, code, message).into_response()
}

/// Any path no route matches (the fallback of the whole server). Under `/v2/` it is an OCI
/// error (repository names here have two components, `<ns>/<name>`); elsewhere a plain 404.
pub(super) async fn not_found(uri: axum::http::Uri) -> Response {
    if !uri.path().starts_with("/v2/") {
        return StatusCode::NOT_FOUND.into_response();
    }
    OciError::new(
        StatusCode::NOT_FOUND,
        "NAME_UNKNOWN",
        "no such repository or endpoint: repositories of this registry are named <namespace>/<name>",
    )
    .with_detail(serde_json::json!({ "path": uri.path() }))
    .into_response()
}

/// A method the path does not take.
pub(super) async fn method_not_allowed(method: Method) -> OciError {
    OciError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "UNSUPPORTED",
        "the operation is unsupported on this path",
    )
    .with_detail(serde_json::json!({ "method": method.as_str() }))
}

pub(super) async fn unsupported(method: Method) -> OciError {
    OciError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "UNSUPPORTED",
        "this registry is read-only over OCI: publish with the warg API",
    )
    .with_detail(serde_json::json!({ "method": method.as_str() }))
}

pub(super) fn fail(error: OciError) -> Response {
    error.into_response()
}

pub(super) fn internal(error: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Response {
    OciError::internal(error).into_response()
}

pub(super) type Answer = Result<Response, Response>;
