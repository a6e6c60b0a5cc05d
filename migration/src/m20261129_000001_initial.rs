use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Regions {
    Table,
    Id,
    Name,
}

#[derive(DeriveIden)]
enum Stts {
    Table,
    Id,
    SttType,
    PostalCode,
    SttCode,
    Name,
    RegionId,
}

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
    Subject,
    Email,
    Name,
    Role,
    SttId,
    Status,
    CreatedAt,
    LastLoginAt,
}

#[derive(DeriveIden)]
enum UserRegions {
    Table,
    UserId,
    RegionId,
}

#[derive(DeriveIden)]
enum ReportFiles {
    Table,
    Seq,
    Id,
    SttId,
    FiscalYear,
    Quarter,
    Section,
    Version,
    OriginalFilename,
    Extension,
    ContentType,
    SizeBytes,
    Sha256,
    ObjectKey,
    StorageVersion,
    Etag,
    UploadedById,
    CreatedAt,
}

#[derive(DeriveIden)]
enum DownloadEvents {
    Table,
    Id,
    ReportFileId,
    UserId,
    StartedAt,
    FinishedAt,
    BytesSent,
    RequestedRange,
    Outcome,
    ClientAddr,
    UserAgent,
}

fn fk(
    from_table: impl IntoIden,
    from_col: impl IntoIden,
    to_table: impl IntoIden,
    to_col: impl IntoIden,
) -> ForeignKeyCreateStatement {
    ForeignKey::create()
        .from(from_table, from_col)
        .to(to_table, to_col)
        .take()
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(Regions::Table)
                .col(integer(Regions::Id).primary_key())
                .col(string_len(Regions::Name, 100))
                .take(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table(Stts::Table)
                .col(integer(Stts::Id).primary_key())
                .col(string_len(Stts::SttType, 24))
                .col(string_len(Stts::PostalCode, 2))
                .col(string_len(Stts::SttCode, 8))
                .col(string_len_uniq(Stts::Name, 200))
                .col(integer(Stts::RegionId))
                .foreign_key(&mut fk(
                    Stts::Table,
                    Stts::RegionId,
                    Regions::Table,
                    Regions::Id,
                ))
                .take(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table(Users::Table)
                .col(big_pk_auto(Users::Id))
                .col(string_len_uniq(Users::Subject, 255))
                .col(string_len_null(Users::Email, 320))
                .col(string_len_null(Users::Name, 255))
                .col(string_len_null(Users::Role, 24))
                .col(integer_null(Users::SttId))
                .col(string_len(Users::Status, 24))
                .col(timestamp_with_time_zone(Users::CreatedAt))
                .col(timestamp_with_time_zone_null(Users::LastLoginAt))
                .foreign_key(&mut fk(Users::Table, Users::SttId, Stts::Table, Stts::Id))
                .take(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table(UserRegions::Table)
                .col(big_integer(UserRegions::UserId))
                .col(integer(UserRegions::RegionId))
                .primary_key(
                    Index::create()
                        .col(UserRegions::UserId)
                        .col(UserRegions::RegionId),
                )
                .foreign_key(
                    fk(
                        UserRegions::Table,
                        UserRegions::UserId,
                        Users::Table,
                        Users::Id,
                    )
                    .on_delete(ForeignKeyAction::Cascade),
                )
                .foreign_key(&mut fk(
                    UserRegions::Table,
                    UserRegions::RegionId,
                    Regions::Table,
                    Regions::Id,
                ))
                .take(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table(ReportFiles::Table)
                .col(big_pk_auto(ReportFiles::Seq))
                .col(uuid_uniq(ReportFiles::Id))
                .col(integer(ReportFiles::SttId))
                .col(integer(ReportFiles::FiscalYear))
                .col(string_len(ReportFiles::Quarter, 24))
                .col(string_len(ReportFiles::Section, 24))
                .col(integer(ReportFiles::Version))
                .col(string_len(ReportFiles::OriginalFilename, 1024))
                .col(string_len(ReportFiles::Extension, 16))
                .col(string_len(ReportFiles::ContentType, 255))
                .col(big_integer(ReportFiles::SizeBytes))
                .col(string_len(ReportFiles::Sha256, 64))
                .col(string_len_uniq(ReportFiles::ObjectKey, 512))
                .col(string_len_null(ReportFiles::StorageVersion, 255))
                .col(string_len_null(ReportFiles::Etag, 255))
                .col(big_integer(ReportFiles::UploadedById))
                .col(timestamp_with_time_zone(ReportFiles::CreatedAt))
                .foreign_key(&mut fk(
                    ReportFiles::Table,
                    ReportFiles::SttId,
                    Stts::Table,
                    Stts::Id,
                ))
                .foreign_key(&mut fk(
                    ReportFiles::Table,
                    ReportFiles::UploadedById,
                    Users::Table,
                    Users::Id,
                ))
                .take(),
        )
        .await?;

        // One row per version of a slot: this is what makes version numbers
        // race-free across instances (a losing insert retries with the next one).
        m.create_index(
            Index::create()
                .name("ux_report_files_slot_version")
                .table(ReportFiles::Table)
                .col(ReportFiles::SttId)
                .col(ReportFiles::FiscalYear)
                .col(ReportFiles::Quarter)
                .col(ReportFiles::Section)
                .col(ReportFiles::Version)
                .unique()
                .take(),
        )
        .await?;
        // The reportFiles filters (STT, then fiscal year) in newest-first order.
        m.create_index(
            Index::create()
                .name("ix_report_files_stt_year_seq")
                .table(ReportFiles::Table)
                .col(ReportFiles::SttId)
                .col(ReportFiles::FiscalYear)
                .col(ReportFiles::Seq)
                .take(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("ix_report_files_year_seq")
                .table(ReportFiles::Table)
                .col(ReportFiles::FiscalYear)
                .col(ReportFiles::Seq)
                .take(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table(DownloadEvents::Table)
                .col(big_pk_auto(DownloadEvents::Id))
                .col(uuid(DownloadEvents::ReportFileId))
                .col(big_integer(DownloadEvents::UserId))
                .col(timestamp_with_time_zone(DownloadEvents::StartedAt))
                .col(timestamp_with_time_zone_null(DownloadEvents::FinishedAt))
                .col(big_integer(DownloadEvents::BytesSent))
                .col(string_len_null(DownloadEvents::RequestedRange, 255))
                .col(string_len(DownloadEvents::Outcome, 24))
                .col(string_len_null(DownloadEvents::ClientAddr, 64))
                .col(string_len_null(DownloadEvents::UserAgent, 512))
                .foreign_key(&mut fk(
                    DownloadEvents::Table,
                    DownloadEvents::ReportFileId,
                    ReportFiles::Table,
                    ReportFiles::Id,
                ))
                .foreign_key(&mut fk(
                    DownloadEvents::Table,
                    DownloadEvents::UserId,
                    Users::Table,
                    Users::Id,
                ))
                .take(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("ix_download_events_file_id")
                .table(DownloadEvents::Table)
                .col(DownloadEvents::ReportFileId)
                .col(DownloadEvents::Id)
                .take(),
        )
        .await?;
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            DownloadEvents::Table.into_iden(),
            ReportFiles::Table.into_iden(),
            UserRegions::Table.into_iden(),
            Users::Table.into_iden(),
            Stts::Table.into_iden(),
            Regions::Table.into_iden(),
        ] {
            m.drop_table(Table::drop().table(table).take()).await?;
        }
        Ok(())
    }
}
