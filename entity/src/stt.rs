use sea_orm::entity::prelude::*;

use crate::SttType;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "stts")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: i32,
    pub stt_type: SttType,
    /// For a tribe, the postal code of its state (not unique among tribes).
    pub postal_code: String,
    /// Zero-padded code such as "01" or "805": a string, never a number.
    pub stt_code: String,
    #[sea_orm(unique)]
    pub name: String,
    pub region_id: i32,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(
        belongs_to = "super::region::Entity",
        from = "Column::RegionId",
        to = "super::region::Column::Id"
    )]
    Region,
}

impl Related<super::region::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Region.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
