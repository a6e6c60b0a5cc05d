//! The download audit: written by the download route, read by admins.

use chrono::{DateTime, Utc};
use entity::{DownloadOutcome, download_event};
use sea_orm::{
    ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Set,
};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::{Audit, MAX_PAGE};
use crate::error::AppResult;

/// One finished request to the download route.
#[derive(Debug, Clone)]
pub struct NewDownloadEvent {
    pub report_file_id: Uuid,
    pub user_id: i64,
    pub started_at: DateTime<Utc>,
    /// When the response ended; the time it is written when unset.
    pub finished_at: Option<DateTime<Utc>>,
    pub bytes_sent: i64,
    pub requested_range: Option<String>,
    pub outcome: DownloadOutcome,
    pub client_addr: Option<String>,
    pub user_agent: Option<String>,
}

/// Writes download events; it can write nothing else and read nothing.
///
/// Events go through a bounded queue to one writer task, which writes them
/// in batches and, while the database is down, keeps them and retries. So
/// a download that ends during an outage is recorded once the database is
/// back, and `flush` at shutdown writes what is still queued.
#[derive(Clone)]
pub struct AuditLog {
    queue: mpsc::Sender<Message>,
    /// Set when a flush gave up: the writer then logs what it still holds
    /// instead of waiting for the database.
    give_up: CancellationToken,
}

enum Message {
    Event(NewDownloadEvent),
    /// Answered once every event queued before it is written.
    Flush(oneshot::Sender<()>),
}

/// Events waiting for the database, at most. About 300 bytes each: a
/// queue this long is an outage of hours at a busy portal's download rate.
const QUEUE: usize = 65_536;
/// Events written in one statement.
const BATCH: usize = 256;

impl AuditLog {
    /// Starts the writer.
    pub(crate) fn start(db: DatabaseConnection) -> Self {
        let (queue, inbox) = mpsc::channel(QUEUE);
        let give_up = CancellationToken::new();
        tokio::spawn(write_events(db, inbox, give_up.clone()));
        AuditLog { queue, give_up }
    }

    /// Queues `event`; never waits. A full queue (an outage longer than the
    /// queue holds) is the one way to lose an event, and it is logged with
    /// everything the row would have held.
    pub fn record(&self, event: NewDownloadEvent) {
        if let Err(e) = self.queue.try_send(Message::Event(event))
            && let Message::Event(event) = e.into_inner()
        {
            lost(&event, "the audit queue is full");
        }
    }

    /// Waits until every event queued so far is written, for at most
    /// `within`. `false`: the database did not come back in time; the
    /// events still held are then logged, one line each, and dropped.
    pub async fn flush(&self, within: Duration) -> bool {
        let (done, written) = oneshot::channel();
        let flushed =
            async { self.queue.send(Message::Flush(done)).await.is_ok() && written.await.is_ok() };
        match tokio::time::timeout(within, flushed).await {
            Ok(flushed) => flushed,
            Err(_) => {
                self.give_up.cancel();
                false
            }
        }
    }
}

async fn write_events(
    db: DatabaseConnection,
    mut inbox: mpsc::Receiver<Message>,
    give_up: CancellationToken,
) {
    let mut batch: Vec<NewDownloadEvent> = Vec::with_capacity(BATCH);
    let mut flushes: Vec<oneshot::Sender<()>> = Vec::new();
    while let Some(first) = inbox.recv().await {
        let mut next = Some(first);
        while let Some(message) = next.take() {
            match message {
                Message::Event(e) => batch.push(e),
                Message::Flush(done) => flushes.push(done),
            }
            if batch.len() < BATCH {
                next = inbox.try_recv().ok();
            }
        }
        if !write_with_retries(&db, &batch, &give_up).await {
            for event in &batch {
                lost(event, "the database did not come back before shutdown");
            }
        }
        batch.clear();
        for done in flushes.drain(..) {
            let _ = done.send(());
        }
    }
}

/// Writes `batch`, retrying while the database is unreachable, until it is
/// written (`true`) or the log gives up (`false`).
async fn write_with_retries(
    db: &DatabaseConnection,
    batch: &[NewDownloadEvent],
    give_up: &CancellationToken,
) -> bool {
    if batch.is_empty() {
        return true;
    }
    let mut wait = Duration::from_millis(100);
    loop {
        match insert(db, batch).await {
            Ok(()) => return true,
            Err(e) => {
                tracing::warn!(error = %e, events = batch.len(), retry_in = ?wait, "writing download events");
            }
        }
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = give_up.cancelled() => return false,
        }
        wait = (wait * 2).min(Duration::from_secs(5));
    }
}

fn lost(e: &NewDownloadEvent, why: &str) {
    tracing::error!(
        report_file_id = %e.report_file_id,
        user_id = e.user_id,
        started_at = %e.started_at,
        bytes_sent = e.bytes_sent,
        requested_range = e.requested_range.as_deref().unwrap_or("-"),
        outcome = e.outcome.as_str(),
        client_addr = e.client_addr.as_deref().unwrap_or("-"),
        user_agent = e.user_agent.as_deref().unwrap_or("-"),
        "download event not recorded: {why}"
    );
}

async fn insert(
    db: &DatabaseConnection,
    events: &[NewDownloadEvent],
) -> Result<(), sea_orm::DbErr> {
    let now = Utc::now();
    download_event::Entity::insert_many(events.iter().map(|e| download_event::ActiveModel {
        report_file_id: Set(e.report_file_id),
        user_id: Set(e.user_id),
        started_at: Set(e.started_at),
        finished_at: Set(Some(e.finished_at.unwrap_or(now))),
        bytes_sent: Set(e.bytes_sent),
        requested_range: Set(e.requested_range.clone()),
        outcome: Set(e.outcome),
        client_addr: Set(e.client_addr.clone()),
        user_agent: Set(e.user_agent.clone()),
        ..Default::default()
    }))
    .exec_without_returning(db)
    .await?;
    Ok(())
}

impl Audit {
    /// Download events of one file, newest first, after the cursor `after`
    /// (an event id). Returns one row more than asked when more exist.
    pub async fn download_events(
        &self,
        report_file_id: Uuid,
        first: u64,
        after: Option<i64>,
    ) -> AppResult<Vec<download_event::Model>> {
        let mut q = download_event::Entity::find()
            .filter(download_event::Column::ReportFileId.eq(report_file_id));
        if let Some(after) = after {
            q = q.filter(download_event::Column::Id.lt(after));
        }
        Ok(q.order_by_desc(download_event::Column::Id)
            .limit(first.min(MAX_PAGE) + 1)
            .all(self.db.spend(1)?)
            .await?)
    }
}
