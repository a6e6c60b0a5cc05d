//! reportfiles: metadata in a database, bytes in object storage, a GraphQL
//! API for the frontend and one authenticated route that streams files.
//!
//! | module | concern |
//! | --- | --- |
//! | `config` | the typed configuration, one struct per concern |
//! | `app` | `App`, shared by every handler as `AppState(Arc<App>)` |
//! | `server` | listening, signals, graceful shutdown |
//! | `http` | the wire: router, layers, each route |
//! | `graphql` | the schema and its resolvers |
//! | `access` | the role table and the capabilities that hold the data |
//! | `auth` | keys, JWT verification, where a request's token is |
//! | `upload` | checking a file and streaming it into storage |
//! | `encoding` | compressed copies of uploads, and which clients get them |
//! | `scan` | the ClamAV (clamd) client that scans uploads |
//! | `storage` | the object_store facade, and the sweep that reconciles it with the table |
//! | `db` | connecting, migrations, reference data |
//! | `metrics` | the Prometheus registry |
//! | `error` | the one error type |

pub mod access;
pub mod app;
pub mod auth;
pub mod config;
mod db;
pub mod encoding;
pub mod error;
pub mod graphql;
pub mod http;
pub mod metrics;
pub mod scan;
pub mod server;
pub mod storage;
pub mod upload;
