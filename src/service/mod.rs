//! Plain functions over the database: what resolvers and handlers call, and
//! what tests can call directly. Reads of protected data take a capability
//! from `access`.

pub mod download_events;
pub mod principals;
pub mod report_files;
pub mod seed;
pub mod stts;
pub mod users;
