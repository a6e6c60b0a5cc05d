//! Database migrations. Run by `reportfiles migrate` and at server start.

pub use sea_orm_migration::prelude::*;

mod m20261129_000001_initial;
mod m20261201_000001_scan_events;
mod m20261202_000001_scan_events_by_file;
mod m20261203_000001_encoded_copies;

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261129_000001_initial::Migration),
            Box::new(m20261201_000001_scan_events::Migration),
            Box::new(m20261202_000001_scan_events_by_file::Migration),
            Box::new(m20261203_000001_encoded_copies::Migration),
        ]
    }
}
