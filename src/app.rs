//! The application: everything a request handler or resolver needs, made
//! once at start and shared as `AppState(Arc<App>)`.
//!
//! The database connection is private: readiness and shutdown use it here,
//! and requests reach rows only through the capabilities that `gate` hands
//! out (`access`).

use std::{ops::Deref, sync::Arc, time::Duration};

use axum::http::HeaderMap;
use sea_orm::DatabaseConnection;

use crate::{
    access::{Access, AuditLog, Gate},
    auth::{
        self, CredentialSource, KeyError, Sessions, Tokens,
        jwks::RemoteKeys,
        oidc::{ProviderHttp, Providers},
    },
    config::Config,
    db,
    error::{AppError, AppResult},
    metrics::Metrics,
    scan::Scanner,
    storage::{Storage, StorageConfigError},
};

pub struct App {
    pub config: Config,
    pub storage: Storage,
    /// Verifies bearer tokens.
    pub tokens: Tokens,
    /// Signs and reads the session cookie.
    pub sessions: Sessions,
    /// The OpenID providers people sign in with (none: no `/auth/login`).
    pub oidc: Providers,
    pub metrics: Metrics,
    /// Turns a request's token into its `Access`.
    pub gate: Gate,
    /// Where the download route records its events.
    pub audit_log: AuditLog,
    /// clamd, when every upload must be scanned (`AV_SCAN`).
    pub scanner: Option<Scanner>,
    /// Tells long transfers when the grace period after SIGTERM is over.
    pub shutdown: Shutdown,
    db: DatabaseConnection,
}

/// The process's stop signal for what runs long (uploads, downloads): once
/// the grace period after SIGTERM is over, they must stop and clean up.
#[derive(Clone, Default)]
pub struct Shutdown {
    grace_over: tokio_util::sync::CancellationToken,
}

impl Shutdown {
    /// Resolves when in-flight transfers must stop.
    pub async fn grace_over(&self) {
        self.grace_over.cancelled().await
    }

    pub fn is_grace_over(&self) -> bool {
        self.grace_over.is_cancelled()
    }

    /// The same signal as a future of its own, for streams to poll.
    pub fn watch(&self) -> tokio_util::sync::WaitForCancellationFutureOwned {
        self.grace_over.clone().cancelled_owned()
    }

    /// Ends the grace period: every transfer waiting on `grace_over` stops.
    pub fn end_grace(&self) {
        self.grace_over.cancel();
    }
}

/// The handle every handler and resolver holds; cheap to clone.
#[derive(Clone)]
pub struct AppState(pub Arc<App>);

impl Deref for AppState {
    type Target = App;

    fn deref(&self) -> &App {
        &self.0
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// What went wrong and how to fix it, naming `DATABASE_URL` (its
    /// password hidden).
    #[error("{0}")]
    Database(String),
    /// Migrations or reference data failed. Unlike a client, the operator
    /// sees the cause: the error's source, not just its public text.
    #[error("preparing the database (migrations, STT data): {}", cause(.0))]
    Prepare(AppError),
    #[error("JWT keys: {0}")]
    Keys(#[from] KeyError),
    #[error(transparent)]
    Storage(#[from] StorageConfigError),
}

/// Migrates and seeds on a connection of its own, without the statement
/// timeout that bounds the serving pool: a migration may take longer.
async fn prepare_database(config: &Config) -> Result<(), StartError> {
    let db = db::connect(&config.database, Default::default(), None).await?;
    let prepared = db::prepare(&db).await.map_err(StartError::Prepare);
    if let Err(e) = db.close().await {
        tracing::warn!(error = %e, "closing the migration connection");
    }
    prepared
}

/// The innermost cause of `e`, for an operator's eyes.
fn cause(e: &AppError) -> String {
    let mut source: &dyn std::error::Error = e;
    while let Some(next) = source.source() {
        source = next;
    }
    source.to_string()
}

impl App {
    /// Reads keys, connects, migrates and seeds: everything `serve` needs
    /// before it listens.
    pub async fn start(config: Config) -> Result<AppState, StartError> {
        let (tokens, sessions, oidc) = Self::start_auth(&config).await?;
        let storage = Storage::new(&config.storage, &config.uploads)?;
        // Staging files of the local backend are only left by a process
        // that died mid-upload: nothing else would ever remove them.
        storage.remove_stale_staging_files().await;
        let metrics = Metrics::new();
        prepare_database(&config).await?;
        let db = db::connect(
            &config.database,
            metrics.sql_statements(),
            config.database.statement_timeout,
        )
        .await?;
        let gate = Gate::new(
            db.clone(),
            config.sessions.auth_cache_ttl,
            config.graphql.max_statements,
        );
        let audit_log = AuditLog::start(db.clone());
        let scanner = Scanner::from_config(&config.scan);
        Ok(AppState(Arc::new(App {
            config,
            storage,
            tokens,
            sessions,
            oidc,
            metrics,
            gate,
            audit_log,
            scanner,
            shutdown: Shutdown::default(),
            db,
        })))
    }

    /// Reads the keys and the session secret, and fetches the keys of the
    /// JWKS URL and the OpenID providers (side by side; one that does not
    /// answer is logged and retried in the background).
    async fn start_auth(config: &Config) -> Result<(Tokens, Sessions, Providers), StartError> {
        let mut tokens = Tokens::load(&config.tokens)?;
        let sessions = Sessions::load(&config.sessions)?;
        let leeway = Duration::from_secs(config.tokens.leeway_secs);
        let oidc = Providers::new(&config.oidc, config.tokens.jwks_cache_ttl, leeway)?;
        let jwks_url = config.tokens.jwks_url.as_ref().map(|url| {
            let http = ProviderHttp::new();
            let target = url.to_string();
            RemoteKeys::new(
                format!("JWT_JWKS_URL ({url})"),
                config.tokens.jwks_cache_ttl,
                Box::new(move || {
                    let (http, target) = (http.clone(), target.clone());
                    Box::pin(async move { http.get(&target).await })
                }),
            )
        });
        let fetch_jwks_url = async {
            if let Some(keys) = &jwks_url {
                keys.start().await;
            }
        };
        tokio::join!(fetch_jwks_url, oidc.start());
        if let Some(keys) = jwks_url {
            tokens.trust(config.tokens.issuer.clone(), keys);
        }
        // A provider's access tokens (API clients) verify with its keys.
        for provider in oidc.iter() {
            tokens.trust(provider.issuer(), provider.keys().clone());
        }
        Ok((tokens, sessions, oidc))
    }

    /// Who sent these headers: a bearer token, or the session cookie. A
    /// missing or invalid one is anonymous: whatever needs a user then
    /// answers `UNAUTHENTICATED`. Why a token was refused is logged (never
    /// the token).
    pub async fn access(&self, headers: &HeaderMap) -> AppResult<Access> {
        let mut refused: Option<String> = None;
        let claims = match auth::token_from_headers(headers, &self.config.sessions.cookie_name) {
            None if headers.contains_key(axum::http::header::AUTHORIZATION) => {
                refused = Some("the Authorization header must be `Bearer <token>`".into());
                None
            }
            None => None,
            Some((token, CredentialSource::Bearer)) => match self.tokens.verify(token).await {
                Ok(claims) => Some(claims),
                Err(why) => {
                    refused = Some(why.to_string());
                    None
                }
            },
            Some((token, CredentialSource::Cookie)) => match self.sessions.verify(token) {
                Ok(session) => Some(session.claims()),
                Err(why) => {
                    refused = Some(format!("the session cookie: {why}; sign in again"));
                    None
                }
            },
        };
        if let Some(reason) = &refused {
            // The reason, never the token.
            tracing::info!(%reason, "credentials refused");
        }
        let access = self.gate.access(claims.as_ref()).await?;
        Ok(match refused {
            Some(reason) => access.refused_because(reason),
            None => access,
        })
    }

    /// Whether the database answers.
    pub async fn ping_database(&self) -> Result<(), sea_orm::DbErr> {
        self.db.ping().await
    }

    /// Closes the connection pool: the last step of a shutdown. Requests
    /// after this find the database unavailable.
    pub async fn close_database(&self) {
        if let Err(e) = self.db.close_by_ref().await {
            tracing::warn!(error = %e, "closing the database");
        }
    }

    /// SQL statements run so far.
    pub fn sql_statements(&self) -> u64 {
        self.metrics.sql_statements().get()
    }
}
