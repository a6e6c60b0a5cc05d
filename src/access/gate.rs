//! The way in: a verified token's claims become an `Access`.
//!
//! Every request is authenticated; without a cache, each one starts with a
//! database round trip for the user and their regions, which is most of the
//! download route's time to first byte for small files. So each instance
//! keeps what it knows of a subject for a short TTL (bounded in entries,
//! concurrent first requests of one subject share one lookup). A change of
//! access applies at once on the instance that made it and within the TTL
//! on the others. TTL 0 turns the cache off.

use std::{num::NonZeroUsize, sync::Arc, time::Duration};

use entity::user;
use sea_orm::DatabaseConnection;

use super::{Access, Budget, Caller, Db, FileCache, Principal, users};
use crate::{
    auth::Claims,
    error::{AppError, AppResult},
};

/// More subjects than this and the least recently used are forgotten.
const MAX_PRINCIPALS: u64 = 10_000;

#[derive(Clone)]
pub struct Gate {
    db: Db,
    principals: Option<moka::future::Cache<String, Arc<Principal>>>,
    /// The SQL statements each request may run (`GRAPHQL_MAX_STATEMENTS`).
    max_statements: NonZeroUsize,
}

impl Gate {
    pub(crate) fn new(
        conn: DatabaseConnection,
        ttl: Duration,
        max_statements: NonZeroUsize,
    ) -> Self {
        let principals = (!ttl.is_zero()).then(|| {
            moka::future::Cache::builder()
                .max_capacity(MAX_PRINCIPALS)
                .time_to_live(ttl)
                .build()
        });
        Gate {
            db: Db {
                conn,
                files: FileCache::new(),
            },
            principals,
            max_statements,
        }
    }

    /// `Access` for a verified token (`Anonymous` without one), with a
    /// statement budget of its own: one `Access` serves one request.
    pub async fn access(&self, claims: Option<&Claims>) -> AppResult<Access> {
        let budget = Budget::new(self.max_statements);
        let Some(claims) = claims else {
            return Ok(Access::new(Caller::Anonymous, self.db.clone(), budget));
        };
        let principal = match &self.principals {
            None => Arc::new(users::principal_for_claims(&self.db.conn, claims).await?),
            Some(cache) => cache
                .try_get_with_by_ref(claims.sub.as_str(), async {
                    users::principal_for_claims(&self.db.conn, claims)
                        .await
                        .map(Arc::new)
                })
                .await
                .map_err(AppError::shared)?,
        };
        Ok(Access::new(
            Caller::User(principal),
            self.db.clone(),
            budget,
        ))
    }

    /// Signs `claims`' subject in: their user (created `PENDING` if new),
    /// with the time of this sign-in, and the email and name of `claims`,
    /// recorded.
    pub async fn sign_in(&self, claims: &Claims) -> AppResult<user::Model> {
        let principal = users::principal_for_claims(&self.db.conn, claims).await?;
        let user = users::record_login(&self.db.conn, principal.user.id, claims).await?;
        self.forget(&user.subject).await;
        Ok(user)
    }

    /// Drops what is known of `subject`, after their access changed.
    pub async fn forget(&self, subject: &str) {
        if let Some(cache) = &self.principals {
            cache.invalidate(subject).await;
        }
    }
}
