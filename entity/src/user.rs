use sea_orm::entity::prelude::*;

use crate::{Role, UserStatus};

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "users")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    /// The JWT `sub` this user signs in with.
    #[sea_orm(unique)]
    pub subject: String,
    pub email: Option<String>,
    pub name: Option<String>,
    /// None until a system admin grants one.
    pub role: Option<Role>,
    pub stt_id: Option<i32>,
    pub status: UserStatus,
    pub created_at: DateTimeUtc,
    pub last_login_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(
        belongs_to = "super::stt::Entity",
        from = "Column::SttId",
        to = "super::stt::Column::Id"
    )]
    Stt,
}

impl ActiveModelBehavior for ActiveModel {}
