//! STT and region reference data, compiled into the binary so a machine
//! without the source tree can still seed. Loading is idempotent: rows are
//! upserted by id, so a second run changes nothing.

use entity::{SttType, region, stt};
use sea_orm::{
    ConnectionTrait, DatabaseConnection, EntityTrait, TransactionTrait, sea_query::OnConflict,
};

use crate::error::{AppError, AppResult};

const REGIONS: &str = include_str!("../../data/stts/regions.csv");
const STATES: &str = include_str!("../../data/stts/states.csv");
const TERRITORIES: &str = include_str!("../../data/stts/territories.csv");
const TRIBES: &str = include_str!("../../data/stts/tribes.csv");

#[derive(serde::Deserialize)]
struct RegionRow {
    #[serde(rename = "Id")]
    id: i32,
    name: String,
}

#[derive(serde::Deserialize)]
struct SttRow {
    #[serde(rename = "Code")]
    code: String,
    #[serde(rename = "Name")]
    name: String,
    #[serde(rename = "Region")]
    region: i32,
    /// Kept a string: "01" and "1" are different codes.
    #[serde(rename = "STT_CODE")]
    stt_code: String,
}

fn rows<T: serde::de::DeserializeOwned>(csv_text: &str) -> AppResult<Vec<T>> {
    csv::Reader::from_reader(csv_text.as_bytes())
        .deserialize()
        .collect::<Result<_, _>>()
        .map_err(AppError::internal)
}

/// The reference data as models. STT ids follow file order: states,
/// territories, then tribes, so they are the same on every installation.
pub fn reference_data() -> AppResult<(Vec<region::Model>, Vec<stt::Model>)> {
    let regions = rows::<RegionRow>(REGIONS)?
        .into_iter()
        .map(|r| region::Model {
            id: r.id,
            name: r.name.trim().to_string(),
        })
        .collect();
    let mut stts = Vec::new();
    for (text, stt_type) in [
        (STATES, SttType::State),
        (TERRITORIES, SttType::Territory),
        (TRIBES, SttType::Tribe),
    ] {
        for row in rows::<SttRow>(text)? {
            stts.push(stt::Model {
                id: stts.len() as i32 + 1,
                stt_type,
                postal_code: row.code.trim().to_string(),
                stt_code: row.stt_code.trim().to_string(),
                name: row.name.trim().to_string(),
                region_id: row.region,
            });
        }
    }
    Ok((regions, stts))
}

pub async fn load(db: &DatabaseConnection) -> AppResult<()> {
    let (regions, stts) = reference_data()?;
    let txn = db.begin().await?;
    upsert_regions(&txn, regions).await?;
    upsert_stts(&txn, stts).await?;
    txn.commit().await?;
    Ok(())
}

async fn upsert_regions(db: &impl ConnectionTrait, regions: Vec<region::Model>) -> AppResult<()> {
    region::Entity::insert_many(regions.into_iter().map(region::ActiveModel::from))
        .on_conflict(
            OnConflict::column(region::Column::Id)
                .update_column(region::Column::Name)
                .to_owned(),
        )
        .exec(db)
        .await?;
    Ok(())
}

async fn upsert_stts(db: &impl ConnectionTrait, stts: Vec<stt::Model>) -> AppResult<()> {
    // SQLite caps bound parameters per statement; chunks keep well under it.
    for chunk in stts.chunks(50) {
        stt::Entity::insert_many(chunk.iter().cloned().map(stt::ActiveModel::from))
            .on_conflict(
                OnConflict::column(stt::Column::Id)
                    .update_columns([
                        stt::Column::SttType,
                        stt::Column::PostalCode,
                        stt::Column::SttCode,
                        stt::Column::Name,
                        stt::Column::RegionId,
                    ])
                    .to_owned(),
            )
            .exec(db)
            .await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_data_has_every_stt_with_clean_names() {
        let (regions, stts) = reference_data().unwrap();
        assert_eq!(regions.len(), 10);
        let count = |t| stts.iter().filter(|s| s.stt_type == t).count();
        assert_eq!(count(SttType::State), 51);
        assert_eq!(count(SttType::Territory), 3);
        assert_eq!(count(SttType::Tribe), 77);
        let mut names: Vec<_> = stts.iter().map(|s| s.name.as_str()).collect();
        assert!(names.iter().all(|n| n.trim() == *n));
        names.sort();
        names.dedup();
        assert_eq!(names.len(), stts.len(), "names are unique once trimmed");
    }

    #[test]
    fn stt_codes_keep_their_leading_zeros() {
        let (_, stts) = reference_data().unwrap();
        let alabama = stts.iter().find(|s| s.name == "Alabama").unwrap();
        assert_eq!(alabama.stt_code, "01");
        assert!(stts.iter().any(|s| s.stt_code == "012"));
    }
}
