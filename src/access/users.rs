//! Users: who a subject is, who may see whom, and changes of access.

use std::{collections::HashMap, sync::Arc};

use chrono::Utc;
use entity::{Role, UserStatus, region, stt, user, user_region};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait,
    PaginatorTrait, QueryFilter, QueryOrder, QuerySelect, Set, TransactionTrait,
    sea_query::OnConflict,
};

use super::{Access, Audit, Budget, Caller, Db, FileCache, People, Principal, UserAdmin};
use crate::{
    app::StartError,
    auth::Claims,
    config::DatabaseConfig,
    db,
    error::{AppError, AppResult},
};

/// The user behind a verified token. A subject seen for the first time
/// becomes a `PENDING` user with no role.
pub(super) async fn principal_for(
    db: &DatabaseConnection,
    subject: &str,
    email: Option<&str>,
    name: Option<&str>,
) -> AppResult<Principal> {
    let user = match find_by_subject(db, subject).await? {
        Some(u) => u,
        None => {
            // Two first requests of one subject may race: the loser's insert
            // does nothing and both read the same row.
            user::Entity::insert(user::ActiveModel {
                subject: Set(subject.to_string()),
                email: Set(email.map(str::to_string)),
                name: Set(name.map(str::to_string)),
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
            find_by_subject(db, subject)
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

pub(super) async fn principal_for_claims(
    db: &DatabaseConnection,
    claims: &Claims,
) -> AppResult<Principal> {
    principal_for(
        db,
        &claims.sub,
        claims.email.as_deref(),
        claims.name.as_deref(),
    )
    .await
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

/// Records a sign-in, with the email and name the identity provider gave
/// now (people change them there; what it did not give is kept).
pub(super) async fn record_login(
    db: &DatabaseConnection,
    user_id: i64,
    claims: &Claims,
) -> AppResult<user::Model> {
    let mut active: user::ActiveModel = user::Entity::find_by_id(user_id)
        .one(db)
        .await?
        .ok_or(AppError::NotFound)?
        .into();
    active.last_login_at = Set(Some(Utc::now()));
    if let Some(email) = &claims.email {
        active.email = Set(Some(email.clone()));
    }
    if let Some(name) = &claims.name {
        active.name = Set(Some(name.clone()));
    }
    Ok(active.update(db).await?)
}

async fn region_ids(db: &impl ConnectionTrait, user_id: i64) -> AppResult<Vec<i32>> {
    Ok(user_region::Entity::find()
        .select_only()
        .column(user_region::Column::RegionId)
        .filter(user_region::Column::UserId.eq(user_id))
        .order_by_asc(user_region::Column::RegionId)
        .into_tuple()
        .all(db)
        .await?)
}

impl People {
    pub async fn by_ids(&self, ids: &[i64]) -> AppResult<HashMap<i64, user::Model>> {
        let rows = user::Entity::find()
            .filter(user::Column::Id.is_in(ids.iter().copied()))
            .all(self.db.spend(1)?)
            .await?;
        Ok(rows.into_iter().map(|u| (u.id, u)).collect())
    }

    /// The regions of each of these users, in one statement (users without
    /// regions are missing from the map).
    pub async fn region_ids_of(&self, user_ids: &[i64]) -> AppResult<HashMap<i64, Vec<i32>>> {
        let rows: Vec<(i64, i32)> = user_region::Entity::find()
            .select_only()
            .column(user_region::Column::UserId)
            .column(user_region::Column::RegionId)
            .filter(user_region::Column::UserId.is_in(user_ids.iter().copied()))
            .order_by_asc(user_region::Column::RegionId)
            .into_tuple()
            .all(self.db.spend(1)?)
            .await?;
        let mut regions: HashMap<i64, Vec<i32>> = HashMap::new();
        for (user_id, region_id) in rows {
            regions.entry(user_id).or_default().push(region_id);
        }
        Ok(regions)
    }
}

impl Audit {
    /// All users, optionally by status.
    pub async fn users(&self, status: Option<UserStatus>) -> AppResult<Vec<user::Model>> {
        let mut q = user::Entity::find();
        if let Some(s) = status {
            q = q.filter(user::Column::Status.eq(s));
        }
        Ok(q.order_by_asc(user::Column::Id)
            .all(self.db.spend(1)?)
            .await?)
    }
}

/// What a system admin sets on a user.
#[derive(Debug, Clone)]
pub struct AccessChange {
    pub role: Option<Role>,
    pub stt_id: Option<i32>,
    pub region_ids: Vec<i32>,
    pub status: UserStatus,
}

/// Statements a change of access runs: the check of its STT or regions,
/// then reading, updating and re-linking the user.
const SET_ACCESS_STATEMENTS: usize = 5;

impl UserAdmin {
    pub async fn set_access(&self, user_id: i64, change: AccessChange) -> AppResult<user::Model> {
        apply_access(self.db.spend(SET_ACCESS_STATEMENTS)?, user_id, change).await
    }
}

/// The operator at the console: the CLI (and test harnesses) act with every
/// right, on a connection they opened themselves. Nothing that serves
/// requests has one.
pub struct Operator {
    pub(super) db: DatabaseConnection,
}

impl Operator {
    /// The operator's own connection, with the schema brought up to date
    /// and the reference data loaded.
    pub async fn connect(config: &DatabaseConfig) -> Result<Self, StartError> {
        let db = db::connect(config, Default::default(), None).await?;
        db::prepare(&db).await.map_err(StartError::Prepare)?;
        Ok(Operator { db })
    }

    /// The operator on a connection the caller opened (test harnesses).
    pub fn new(db: DatabaseConnection) -> Self {
        Operator { db }
    }

    /// Creates the user if needed, then applies `change`.
    pub async fn upsert_user(
        &self,
        subject: &str,
        email: Option<&str>,
        name: Option<&str>,
        change: AccessChange,
    ) -> AppResult<user::Model> {
        let p = principal_for(&self.db, subject, email, name).await?;
        apply_access(&self.db, p.user.id, change).await
    }

    /// Every user.
    pub async fn users(&self) -> AppResult<Vec<user::Model>> {
        Ok(user::Entity::find()
            .order_by_asc(user::Column::Id)
            .all(&self.db)
            .await?)
    }

    /// What `subject` may do, as a request of theirs would find it.
    pub async fn access_of(&self, subject: &str) -> AppResult<Access> {
        let principal = principal_for(&self.db, subject, None, None).await?;
        Ok(Access::new(
            Caller::User(Arc::new(principal)),
            Db {
                conn: self.db.clone(),
                files: FileCache::new(),
            },
            Budget::unlimited(),
        ))
    }
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
            let stt_id = change.stt_id.ok_or_else(|| {
                AppError::bad_input(
                    "a DATA_ANALYST needs an STT (sttId; on the command line, --stt-id)",
                )
            })?;
            if stt::Entity::find_by_id(stt_id).one(db).await?.is_none() {
                return Err(AppError::bad_input(format!(
                    "no STT has id {stt_id} (`reportfiles stt list` shows the ids)"
                )));
            }
        }
        Some(Role::RegionalStaff) => {
            let mut ids = change.region_ids.clone();
            ids.sort_unstable();
            ids.dedup();
            if ids.is_empty() || ids.len() != change.region_ids.len() {
                return Err(AppError::bad_input(
                    "a REGIONAL_STAFF user needs one or more distinct regions (regionIds; on the command line, --region-id, repeated)",
                ));
            }
            let known = region::Entity::find()
                .filter(region::Column::Id.is_in(ids.clone()))
                .count(db)
                .await?;
            if known != ids.len() as u64 {
                return Err(AppError::bad_input(
                    "a region id is unknown: regions are 1 to 10",
                ));
            }
        }
        _ => {}
    }
    if change.status == UserStatus::Approved && change.role.is_none() {
        return Err(AppError::bad_input(
            "an APPROVED user needs a role (role; on the command line, --role)",
        ));
    }
    Ok(())
}
