//! The compressed copy of a report file (README "Compressed delivery"):
//! its object, like the original's, internal and never exposed. All null
//! for files stored without one (older rows, copies that saved too little,
//! copies turned off).

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum ReportFiles {
    Table,
    ContentEncoding,
    EncodedObjectKey,
    EncodedSizeBytes,
    EncodedStorageVersion,
    EncodedEtag,
}

/// The new columns, one statement each: SQLite alters one column at a time.
fn columns() -> Vec<ColumnDef> {
    vec![
        string_len_null(ReportFiles::ContentEncoding, 16),
        string_len_null(ReportFiles::EncodedObjectKey, 512),
        big_integer_null(ReportFiles::EncodedSizeBytes),
        string_len_null(ReportFiles::EncodedStorageVersion, 255),
        string_len_null(ReportFiles::EncodedEtag, 255),
    ]
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        for mut column in columns() {
            m.alter_table(
                Table::alter()
                    .table(ReportFiles::Table)
                    .add_column(&mut column)
                    .take(),
            )
            .await?;
        }
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        for column in [
            ReportFiles::ContentEncoding,
            ReportFiles::EncodedObjectKey,
            ReportFiles::EncodedSizeBytes,
            ReportFiles::EncodedStorageVersion,
            ReportFiles::EncodedEtag,
        ] {
            m.alter_table(
                Table::alter()
                    .table(ReportFiles::Table)
                    .drop_column(column)
                    .take(),
            )
            .await?;
        }
        Ok(())
    }
}
