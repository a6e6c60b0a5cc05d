//! sea-orm entities: the tables of reportfiles, and the enums stored in them.
//!
//! The enums derive `async_graphql::Enum` as well, so the database and the
//! GraphQL schema share one definition of each domain value.

pub mod download_event;
pub mod enums;
pub mod region;
pub mod report_file;
pub mod scan_event;
pub mod stt;
pub mod user;
pub mod user_region;

pub use enums::*;
