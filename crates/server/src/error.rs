//! The one error type of the HTTP API, and the one place that turns errors into responses:
//! the status code and the typed JSON body the reference client expects.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use cairn_protocol::api::{ErrorBody, ErrorId, ProofFailure};

/// An API error.
#[derive(Debug)]
pub enum ApiError {
    /// `{"status", "message"}` with any status.
    Message(StatusCode, String),
    /// `{"status", "type", "id"}`: an entity not found (404) or in conflict (409).
    Typed(StatusCode, &'static str, ErrorId),
    /// `{"status": 422, "reason", ...}`.
    Proof(ProofFailure),
    /// `{"status"}` alone.
    Status(StatusCode),
    /// A server fault; the details go to the log, not the client.
    Internal(String),
}

impl ApiError {
    /// 404 for an entity of `kind` named by `id`.
    pub fn not_found(kind: &'static str, id: impl ToString) -> Self {
        ApiError::Typed(StatusCode::NOT_FOUND, kind, ErrorId::Text(id.to_string()))
    }

    /// 404 for a number (a log length, a leaf).
    pub fn not_found_number(kind: &'static str, id: u64) -> Self {
        ApiError::Typed(StatusCode::NOT_FOUND, kind, ErrorId::Number(id))
    }

    /// 400 with a message.
    pub fn bad_request(message: impl Into<String>) -> Self {
        ApiError::Message(StatusCode::BAD_REQUEST, message.into())
    }

    /// An I/O failure: 507 when the disk is full (the request can be made again once there is
    /// room), a server fault otherwise.
    pub fn from_io(error: std::io::Error) -> Self {
        if is_disk_full(&error) {
            ApiError::disk_full()
        } else {
            ApiError::Internal(error.to_string())
        }
    }

    /// 507: the registry has no room to store what the request brings.
    pub fn disk_full() -> Self {
        tracing::warn!("a request failed because the disk is full");
        ApiError::Message(
            StatusCode::INSUFFICIENT_STORAGE,
            "the registry's disk is full; nothing of this request was kept, try again later".into(),
        )
    }

    /// 422 proof failure with a message.
    pub fn proof_failure(message: impl Into<String>) -> Self {
        ApiError::Proof(ProofFailure::Failure {
            message: message.into(),
        })
    }
}

pub use cairn_store::is_disk_full;

/// Whether `error`, or an error it stems from, says the disk is full.
pub fn stems_from_full_disk(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut next = Some(error);
    while let Some(error) = next {
        if error
            .downcast_ref::<std::io::Error>()
            .is_some_and(is_disk_full)
            || error
                .downcast_ref::<cairn_store::StoreError>()
                .is_some_and(cairn_store::StoreError::is_disk_full)
        {
            return true;
        }
        next = error.source();
    }
    false
}

/// Any other error is the server's fault (500), unless the disk is full (507).
impl<E: std::fmt::Display> From<E> for ApiError
where
    E: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    fn from(error: E) -> Self {
        let error: Box<dyn std::error::Error + Send + Sync> = error.into();
        if stems_from_full_disk(&*error) {
            ApiError::disk_full()
        } else {
            ApiError::Internal(error.to_string())
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, body) = match self {
            ApiError::Message(status, message) => (
                status,
                ErrorBody::Message {
                    status: status.as_u16(),
                    message,
                },
            ),
            ApiError::Typed(status, kind, id) => (
                status,
                ErrorBody::Typed {
                    status: status.as_u16(),
                    kind: kind.to_owned(),
                    id,
                },
            ),
            ApiError::Proof(failure) => {
                let status = StatusCode::UNPROCESSABLE_ENTITY;
                (
                    status,
                    ErrorBody::Proof {
                        status: status.as_u16(),
                        failure,
                    },
                )
            }
            ApiError::Status(status) => (
                status,
                ErrorBody::Status {
                    status: status.as_u16(),
                },
            ),
            ApiError::Internal(message) => {
                tracing::error!(%message, "internal error");
                let status = StatusCode::INTERNAL_SERVER_ERROR;
                (
                    status,
                    ErrorBody::Message {
                        status: status.as_u16(),
                        message: "internal server error".into(),
                    },
                )
            }
        };
        (status, Json(body)).into_response()
    }
}
