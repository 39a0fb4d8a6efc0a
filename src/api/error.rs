//! The one API error type: every failure becomes LangGraph's `{"detail": "…"}` with the
//! right status, here and nowhere else.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::schedule::ScheduleError;
use crate::store;

#[derive(Debug, thiserror::Error)]
#[error("{detail}")]
pub struct ApiError {
    pub status: StatusCode,
    pub detail: String,
}

pub type ApiResult<T> = Result<T, ApiError>;

/// The body of every error answer, as LangGraph words them.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// What went wrong, for a person to read.
    pub detail: String,
}

impl ApiError {
    pub fn new(status: StatusCode, detail: impl Into<String>) -> Self {
        ApiError {
            status,
            detail: detail.into(),
        }
    }

    /// 422: the request is well-formed JSON but its content is invalid.
    pub fn invalid(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, detail)
    }

    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, detail)
    }

    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, detail)
    }
}

impl From<store::Error> for ApiError {
    fn from(err: store::Error) -> Self {
        match err {
            store::Error::NotFound(detail) => ApiError::not_found(detail),
            store::Error::Conflict(detail) => ApiError::new(StatusCode::CONFLICT, detail),
            store::Error::LimitReached(detail) | store::Error::Invalid(detail) => {
                ApiError::invalid(detail)
            }
            err if err.is_disk_full() => {
                tracing::error!(error = %err, "the database's disk is full");
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "The database's disk is full; writes resume once space is freed",
                )
            }
            err if err.is_unavailable() => {
                tracing::warn!(error = %err, "database unavailable");
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "The database is unavailable; retry shortly",
                )
            }
            err @ (store::Error::Unreachable(_) | store::Error::InUse(_) | store::Error::Db(_)) => {
                tracing::error!(error = %err, "database error");
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "Internal database error")
            }
        }
    }
}

impl From<ScheduleError> for ApiError {
    fn from(err: ScheduleError) -> Self {
        ApiError::invalid(err.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (
            self.status,
            Json(ErrorBody {
                detail: self.detail,
            }),
        )
            .into_response()
    }
}
