//! A short-lived, per-instance cache of who a token's subject is.
//!
//! Every request is authenticated; without this, each one starts with a
//! database round trip for the user and their regions, which is most of the
//! download route's time to first byte for small files. A change of access
//! applies at once on the instance that made it and within the TTL on the
//! others. TTL 0 turns the cache off.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use sea_orm::DatabaseConnection;

use crate::{
    access::{Access, Principal},
    auth::Claims,
    error::AppResult,
    service::users,
};

/// More subjects than this at once and the cache starts over: it is a
/// latency aid, not a store.
const MAX_ENTRIES: usize = 10_000;

pub struct PrincipalCache {
    ttl: Duration,
    entries: Mutex<HashMap<String, (Instant, Arc<Principal>)>>,
}

impl PrincipalCache {
    pub fn new(ttl: Duration) -> Self {
        PrincipalCache {
            ttl,
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// `Access` for a verified token (`Anonymous` without one).
    pub async fn access(
        &self,
        db: &DatabaseConnection,
        claims: Option<&Claims>,
    ) -> AppResult<Access> {
        let Some(claims) = claims else {
            return Ok(Access::Anonymous);
        };
        if let Some(p) = self.get(&claims.sub) {
            return Ok(Access::User(p));
        }
        let principal = Arc::new(users::principal_for(db, claims).await?);
        self.put(&claims.sub, principal.clone());
        Ok(Access::User(principal))
    }

    fn get(&self, subject: &str) -> Option<Arc<Principal>> {
        if self.ttl.is_zero() {
            return None;
        }
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries
            .get(subject)
            .filter(|(at, _)| at.elapsed() < self.ttl)
            .map(|(_, p)| p.clone())
    }

    fn put(&self, subject: &str, principal: Arc<Principal>) {
        if self.ttl.is_zero() {
            return;
        }
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if entries.len() >= MAX_ENTRIES {
            entries.clear();
        }
        entries.insert(subject.to_string(), (Instant::now(), principal));
    }

    /// Drops what is known of `subject`, after their access changed.
    pub fn forget(&self, subject: &str) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries.remove(subject);
    }
}
