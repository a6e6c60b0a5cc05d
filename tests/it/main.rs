//! The integration tests, in one binary: the real server on a real port,
//! spoken to over HTTP, one module per area. `common` is the harness.

mod common;

mod access_matrix;
mod auth;
mod compression;
mod connections;
mod download;
mod first_run;
mod frontend;
mod graphql_api;
mod graphql_limits;
mod graphql_over_http;
mod multipart_bounds;
mod oidc;
mod ops;
mod outages;
mod proxies;
mod scan;
mod storage_faults;
mod upload;
mod virus_scanning;
