//! reportfiles: metadata in a database, bytes in object storage, a GraphQL
//! API for the frontend and one authenticated route that streams files.

pub mod access;
pub mod app;
pub mod auth;
pub mod config;
pub mod db;
pub mod download;
pub mod error;
pub mod graphiql;
pub mod graphql;
pub mod metrics;
pub mod ops;
pub mod service;
pub mod storage;
pub mod upload;
