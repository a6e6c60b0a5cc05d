//! Authorization: the role table of PRODUCT.md, in one place.
//!
//! Resolvers and handlers never test roles themselves. They ask `Access` for
//! a capability (a file scope, the right to upload to one STT, user
//! administration), and the service functions that read or write data take
//! that capability as an argument. A capability can only be made here, so a
//! query that forgets the rules does not compile.

use std::sync::Arc;

use entity::{Role, UserStatus, report_file, stt, user};
use sea_orm::{ColumnTrait, Condition, sea_query::Query};

use crate::error::{AppError, AppResult};

/// The signed-in user and what they cover.
#[derive(Debug, Clone)]
pub struct Principal {
    pub user: user::Model,
    /// Regions of a `REGIONAL_STAFF` user; empty for everyone else.
    pub region_ids: Vec<i32>,
}

/// Who is asking: nobody, or a user known to the database.
#[derive(Debug, Clone)]
pub enum Access {
    Anonymous,
    User(Arc<Principal>),
}

/// Which STTs' data a capability reaches.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Reach {
    All,
    Stt(i32),
    Regions(Vec<i32>),
    Nothing,
}

/// Read access to report files (and the STTs they belong to).
#[derive(Debug, Clone)]
pub struct FileScope(Reach);

/// Permission to store a new version for one STT.
#[derive(Debug, Clone, Copy)]
pub struct UploadGrant {
    pub stt_id: i32,
    pub uploader_id: i64,
}

/// Permission to read users and the download audit (OFA and system admins).
#[derive(Debug, Clone, Copy)]
pub struct AuditGrant(());

/// Permission to approve users and set their roles (system admins).
#[derive(Debug, Clone, Copy)]
pub struct UserAdminGrant(());

impl Access {
    /// The caller, whatever their status: enough for `me`.
    pub fn principal(&self) -> AppResult<&Principal> {
        match self {
            Access::Anonymous => Err(AppError::Unauthenticated),
            Access::User(p) => Ok(p),
        }
    }

    /// An approved user with a role: everything but `me` needs one.
    fn active(&self) -> AppResult<(&Principal, Role)> {
        let p = self.principal()?;
        match (p.user.status, p.user.role) {
            (UserStatus::Approved, Some(role)) => Ok((p, role)),
            _ => Err(AppError::Forbidden),
        }
    }

    fn reach(p: &Principal, role: Role) -> Reach {
        match role {
            Role::OfaAdmin | Role::SystemAdmin => Reach::All,
            Role::DataAnalyst => p.user.stt_id.map_or(Reach::Nothing, Reach::Stt),
            Role::RegionalStaff => Reach::Regions(p.region_ids.clone()),
        }
    }

    /// Files (and STTs) the caller may list and see.
    pub fn files(&self) -> AppResult<FileScope> {
        let (p, role) = self.active()?;
        Ok(FileScope(Self::reach(p, role)))
    }

    /// Files the caller may download: like `files`, but regional staff
    /// review metadata only.
    pub fn downloads(&self) -> AppResult<FileScope> {
        let (p, role) = self.active()?;
        Ok(FileScope(match role {
            Role::RegionalStaff => Reach::Nothing,
            _ => Self::reach(p, role),
        }))
    }

    /// The right to upload for `stt_id`, refused with `FORBIDDEN`.
    pub fn upload(&self, stt_id: i32) -> AppResult<UploadGrant> {
        let (p, role) = self.active()?;
        let allowed = match role {
            Role::OfaAdmin | Role::SystemAdmin => true,
            Role::DataAnalyst => p.user.stt_id == Some(stt_id),
            Role::RegionalStaff => false,
        };
        if !allowed {
            return Err(AppError::Forbidden);
        }
        Ok(UploadGrant {
            stt_id,
            uploader_id: p.user.id,
        })
    }

    pub fn audit(&self) -> AppResult<AuditGrant> {
        match self.active()?.1 {
            Role::OfaAdmin | Role::SystemAdmin => Ok(AuditGrant(())),
            _ => Err(AppError::Forbidden),
        }
    }

    pub fn user_admin(&self) -> AppResult<UserAdminGrant> {
        match self.active()?.1 {
            Role::SystemAdmin => Ok(UserAdminGrant(())),
            _ => Err(AppError::Forbidden),
        }
    }
}

impl FileScope {
    /// Whether files of `stt_id` are in scope, when that can be told without
    /// the database (it cannot for regions: STTs belong to them there).
    pub fn reaches_stt(&self, stt_id: i32) -> Option<bool> {
        match &self.0 {
            Reach::All => Some(true),
            Reach::Stt(id) => Some(*id == stt_id),
            Reach::Nothing => Some(false),
            Reach::Regions(_) => None,
        }
    }

    /// Restricts a query on `stts` to the ones in scope.
    pub fn stt_condition(&self) -> Condition {
        match &self.0 {
            Reach::All => Condition::all(),
            Reach::Stt(id) => Condition::all().add(stt::Column::Id.eq(*id)),
            Reach::Regions(ids) => Condition::all().add(stt::Column::RegionId.is_in(ids.clone())),
            Reach::Nothing => Condition::all().add(stt::Column::Id.is_in(Vec::<i32>::new())),
        }
    }

    /// Restricts a query on `report_files` to the ones in scope.
    pub fn file_condition(&self) -> Condition {
        match &self.0 {
            Reach::All => Condition::all(),
            Reach::Stt(id) => Condition::all().add(report_file::Column::SttId.eq(*id)),
            Reach::Regions(ids) => Condition::all().add(
                report_file::Column::SttId.in_subquery(
                    Query::select()
                        .column(stt::Column::Id)
                        .from(stt::Entity)
                        .and_where(stt::Column::RegionId.is_in(ids.clone()))
                        .take(),
                ),
            ),
            Reach::Nothing => {
                Condition::all().add(report_file::Column::SttId.is_in(Vec::<i32>::new()))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn principal(role: Option<Role>, status: UserStatus, stt: Option<i32>) -> Access {
        Access::User(Arc::new(Principal {
            user: user::Model {
                id: 7,
                subject: "s".into(),
                email: None,
                name: None,
                role,
                stt_id: stt,
                status,
                created_at: chrono::Utc::now(),
                last_login_at: None,
            },
            region_ids: vec![1],
        }))
    }

    #[test]
    fn analysts_upload_only_for_their_own_stt() {
        let a = principal(Some(Role::DataAnalyst), UserStatus::Approved, Some(5));
        assert_eq!(a.upload(5).unwrap().uploader_id, 7);
        assert!(matches!(a.upload(6), Err(AppError::Forbidden)));
    }

    #[test]
    fn regional_staff_may_not_upload_or_download() {
        let a = principal(Some(Role::RegionalStaff), UserStatus::Approved, None);
        assert!(matches!(a.upload(1), Err(AppError::Forbidden)));
        assert_eq!(a.downloads().unwrap().0, Reach::Nothing);
        assert_eq!(a.files().unwrap().0, Reach::Regions(vec![1]));
    }

    #[test]
    fn pending_and_deactivated_users_only_have_me() {
        for status in [UserStatus::Pending, UserStatus::Deactivated] {
            let a = principal(Some(Role::SystemAdmin), status, None);
            assert!(a.principal().is_ok());
            assert!(matches!(a.files(), Err(AppError::Forbidden)));
            assert!(matches!(a.upload(1), Err(AppError::Forbidden)));
            assert!(matches!(a.user_admin(), Err(AppError::Forbidden)));
        }
    }

    #[test]
    fn anonymous_callers_are_unauthenticated() {
        assert!(matches!(
            Access::Anonymous.principal(),
            Err(AppError::Unauthenticated)
        ));
        assert!(matches!(
            Access::Anonymous.files(),
            Err(AppError::Unauthenticated)
        ));
    }

    #[test]
    fn scopes_tell_which_stts_they_reach() {
        let a = principal(Some(Role::DataAnalyst), UserStatus::Approved, Some(5));
        assert_eq!(a.downloads().unwrap().reaches_stt(5), Some(true));
        assert_eq!(a.downloads().unwrap().reaches_stt(6), Some(false));
        let r = principal(Some(Role::RegionalStaff), UserStatus::Approved, None);
        assert_eq!(r.downloads().unwrap().reaches_stt(5), Some(false));
        assert_eq!(
            r.files().unwrap().reaches_stt(5),
            None,
            "regions need the database"
        );
        let o = principal(Some(Role::OfaAdmin), UserStatus::Approved, None);
        assert_eq!(o.downloads().unwrap().reaches_stt(99), Some(true));
    }

    #[test]
    fn only_system_admins_manage_users() {
        let ofa = principal(Some(Role::OfaAdmin), UserStatus::Approved, None);
        assert!(ofa.audit().is_ok());
        assert!(matches!(ofa.user_admin(), Err(AppError::Forbidden)));
        let sys = principal(Some(Role::SystemAdmin), UserStatus::Approved, None);
        assert!(sys.user_admin().is_ok());
    }
}
