use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "regions")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: i32,
    pub name: String,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(has_many = "super::stt::Entity")]
    Stt,
}

impl Related<super::stt::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Stt.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
