//! How many GraphQL requests one caller may have running at once
//! (`GRAPHQL_MAX_CONCURRENT_PER_USER`), so that one caller cannot take the
//! database pool and the CPU from everyone else.
//!
//! A request beyond the limit waits for a slot, for at most
//! `GRAPHQL_CONCURRENT_WAIT_MS` (a frontend loading a page sends a few
//! queries side by side, and a short queue smooths that), then is refused
//! with 429 and `BAD_USER_INPUT`. Callers are told apart by user id when
//! signed in, by client address otherwise.
//!
//! The table holds an entry only while its caller has a request running or
//! waiting: the last one to leave removes it. So it is never larger than the
//! number of requests in flight, and empty when the server is idle. (A cache
//! that evicts on its own, like moka, could drop the entry of a caller whose
//! requests are still running, and give them a fresh set of slots.)

use std::{
    collections::HashMap,
    net::IpAddr,
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::{
    access::{Access, Caller},
    error::{AppError, AppResult},
};

/// Whose slots a request takes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum CallerKey {
    User(i64),
    Address(IpAddr),
}

impl CallerKey {
    pub fn of(access: &Access, client: IpAddr) -> Self {
        match access.caller() {
            Caller::User(p) => CallerKey::User(p.user.id),
            Caller::Anonymous => CallerKey::Address(client),
        }
    }
}

type Table = Mutex<HashMap<CallerKey, Arc<Semaphore>>>;

#[derive(Clone)]
pub struct CallerSlots {
    per_caller: usize,
    wait: Duration,
    table: Arc<Table>,
}

/// A running request's slot, given back when dropped.
pub struct Slot {
    permit: Option<OwnedSemaphorePermit>,
    key: CallerKey,
    table: Arc<Table>,
}

impl CallerSlots {
    pub fn new(per_caller: usize, wait: Duration) -> Self {
        CallerSlots {
            per_caller,
            wait,
            table: Arc::default(),
        }
    }

    /// A slot for `key`: at once when one is free, after a wait when one
    /// frees up in time, else `TooManyRequests`.
    pub async fn acquire(&self, key: CallerKey) -> AppResult<Slot> {
        let semaphore = {
            let mut table = lock(&self.table);
            let entry = table
                .entry(key.clone())
                .or_insert_with(|| Arc::new(Semaphore::new(self.per_caller)));
            entry.clone()
        };
        let waited = tokio::time::timeout(self.wait, semaphore.acquire_owned()).await;
        let permit = match waited {
            Ok(Ok(permit)) => Some(permit),
            // Timed out (the semaphore is never closed).
            _ => None,
        };
        let slot = Slot {
            permit,
            key,
            table: self.table.clone(),
        };
        if slot.permit.is_none() {
            // Dropping `slot` removes the entry if nobody else holds it.
            return Err(AppError::TooManyRequests {
                limit: self.per_caller,
            });
        }
        Ok(slot)
    }

    /// Callers with a request running or waiting.
    #[cfg(test)]
    fn callers(&self) -> usize {
        lock(&self.table).len()
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut table = lock(&self.table);
        // The permit holds the semaphore too: let go of it first, then the
        // table's entry is the only holder when nobody else uses it. New
        // holders take it under this lock, so none can appear meanwhile.
        drop(self.permit.take());
        if table
            .get(&self.key)
            .is_some_and(|s| Arc::strong_count(s) == 1)
        {
            table.remove(&self.key);
        }
    }
}

/// The table, even after a panic elsewhere while it was locked: every
/// change to it is a single insert or remove, so it is never half-done.
fn lock(table: &Table) -> std::sync::MutexGuard<'_, HashMap<CallerKey, Arc<Semaphore>>> {
    table.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALICE: CallerKey = CallerKey::User(1);
    const BOB: CallerKey = CallerKey::User(2);

    #[tokio::test]
    async fn a_caller_beyond_the_limit_waits_then_is_refused() {
        let slots = CallerSlots::new(2, Duration::from_millis(50));
        let _a = slots.acquire(ALICE).await.unwrap();
        let _b = slots.acquire(ALICE).await.unwrap();
        let started = std::time::Instant::now();
        let refused = slots.acquire(ALICE).await.err().unwrap();
        assert!(started.elapsed() >= Duration::from_millis(50));
        assert!(matches!(refused, AppError::TooManyRequests { limit: 2 }));
        assert!(slots.acquire(BOB).await.is_ok(), "others are not held up");
    }

    #[tokio::test]
    async fn a_waiting_request_gets_the_slot_that_frees_up() {
        let slots = CallerSlots::new(1, Duration::from_secs(5));
        let first = slots.acquire(ALICE).await.unwrap();
        let waiting = tokio::spawn({
            let slots = slots.clone();
            async move { slots.acquire(ALICE).await.is_ok() }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        drop(first);
        assert!(waiting.await.unwrap());
    }

    #[tokio::test]
    async fn the_table_only_holds_callers_with_requests() {
        let slots = CallerSlots::new(1, Duration::from_millis(10));
        let a = slots.acquire(ALICE).await.unwrap();
        let b = slots.acquire(BOB).await.unwrap();
        assert!(slots.acquire(ALICE).await.is_err());
        assert_eq!(slots.callers(), 2);
        drop(a);
        assert_eq!(slots.callers(), 1);
        drop(b);
        assert_eq!(slots.callers(), 0);
        for i in 0..1000 {
            drop(slots.acquire(CallerKey::User(i)).await.unwrap());
        }
        assert_eq!(slots.callers(), 0);
    }
}
