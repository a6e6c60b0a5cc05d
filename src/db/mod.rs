//! The database: connecting, migrations and the STT reference data.
//! Only `App` (for serving) and the CLI open a connection; everything that
//! serves requests reaches rows through `access`.

pub mod seed;

use std::time::Duration;

use migration::{Migrator, MigratorTrait};
use prometheus_client::metrics::counter::Counter;
use sea_orm::{ConnectOptions, Database, DatabaseConnection, DbErr};

use crate::{app::StartError, config::DatabaseConfig};

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
) -> Result<DatabaseConnection, StartError> {
    open(config, statements, statement_timeout)
        .await
        .map_err(|e| StartError::Database(explain(config, &e)))
}

async fn open(
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

/// A connection error as an operator can act on it: what failed, where
/// (`DATABASE_URL`, password hidden), and the usual fix.
fn explain(config: &DatabaseConfig, e: &DbErr) -> String {
    let url = config.redacted();
    let text = e.to_string();
    let code = match e {
        DbErr::Conn(sea_orm::RuntimeErr::SqlxError(sqlx)) => match &**sqlx {
            sea_orm::SqlxError::Database(db) => db.code().map(|c| c.into_owned()),
            _ => None,
        },
        _ => None,
    };
    let (host, database) = postgres_parts(config.url());
    let why = if config.is_sqlite() {
        if text.contains("unable to open database file") {
            "cannot open the SQLite file: check that its folder is writable, and end the URL \
             with ?mode=rwc so the file is created when missing"
                .to_string()
        } else {
            format!("SQLite: {}", first_line(&text))
        }
    } else {
        match code.as_deref() {
            Some("3D000") => format!(
                "the database `{database}` does not exist on {host}: create it, e.g. \
                 `createdb -h {} -p {} -U <user> {database}`",
                host.split(':').next().unwrap_or("127.0.0.1"),
                host.split(':').nth(1).unwrap_or("5432"),
            ),
            Some("28000" | "28P01") => {
                format!("PostgreSQL at {host} refused the user or password")
            }
            _ if text.contains("pool timed out") || text.contains("Connection refused") => {
                format!("nothing answers at {host}: is PostgreSQL running and reachable?")
            }
            _ => format!("PostgreSQL at {host}: {}", first_line(&text)),
        }
    };
    format!("database: {why} (DATABASE_URL={url})")
}

/// `host:port` and the database name of a PostgreSQL URL.
fn postgres_parts(url: &str) -> (String, String) {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let rest = rest.rsplit_once('@').map_or(rest, |(_, r)| r);
    let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
    let database = path.split('?').next().unwrap_or_default();
    let host = if host.contains(':') {
        host.to_string()
    } else {
        format!("{host}:5432")
    };
    (host, database.to_string())
}

/// The driver's message without its internal details (sqlx appends the
/// server's source line, "at line 948").
fn first_line(text: &str) -> &str {
    let text = text.lines().next().unwrap_or_default();
    let text = text
        .strip_prefix("Connection Error: ")
        .unwrap_or(text)
        .trim_start_matches("error returned from database: ");
    match text.rfind(" at line ") {
        Some(i) => &text[..i],
        None => text,
    }
}

/// Brings the schema up to date and loads the STT reference data.
pub async fn prepare(db: &DatabaseConnection) -> Result<(), crate::error::AppError> {
    Migrator::up(db, None).await?;
    seed::load(db).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postgres_urls_give_their_host_and_database() {
        assert_eq!(
            postgres_parts("postgres://u:p@db.example.gov:6432/rf?sslmode=require"),
            ("db.example.gov:6432".into(), "rf".into())
        );
        assert_eq!(
            postgres_parts("postgres://u@db/rf"),
            ("db:5432".into(), "rf".into())
        );
    }

    #[test]
    fn driver_messages_lose_their_source_lines() {
        assert_eq!(
            first_line(
                "Connection Error: error returned from database: database \"x\" does not exist at line 948"
            ),
            "database \"x\" does not exist"
        );
    }
}
