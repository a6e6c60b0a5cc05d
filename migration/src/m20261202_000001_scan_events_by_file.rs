//! `ReportFile.scan` looks the clean scan of a page of files up by their
//! ids, and date-range filters on `scanEvents` read `started_at`: both
//! indexed, so neither scans the whole audit table.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum ScanEvents {
    Table,
    ReportFileId,
    StartedAt,
}

const BY_FILE: &str = "ix_scan_events_report_file_id";
const BY_START: &str = "ix_scan_events_started_at";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        for (name, col) in [
            (BY_FILE, ScanEvents::ReportFileId),
            (BY_START, ScanEvents::StartedAt),
        ] {
            m.create_index(
                Index::create()
                    .name(name)
                    .table(ScanEvents::Table)
                    .col(col)
                    .take(),
            )
            .await?;
        }
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        for name in [BY_FILE, BY_START] {
            m.drop_index(Index::drop().name(name).table(ScanEvents::Table).to_owned())
                .await?;
        }
        Ok(())
    }
}
