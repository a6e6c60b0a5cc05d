//! `scan_events`: one row per virus scan of an upload, clean, infected or
//! failed. Not tied to `report_files`: an infected upload has no file row.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum ScanEvents {
    Table,
    Id,
    UploaderId,
    SttId,
    FiscalYear,
    Quarter,
    Section,
    ReportFileId,
    OriginalFilename,
    SizeBytes,
    Sha256,
    Result,
    Signature,
    EngineVersion,
    Detail,
    StartedAt,
    FinishedAt,
    ClientAddr,
}

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum Stts {
    Table,
    Id,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(ScanEvents::Table)
                .col(big_pk_auto(ScanEvents::Id))
                .col(big_integer(ScanEvents::UploaderId))
                .col(integer(ScanEvents::SttId))
                .col(integer_null(ScanEvents::FiscalYear))
                .col(string_len_null(ScanEvents::Quarter, 24))
                .col(string_len_null(ScanEvents::Section, 24))
                .col(uuid_null(ScanEvents::ReportFileId))
                .col(string_len(ScanEvents::OriginalFilename, 255))
                .col(big_integer(ScanEvents::SizeBytes))
                .col(string_len_null(ScanEvents::Sha256, 64))
                .col(string_len(ScanEvents::Result, 24))
                .col(string_len_null(ScanEvents::Signature, 255))
                .col(string_len_null(ScanEvents::EngineVersion, 255))
                .col(string_len_null(ScanEvents::Detail, 1024))
                .col(timestamp_with_time_zone(ScanEvents::StartedAt))
                .col(timestamp_with_time_zone(ScanEvents::FinishedAt))
                .col(string_len_null(ScanEvents::ClientAddr, 64))
                .foreign_key(
                    ForeignKey::create()
                        .from(ScanEvents::Table, ScanEvents::UploaderId)
                        .to(Users::Table, Users::Id),
                )
                .foreign_key(
                    ForeignKey::create()
                        .from(ScanEvents::Table, ScanEvents::SttId)
                        .to(Stts::Table, Stts::Id),
                )
                .take(),
        )
        .await?;
        // Admins list them newest first, optionally by result or STT.
        for (name, col) in [
            ("ix_scan_events_result_id", ScanEvents::Result),
            ("ix_scan_events_stt_id", ScanEvents::SttId),
        ] {
            m.create_index(
                Index::create()
                    .name(name)
                    .table(ScanEvents::Table)
                    .col(col)
                    .col(ScanEvents::Id)
                    .take(),
            )
            .await?;
        }
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table(ScanEvents::Table).take())
            .await
    }
}
