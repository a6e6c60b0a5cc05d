use chrono::Utc;
use entity::{Role, UserStatus, region, stt, user, user_region};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait,
    PaginatorTrait, QueryFilter, QueryOrder, QuerySelect, Set, TransactionTrait,
    sea_query::OnConflict,
};

use crate::{
    access::{AuditGrant, Principal, UserAdminGrant},
    auth::Claims,
    error::{AppError, AppResult},
};

/// The user behind a verified token. A subject seen for the first time
/// becomes a `PENDING` user with no role.
pub async fn principal_for(db: &DatabaseConnection, claims: &Claims) -> AppResult<Principal> {
    let user = match find_by_subject(db, &claims.sub).await? {
        Some(u) => u,
        None => {
            // Two first requests of one subject may race: the loser's insert
            // does nothing and both read the same row.
            user::Entity::insert(user::ActiveModel {
                subject: Set(claims.sub.clone()),
                email: Set(claims.email.clone()),
                name: Set(claims.name.clone()),
                role: Set(None),
                stt_id: Set(None),
                status: Set(UserStatus::Pending),
                created_at: Set(Utc::now()),
                last_login_at: Set(None),
                ..Default::default()
            })
            .on_conflict(
                OnConflict::column(user::Column::Subject)
                    .do_nothing()
                    .to_owned(),
            )
            .exec_without_returning(db)
            .await?;
            find_by_subject(db, &claims.sub)
                .await?
                .ok_or_else(|| AppError::internal("user vanished after insert"))?
        }
    };
    let region_ids = if user.role == Some(Role::RegionalStaff) {
        region_ids(db, user.id).await?
    } else {
        Vec::new()
    };
    Ok(Principal { user, region_ids })
}

async fn find_by_subject(
    db: &impl ConnectionTrait,
    subject: &str,
) -> AppResult<Option<user::Model>> {
    Ok(user::Entity::find()
        .filter(user::Column::Subject.eq(subject))
        .one(db)
        .await?)
}

pub async fn record_login(db: &DatabaseConnection, user_id: i64) -> AppResult<user::Model> {
    let mut active: user::ActiveModel = user::Entity::find_by_id(user_id)
        .one(db)
        .await?
        .ok_or(AppError::NotFound)?
        .into();
    active.last_login_at = Set(Some(Utc::now()));
    Ok(active.update(db).await?)
}

pub async fn region_ids(db: &impl ConnectionTrait, user_id: i64) -> AppResult<Vec<i32>> {
    Ok(user_region::Entity::find()
        .select_only()
        .column(user_region::Column::RegionId)
        .filter(user_region::Column::UserId.eq(user_id))
        .order_by_asc(user_region::Column::RegionId)
        .into_tuple()
        .all(db)
        .await?)
}

pub async fn by_ids(db: &DatabaseConnection, ids: &[i64]) -> AppResult<Vec<user::Model>> {
    Ok(user::Entity::find()
        .filter(user::Column::Id.is_in(ids.iter().copied()))
        .all(db)
        .await?)
}

pub async fn list(
    db: &DatabaseConnection,
    _grant: AuditGrant,
    status: Option<UserStatus>,
) -> AppResult<Vec<user::Model>> {
    let mut q = user::Entity::find();
    if let Some(s) = status {
        q = q.filter(user::Column::Status.eq(s));
    }
    Ok(q.order_by_asc(user::Column::Id).all(db).await?)
}

/// What a system admin sets on a user.
#[derive(Debug, Clone)]
pub struct AccessChange {
    pub role: Option<Role>,
    pub stt_id: Option<i32>,
    pub region_ids: Vec<i32>,
    pub status: UserStatus,
}

pub async fn set_access(
    db: &DatabaseConnection,
    _grant: UserAdminGrant,
    user_id: i64,
    change: AccessChange,
) -> AppResult<user::Model> {
    apply_access(db, user_id, change).await
}

/// For the operator's CLI: creates the user if needed, then applies `change`.
pub async fn upsert_with_access(
    db: &DatabaseConnection,
    subject: &str,
    email: Option<String>,
    name: Option<String>,
    change: AccessChange,
) -> AppResult<user::Model> {
    let claims = Claims {
        sub: subject.to_string(),
        iss: String::new(),
        aud: String::new(),
        exp: 0,
        nbf: None,
        email,
        name,
    };
    let p = principal_for(db, &claims).await?;
    apply_access(db, p.user.id, change).await
}

async fn apply_access(
    db: &DatabaseConnection,
    user_id: i64,
    change: AccessChange,
) -> AppResult<user::Model> {
    validate_change(db, &change).await?;
    let txn = db.begin().await?;
    let mut active: user::ActiveModel = user::Entity::find_by_id(user_id)
        .one(&txn)
        .await?
        .ok_or(AppError::NotFound)?
        .into();
    let analyst = change.role == Some(Role::DataAnalyst);
    let regional = change.role == Some(Role::RegionalStaff);
    active.role = Set(change.role);
    active.stt_id = Set(if analyst { change.stt_id } else { None });
    active.status = Set(change.status);
    let user = active.update(&txn).await?;
    user_region::Entity::delete_many()
        .filter(user_region::Column::UserId.eq(user_id))
        .exec(&txn)
        .await?;
    if regional {
        user_region::Entity::insert_many(change.region_ids.iter().map(|&region_id| {
            user_region::ActiveModel {
                user_id: Set(user_id),
                region_id: Set(region_id),
            }
        }))
        .exec_without_returning(&txn)
        .await?;
    }
    txn.commit().await?;
    Ok(user)
}

async fn validate_change(db: &DatabaseConnection, change: &AccessChange) -> AppResult<()> {
    match change.role {
        Some(Role::DataAnalyst) => {
            let stt_id = change
                .stt_id
                .ok_or_else(|| AppError::bad_input("a DATA_ANALYST needs sttId"))?;
            if stt::Entity::find_by_id(stt_id).one(db).await?.is_none() {
                return Err(AppError::bad_input(format!("no STT has id {stt_id}")));
            }
        }
        Some(Role::RegionalStaff) => {
            let mut ids = change.region_ids.clone();
            ids.sort_unstable();
            ids.dedup();
            if ids.is_empty() || ids.len() != change.region_ids.len() {
                return Err(AppError::bad_input(
                    "a REGIONAL_STAFF user needs distinct regionIds",
                ));
            }
            let known = region::Entity::find()
                .filter(region::Column::Id.is_in(ids.clone()))
                .count(db)
                .await?;
            if known != ids.len() as u64 {
                return Err(AppError::bad_input("regionIds names an unknown region"));
            }
        }
        _ => {}
    }
    if change.status == UserStatus::Approved && change.role.is_none() {
        return Err(AppError::bad_input("an APPROVED user needs a role"));
    }
    Ok(())
}

/// Every user, for the operator's CLI.
pub async fn all(db: &DatabaseConnection) -> AppResult<Vec<user::Model>> {
    Ok(user::Entity::find()
        .order_by_asc(user::Column::Id)
        .all(db)
        .await?)
}
