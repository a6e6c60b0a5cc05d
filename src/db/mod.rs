//! The database: connecting, migrations and the STT reference data.
//! Only `App` (for serving) and the CLI open a connection; everything that
//! serves requests reaches rows through `access`.

pub mod seed;

use std::time::Duration;

use migration::{Migrator, MigratorTrait};
use prometheus_client::metrics::counter::Counter;
use sea_orm::{ConnectOptions, Database, DatabaseConnection, DbErr};

use crate::config::DatabaseConfig;

/// Connects to the configured database, counting every statement in
/// `statements` (`/metrics`; tests use it to prove DataLoaders batch). A
/// SQLite file's folder is created first, so the embedded default works on
/// a fresh clone.
///
/// On PostgreSQL, `statement_timeout` makes the server cancel any statement
/// that runs longer (SQLSTATE 57014, which `AppError` reports as
/// `DATABASE_UNAVAILABLE`): one expensive query cannot hold a pooled
/// connection for minutes. The pool that serves requests passes the
/// configured limit; migrations and the console pass `None`, since building
/// an index on a big table may rightly take longer.
pub async fn connect(
    config: &DatabaseConfig,
    statements: Counter,
    statement_timeout: Option<Duration>,
) -> Result<DatabaseConnection, DbErr> {
    let url = config.url();
    if let Some(path) = url.strip_prefix("sqlite://") {
        let file = path.split('?').next().unwrap_or_default();
        if let Some(dir) = std::path::Path::new(file).parent()
            && !dir.as_os_str().is_empty()
        {
            std::fs::create_dir_all(dir)
                .map_err(|e| DbErr::Custom(format!("cannot create {}: {e}", dir.display())))?;
        }
    }
    let mut options = ConnectOptions::new(url.to_string());
    options
        .max_connections(if config.is_sqlite() { 8 } else { 32 })
        .connect_timeout(Duration::from_secs(10))
        .acquire_timeout(config.acquire_timeout)
        // No reaping of idle or old connections: sqlx's maintenance task for
        // that can spin forever when it outlives the runtime's timers (seen
        // at runtime shutdown in tests). Every connection is pinged before
        // use instead (sqlx's default), which finds the dead ones.
        .idle_timeout(None)
        .max_lifetime(None)
        .sqlx_logging(false);
    if let Some(timeout) = statement_timeout {
        let ms = timeout.as_millis().to_string();
        options.map_sqlx_postgres_opts(move |o| o.options([("statement_timeout", ms.as_str())]));
    }
    let mut db = Database::connect(options).await?;
    db.set_metric_callback(move |_| {
        statements.inc();
    });
    Ok(db)
}

/// Brings the schema up to date and loads the STT reference data.
pub async fn prepare(db: &DatabaseConnection) -> Result<(), crate::error::AppError> {
    Migrator::up(db, None).await?;
    seed::load(db).await
}
