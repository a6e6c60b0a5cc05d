//! The one error type. Each variant maps once to an HTTP status and to a
//! GraphQL `extensions.code`; server-side details are logged, never sent.

use axum::{
    Json,
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};

pub type AppResult<T> = Result<T, AppError>;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("authentication required")]
    Unauthenticated,
    /// Credentials were sent and refused: the message says why (never the
    /// token itself).
    #[error("authentication required: {0}")]
    InvalidToken(String),
    #[error("not allowed")]
    Forbidden,
    /// Not allowed, and the message says why and what to do.
    #[error("not allowed: {0}")]
    Denied(String),
    #[error("not found")]
    NotFound,
    /// The message is shown to the client: write it for them.
    #[error("{0}")]
    BadInput(String),
    #[error("payload too large: the limit is {limit} bytes")]
    PayloadTooLarge { limit: u64 },
    /// The caller has as many requests running as they may; the client can
    /// retry once one has finished.
    #[error(
        "you have {limit} GraphQL requests running, the most one caller may have at once: \
         retry when one has finished"
    )]
    TooManyRequests { limit: usize },
    /// ClamAV found `signature` in an upload; nothing of it was kept.
    #[error("virus detected: {signature}; the file was not stored")]
    VirusDetected { signature: String },
    /// The virus scanner could not give a verdict (unreachable, timed out,
    /// or refused the stream): the upload fails closed.
    #[error("the virus scanner is unavailable; the file was not stored")]
    ScannerUnavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error("storage is unavailable")]
    StorageUnavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error("the database is unavailable")]
    DatabaseUnavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error("internal error")]
    Internal(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl AppError {
    pub fn denied(why: impl Into<String>) -> Self {
        AppError::Denied(why.into())
    }

    /// Whether this is a refusal (`FORBIDDEN`), with or without a reason.
    pub fn is_forbidden(&self) -> bool {
        matches!(self, AppError::Forbidden | AppError::Denied(_))
    }

    pub fn bad_input(msg: impl Into<String>) -> Self {
        AppError::BadInput(msg.into())
    }

    pub fn internal(e: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        AppError::Internal(e.into())
    }

    /// The error of a lookup that several callers shared (a cache load):
    /// the same kind of error for each of them.
    pub fn shared(e: std::sync::Arc<AppError>) -> Self {
        match &*e {
            AppError::Unauthenticated => AppError::Unauthenticated,
            AppError::InvalidToken(r) => AppError::InvalidToken(r.clone()),
            AppError::Forbidden => AppError::Forbidden,
            AppError::Denied(why) => AppError::Denied(why.clone()),
            AppError::NotFound => AppError::NotFound,
            AppError::BadInput(m) => AppError::BadInput(m.clone()),
            AppError::PayloadTooLarge { limit } => AppError::PayloadTooLarge { limit: *limit },
            AppError::TooManyRequests { limit } => AppError::TooManyRequests { limit: *limit },
            AppError::VirusDetected { signature } => AppError::VirusDetected {
                signature: signature.clone(),
            },
            AppError::ScannerUnavailable(_) => AppError::ScannerUnavailable(Box::new(e)),
            AppError::StorageUnavailable(_) => AppError::StorageUnavailable(Box::new(e)),
            AppError::DatabaseUnavailable(_) => AppError::DatabaseUnavailable(Box::new(e)),
            AppError::Internal(_) => AppError::Internal(Box::new(e)),
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            AppError::Unauthenticated | AppError::InvalidToken(_) => "UNAUTHENTICATED",
            AppError::Forbidden | AppError::Denied(_) => "FORBIDDEN",
            AppError::NotFound => "NOT_FOUND",
            // The contract has no code of its own for it: it is the
            // client's to fix, by sending fewer requests at once.
            AppError::BadInput(_) | AppError::TooManyRequests { .. } => "BAD_USER_INPUT",
            AppError::PayloadTooLarge { .. } => "PAYLOAD_TOO_LARGE",
            AppError::VirusDetected { .. } => "VIRUS_DETECTED",
            AppError::ScannerUnavailable(_) => "SCANNER_UNAVAILABLE",
            AppError::StorageUnavailable(_) => "STORAGE_UNAVAILABLE",
            AppError::DatabaseUnavailable(_) => "DATABASE_UNAVAILABLE",
            AppError::Internal(_) => "INTERNAL",
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            AppError::Unauthenticated | AppError::InvalidToken(_) => StatusCode::UNAUTHORIZED,
            AppError::Forbidden | AppError::Denied(_) => StatusCode::FORBIDDEN,
            AppError::NotFound => StatusCode::NOT_FOUND,
            AppError::BadInput(_) => StatusCode::BAD_REQUEST,
            AppError::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            AppError::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            // The request was well-formed and understood; its content is
            // what is refused, and sending it again will not help (400 is
            // for malformed input, BAD_USER_INPUT).
            AppError::VirusDetected { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            AppError::ScannerUnavailable(_)
            | AppError::StorageUnavailable(_)
            | AppError::DatabaseUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            AppError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// Logs what the client will not see. Called once, where the error
    /// leaves the server.
    pub fn log(&self) {
        match self {
            AppError::VirusDetected { signature } => {
                tracing::warn!(signature = %signature, "upload refused: virus detected")
            }
            AppError::ScannerUnavailable(e) => {
                tracing::error!(error = %e, "virus scanner unavailable")
            }
            AppError::StorageUnavailable(e) => tracing::error!(error = %e, "storage unavailable"),
            AppError::DatabaseUnavailable(e) => tracing::error!(error = %e, "database unavailable"),
            AppError::Internal(e) => tracing::error!(error = %e, "internal error"),
            _ => {}
        }
    }

    /// The JSON body used by the REST routes.
    pub fn body(&self) -> serde_json::Value {
        serde_json::json!({ "error": { "code": self.code(), "message": self.to_string() } })
    }
}

impl From<sea_orm::DbErr> for AppError {
    /// A database that cannot be reached (no connection within the acquire
    /// timeout, a refused or dropped connection, a statement cut by the
    /// server's timeout) is unavailable: 503, so clients and balancers retry
    /// elsewhere. Anything else is a bug or bad data: internal.
    fn from(e: sea_orm::DbErr) -> Self {
        if database_unreachable(&e) {
            AppError::DatabaseUnavailable(Box::new(e))
        } else {
            AppError::Internal(Box::new(e))
        }
    }
}

fn database_unreachable(e: &sea_orm::DbErr) -> bool {
    use sea_orm::{DbErr, RuntimeErr, SqlxError};
    let sqlx = match e {
        // No connection could be had or made, whatever the driver said.
        DbErr::ConnectionAcquire(_) | DbErr::Conn(_) => return true,
        DbErr::Exec(RuntimeErr::SqlxError(e)) | DbErr::Query(RuntimeErr::SqlxError(e)) => e,
        _ => return false,
    };
    match &**sqlx {
        SqlxError::Io(_)
        | SqlxError::PoolTimedOut
        | SqlxError::PoolClosed
        | SqlxError::WorkerCrashed
        | SqlxError::Tls(_) => true,
        // PostgreSQL: 57014 query_canceled (statement_timeout), class 08
        // connection exceptions, 57P01-57P03 shutdown and cannot connect now.
        SqlxError::Database(db) => db.code().is_some_and(|code| {
            code == "57014" || code.starts_with("08") || code.starts_with("57P")
        }),
        _ => false,
    }
}

impl From<sea_orm::TransactionError<AppError>> for AppError {
    fn from(e: sea_orm::TransactionError<AppError>) -> Self {
        match e {
            sea_orm::TransactionError::Connection(e) => e.into(),
            sea_orm::TransactionError::Transaction(e) => e,
        }
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        self.log();
        let mut response = (self.status(), Json(self.body())).into_response();
        match self {
            AppError::Unauthenticated => {
                response
                    .headers_mut()
                    .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            AppError::InvalidToken(reason) => {
                response
                    .headers_mut()
                    .insert(header::WWW_AUTHENTICATE, invalid_token_challenge(&reason));
            }
            AppError::TooManyRequests { .. } => {
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            }
            _ => {}
        }
        response
    }
}

/// The error type of every resolver.
///
/// It deliberately does not implement `Display`: async-graphql converts any
/// `Display` type into an error carrying its text, which is how internal
/// messages leak. Only this conversion builds GraphQL errors.
#[derive(Clone)]
pub struct GqlError(async_graphql::Error);

pub type GqlResult<T> = Result<T, GqlError>;

/// RFC 6750 §3: `Bearer error="invalid_token", error_description="…"`. The
/// description may hold only printable ASCII other than `"` and `\`.
pub fn invalid_token_challenge(reason: &str) -> HeaderValue {
    let description: String = reason
        .chars()
        .map(|c| match c {
            '"' | '\\' => '\'',
            c if (' '..='~').contains(&c) => c,
            _ => '?',
        })
        .collect();
    HeaderValue::from_str(&format!(
        "Bearer error=\"invalid_token\", error_description=\"{description}\""
    ))
    .unwrap_or_else(|_| HeaderValue::from_static("Bearer error=\"invalid_token\""))
}

impl From<AppError> for GqlError {
    fn from(e: AppError) -> Self {
        e.log();
        let code = e.code();
        let reason = match &e {
            AppError::InvalidToken(reason) => Some(reason.clone()),
            _ => None,
        };
        GqlError(
            async_graphql::Error::new(e.to_string()).extend_with(|_, ext| {
                ext.set("code", code);
                if let Some(reason) = &reason {
                    ext.set("reason", reason.as_str());
                }
            }),
        )
    }
}

impl From<sea_orm::DbErr> for GqlError {
    fn from(e: sea_orm::DbErr) -> Self {
        AppError::from(e).into()
    }
}

impl From<GqlError> for async_graphql::Error {
    fn from(e: GqlError) -> Self {
        e.0
    }
}

use async_graphql::ErrorExtensions as _;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_errors_do_not_reach_graphql_clients() {
        let secret = std::io::Error::other("password=hunter2 at db.internal:5432");
        let gql: async_graphql::Error = GqlError::from(AppError::internal(secret)).into();
        assert_eq!(gql.message, "internal error");
        let ext = serde_json::to_value(gql.extensions.unwrap()).unwrap();
        assert_eq!(ext["code"], "INTERNAL");
    }

    #[test]
    fn every_variant_has_a_code_and_a_status() {
        let cases = [
            (AppError::Unauthenticated, "UNAUTHENTICATED", 401),
            (
                AppError::InvalidToken("the token has expired".into()),
                "UNAUTHENTICATED",
                401,
            ),
            (AppError::Forbidden, "FORBIDDEN", 403),
            (AppError::denied("why"), "FORBIDDEN", 403),
            (AppError::NotFound, "NOT_FOUND", 404),
            (AppError::bad_input("x"), "BAD_USER_INPUT", 400),
            (
                AppError::PayloadTooLarge { limit: 1 },
                "PAYLOAD_TOO_LARGE",
                413,
            ),
            (
                AppError::TooManyRequests { limit: 4 },
                "BAD_USER_INPUT",
                429,
            ),
            (
                AppError::VirusDetected {
                    signature: "Eicar-Test-Signature".into(),
                },
                "VIRUS_DETECTED",
                422,
            ),
            (
                AppError::ScannerUnavailable("x".into()),
                "SCANNER_UNAVAILABLE",
                503,
            ),
            (
                AppError::StorageUnavailable("x".into()),
                "STORAGE_UNAVAILABLE",
                503,
            ),
            (
                AppError::DatabaseUnavailable("x".into()),
                "DATABASE_UNAVAILABLE",
                503,
            ),
            (AppError::internal("x"), "INTERNAL", 500),
        ];
        for (e, code, status) in cases {
            assert_eq!(e.code(), code);
            assert_eq!(e.status().as_u16(), status);
        }
    }

    #[test]
    fn a_virus_is_named_and_a_scanner_failure_is_not_explained() {
        let gql: async_graphql::Error = GqlError::from(AppError::VirusDetected {
            signature: "Eicar-Test-Signature.UNOFFICIAL".into(),
        })
        .into();
        assert!(gql.message.contains("Eicar-Test-Signature.UNOFFICIAL"));
        let down = AppError::ScannerUnavailable("connect to clamd.internal:3310: refused".into());
        assert!(!down.to_string().contains("clamd.internal"));
        assert_eq!(down.body()["error"]["code"], "SCANNER_UNAVAILABLE");
    }
}
