//! The one error type of the HTTP API, and the one place that turns errors into responses:
//! the status code and the typed JSON body the reference client expects.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use cairn_protocol::api::{ErrorBody, ErrorId, ProofFailure};
use cairn_store::{StoreError, StoreErrorKind};

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

    /// An I/O failure, answered by its kind like any other (see [`failure_kind`]): 507 when
    /// the disk is full (the request can be made again once there is room), a server fault
    /// otherwise.
    pub fn from_io(error: std::io::Error) -> Self {
        ApiError::from(error)
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

/// What a failure means for the request that met it: the kind of the store error it stems
/// from, or of a full disk; any other failure is the server's fault.
pub fn failure_kind(error: &(dyn std::error::Error + 'static)) -> StoreErrorKind {
    let mut next = Some(error);
    while let Some(error) = next {
        if let Some(io) = error.downcast_ref::<std::io::Error>() {
            if is_disk_full(io) {
                return StoreErrorKind::DiskFull;
            }
            // An I/O error made of another error: look at that one (its `source` skips it).
            if let Some(inner) = io.get_ref() {
                next = Some(inner);
                continue;
            }
        }
        if let Some(store) = error.downcast_ref::<StoreError>() {
            return store.kind();
        }
        next = error.source();
    }
    StoreErrorKind::Fault
}

/// The message a client gets for a failure of `kind` (a conflict says what conflicts).
pub fn failure_message(kind: StoreErrorKind, error: &dyn std::fmt::Display) -> String {
    match kind {
        StoreErrorKind::DiskFull => {
            "the registry's disk is full; nothing of this request was kept, try again later".into()
        }
        StoreErrorKind::Retryable => {
            "the registry could not store this just now; nothing of this request was kept, \
             send it again"
                .into()
        }
        StoreErrorKind::Conflict => error.to_string(),
        StoreErrorKind::Fault => "internal server error".into(),
    }
}

/// Other errors, by their kind (see [`failure_kind`]): 507 when the disk is full, 503 when
/// the request can simply be sent again, 409 for a conflict with what is stored, and
/// otherwise the server's fault (500, its details logged).
impl<E: std::fmt::Display> From<E> for ApiError
where
    E: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    fn from(error: E) -> Self {
        let error: Box<dyn std::error::Error + Send + Sync> = error.into();
        let kind = failure_kind(&*error);
        match kind {
            StoreErrorKind::DiskFull => ApiError::disk_full(),
            StoreErrorKind::Retryable => {
                tracing::warn!(%error, "a request failed for a reason that may pass");
                ApiError::Message(
                    StatusCode::SERVICE_UNAVAILABLE,
                    failure_message(kind, &error),
                )
            }
            StoreErrorKind::Conflict => {
                ApiError::Message(StatusCode::CONFLICT, failure_message(kind, &error))
            }
            StoreErrorKind::Fault => ApiError::Internal(error.to_string()),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn status_of(error: impl Into<ApiError>) -> (u16, String) {
        let response = error.into().into_response();
        let status = response.status().as_u16();
        let body = futures_util::FutureExt::now_or_never(axum::body::to_bytes(
            response.into_body(),
            1 << 16,
        ))
        .expect("a body in memory")
        .unwrap();
        (status, String::from_utf8(body.to_vec()).unwrap())
    }

    #[test]
    fn store_errors_are_answered_by_their_kind() {
        let (status, body) = status_of(StoreError::NameConflict {
            requested: "example:Hello".into(),
            existing: "example:hello".into(),
        });
        assert_eq!(status, 409);
        assert!(
            body.contains("conflicts with the existing package example:hello"),
            "{body}"
        );

        assert_eq!(status_of(StoreError::PublisherExists("ci".into())).0, 409);
        assert_eq!(status_of(StoreError::DiskFull("no room".into())).0, 507);
        let not_durable = StoreError::NotDurable {
            message: "fsync failed".into(),
            disk_full: false,
        };
        let (status, body) = status_of(not_durable);
        assert_eq!(status, 503);
        assert!(body.contains("send it again"), "{body}");
        let (status, body) = status_of(StoreError::Corrupt("a row that does not parse".into()));
        assert_eq!(status, 500);
        assert!(
            !body.contains("parse"),
            "the details stay in the log: {body}"
        );
    }

    #[test]
    fn a_full_disk_is_found_under_other_errors() {
        let io = std::io::Error::from_raw_os_error(28);
        assert_eq!(status_of(io).0, 507);
        let wrapped = std::io::Error::other(StoreError::DiskFull("no room".into()));
        assert_eq!(status_of(wrapped).0, 507);
        assert_eq!(status_of(std::io::Error::other("anything else")).0, 500);
    }
}
