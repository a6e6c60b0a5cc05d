//! Authorization, and the only way to the data: the role table of
//! README ("Who may do what"), in one place.
//!
//! A request's `Access` (made by the `Gate` from a verified token) hands out
//! capabilities: `reference()`, `files()`, `downloads()`, `upload(stt)`,
//! `people()`, `audit()`, `user_admin()`. Each capability carries its scope
//! and the database connection, and the queries live on the capabilities
//! (in this module's children), with the scope turned into SQL conditions.
//! A capability can only be made here and nothing outside this module can
//! read its connection, so a resolver, loader or handler has no way to the
//! database except through one: a query that forgets the rules does not
//! compile.
//!
//! The connection is also where a request's statement budget is kept: every
//! capability an `Access` hands out (and every clone of one, in DataLoaders)
//! draws on the same `Budget`, and a capability gets its connection only by
//! paying for the statements it is about to run (`Conn::spend`). Once the
//! budget is spent, every later query of that request fails before it
//! reaches the database.

mod events;
mod files;
mod gate;
mod objects;
mod reference;
mod scans;
mod uploads;
mod users;

use std::{
    num::NonZeroUsize,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
};

use entity::{Role, UserStatus, user};
use sea_orm::DatabaseConnection;

pub use events::{AuditLog, NewDownloadEvent};
pub use files::{DEFAULT_PAGE, FileCache, Filter, MAX_PAGE, Page, PageRequest, Slot};
pub use gate::Gate;
pub use scans::{NewScanEvent, ScanFilter};
pub use uploads::NewReportFile;
pub use users::{AccessChange, Operator};

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
pub enum Caller {
    Anonymous,
    User(Arc<Principal>),
}

/// The caller of one request, and the capabilities they can be given.
#[derive(Clone)]
pub struct Access {
    caller: Caller,
    db: Db,
    budget: Budget,
    /// Why the request's credentials were refused, when it had some: what
    /// an anonymous caller is told instead of a bare "authentication
    /// required".
    refused: Option<Arc<str>>,
}

impl std::fmt::Debug for Access {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Access").field(&self.caller).finish()
    }
}

/// The connection and the per-instance file cache, as capabilities hold them.
#[derive(Clone)]
struct Db {
    conn: DatabaseConnection,
    files: FileCache,
}

/// The SQL statements one request may still run, shared by every
/// capability of its `Access`.
#[derive(Clone)]
struct Budget(Arc<Spent>);

struct Spent {
    /// `None`: the console, which runs what the operator asks.
    limit: Option<NonZeroUsize>,
    statements: AtomicUsize,
}

impl Budget {
    fn new(limit: NonZeroUsize) -> Self {
        Budget(Arc::new(Spent {
            limit: Some(limit),
            statements: AtomicUsize::new(0),
        }))
    }

    fn unlimited() -> Self {
        Budget(Arc::new(Spent {
            limit: None,
            statements: AtomicUsize::new(0),
        }))
    }

    /// Takes `statements` from the budget, or refuses when they do not fit.
    /// A refusal still counts them, so every later request for more is
    /// refused too: the request runs no further SQL.
    fn spend(&self, statements: usize) -> AppResult<()> {
        let before = self.0.statements.fetch_add(statements, Ordering::Relaxed);
        match self.0.limit {
            Some(limit) if before.saturating_add(statements) > limit.get() => {
                Err(AppError::bad_input(format!(
                    "this request needs more than {limit} database statements, the most one \
                     request may run: ask for fewer root fields or aliases, or split it into \
                     several requests"
                )))
            }
            _ => Ok(()),
        }
    }
}

/// The connection as a capability holds it: usable only by paying for the
/// statements about to run.
#[derive(Clone)]
struct Conn {
    conn: DatabaseConnection,
    budget: Budget,
}

impl Conn {
    /// The connection, once `statements` are paid for from the request's
    /// budget.
    fn spend(&self, statements: usize) -> AppResult<&DatabaseConnection> {
        self.budget.spend(statements)?;
        Ok(&self.conn)
    }
}

/// Which STTs' data a capability reaches.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Reach {
    All,
    Stt(i32),
    Regions(Vec<i32>),
    Nothing,
}

/// Reads STT and region reference data by id (any signed-in user: it is
/// public reference data, named by files and users they can see).
#[derive(Clone)]
pub struct Reference {
    db: Conn,
}

/// Reads report files (and the STTs they belong to) within a reach.
#[derive(Clone)]
pub struct Files {
    db: Conn,
    cache: FileCache,
    reach: Reach,
}

/// Stores new versions for one STT, as one uploader.
#[derive(Clone)]
pub struct UploadGrant {
    db: Conn,
    stt_id: i32,
    uploader_id: i64,
}

/// Reads users by id: the uploaders of files and the users in the audit.
#[derive(Clone)]
pub struct People {
    db: Conn,
}

/// Lists users and reads the download and virus-scan audits (OFA and
/// system admins).
#[derive(Clone)]
pub struct Audit {
    db: Conn,
}

/// Approves users and sets their roles (system admins).
#[derive(Clone)]
pub struct UserAdmin {
    db: Conn,
}

impl Access {
    fn new(caller: Caller, db: Db, budget: Budget) -> Self {
        Access {
            caller,
            db,
            budget,
            refused: None,
        }
    }

    /// This anonymous access, with the reason its credentials were refused.
    pub(crate) fn refused_because(mut self, reason: impl Into<Arc<str>>) -> Self {
        self.refused = Some(reason.into());
        self
    }

    /// The error of an anonymous caller: with the reason its token was
    /// refused, when it sent one.
    fn unauthenticated(&self) -> AppError {
        match &self.refused {
            Some(reason) => AppError::InvalidToken(reason.to_string()),
            None => AppError::Unauthenticated,
        }
    }

    pub fn caller(&self) -> &Caller {
        &self.caller
    }

    /// Whether the caller is an approved OFA or system admin: they see
    /// everything about every user.
    pub fn is_admin(&self) -> bool {
        matches!(self.active(), Ok((_, Role::OfaAdmin | Role::SystemAdmin)))
    }

    /// The connection for a capability, drawing on this request's budget.
    fn conn(&self) -> Conn {
        Conn {
            conn: self.db.conn.clone(),
            budget: self.budget.clone(),
        }
    }

    fn files_within(&self, reach: Reach) -> Files {
        Files {
            db: self.conn(),
            cache: self.db.files.clone(),
            reach,
        }
    }

    /// The caller, whatever their status: enough for `me`.
    pub fn principal(&self) -> AppResult<&Principal> {
        match &self.caller {
            Caller::Anonymous => Err(self.unauthenticated()),
            Caller::User(p) => Ok(p),
        }
    }

    /// An approved user with a role: everything but `me` needs one.
    fn active(&self) -> AppResult<(&Principal, Role)> {
        let p = self.principal()?;
        match (p.user.status, p.user.role) {
            (UserStatus::Approved, Some(role)) => Ok((p, role)),
            (UserStatus::Pending, _) => Err(AppError::denied(
                "your account is waiting for approval: a system administrator must approve it \
                 and give it a role",
            )),
            (UserStatus::Deactivated, _) => Err(AppError::denied(
                "your account is deactivated: ask a system administrator",
            )),
            (UserStatus::Approved, None) => Err(AppError::denied(
                "your account has no role yet: ask a system administrator",
            )),
        }
    }

    fn reach(p: &Principal, role: Role) -> Reach {
        match role {
            Role::OfaAdmin | Role::SystemAdmin => Reach::All,
            Role::DataAnalyst => p.user.stt_id.map_or(Reach::Nothing, Reach::Stt),
            Role::RegionalStaff => Reach::Regions(p.region_ids.clone()),
        }
    }

    /// STT and region reference data: any signed-in user, whatever their
    /// status (a pending user's `me { stt }` reads it).
    pub fn reference(&self) -> AppResult<Reference> {
        self.principal()?;
        Ok(Reference { db: self.conn() })
    }

    /// Files (and STTs) the caller may list and see.
    pub fn files(&self) -> AppResult<Files> {
        let (p, role) = self.active()?;
        Ok(self.files_within(Self::reach(p, role)))
    }

    /// Files the caller may download: like `files`, but regional staff
    /// review metadata only.
    pub fn downloads(&self) -> AppResult<Files> {
        let (p, role) = self.active()?;
        Ok(self.files_within(match role {
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
            return Err(match (role, p.user.stt_id) {
                (Role::DataAnalyst, Some(own)) => AppError::denied(format!(
                    "you may upload only for your own STT (id {own}), not for STT {stt_id}"
                )),
                (Role::DataAnalyst, None) => {
                    AppError::denied("your account has no STT: ask a system administrator")
                }
                _ => AppError::denied("regional staff review files; they do not upload them"),
            });
        }
        Ok(UploadGrant {
            db: self.conn(),
            stt_id,
            uploader_id: p.user.id,
        })
    }

    /// Whether the caller may upload at all (to some STT): settled before an
    /// upload's body is read. Which STT is checked by `upload`.
    pub fn uploader(&self) -> AppResult<()> {
        match self.active()?.1 {
            Role::RegionalStaff => Err(AppError::denied(
                "regional staff review files; they do not upload them",
            )),
            _ => Ok(()),
        }
    }

    /// Users by id, as files and events name them: approved users.
    pub fn people(&self) -> AppResult<People> {
        self.active()?;
        Ok(People { db: self.conn() })
    }

    pub fn audit(&self) -> AppResult<Audit> {
        match self.active()?.1 {
            Role::OfaAdmin | Role::SystemAdmin => Ok(Audit { db: self.conn() }),
            _ => Err(AppError::denied(
                "only OFA and system administrators may read users and the audits",
            )),
        }
    }

    pub fn user_admin(&self) -> AppResult<UserAdmin> {
        match self.active()?.1 {
            Role::SystemAdmin => Ok(UserAdmin { db: self.conn() }),
            _ => Err(AppError::denied(
                "only system administrators may change users' access",
            )),
        }
    }
}

impl UploadGrant {
    pub fn stt_id(&self) -> i32 {
        self.stt_id
    }

    pub fn uploader_id(&self) -> i64 {
        self.uploader_id
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn principal(role: Option<Role>, status: UserStatus, stt: Option<i32>) -> Access {
        let user = user::Model {
            id: 7,
            subject: "s".into(),
            email: None,
            name: None,
            role,
            stt_id: stt,
            status,
            created_at: chrono::Utc::now(),
            last_login_at: None,
        };
        Access::new(
            Caller::User(Arc::new(Principal {
                user,
                region_ids: vec![1],
            })),
            db(),
            Budget::unlimited(),
        )
    }

    fn db() -> Db {
        Db {
            conn: DatabaseConnection::default(),
            files: FileCache::new(),
        }
    }

    fn anonymous() -> Access {
        Access::new(Caller::Anonymous, db(), Budget::unlimited())
    }

    fn forbidden<T>(r: AppResult<T>) -> bool {
        r.err().is_some_and(|e| e.is_forbidden())
    }

    fn message<T>(r: AppResult<T>) -> String {
        r.err().map(|e| e.to_string()).unwrap_or_default()
    }

    #[test]
    fn refusals_say_why() {
        let pending = principal(Some(Role::DataAnalyst), UserStatus::Pending, Some(5));
        assert!(message(pending.files()).contains("waiting for approval"));
        let gone = principal(Some(Role::DataAnalyst), UserStatus::Deactivated, Some(5));
        assert!(message(gone.files()).contains("deactivated"));
        let analyst = principal(Some(Role::DataAnalyst), UserStatus::Approved, Some(5));
        let other = message(analyst.upload(6));
        assert!(
            other.contains("your own STT") && other.contains('6'),
            "{other}"
        );
    }

    #[test]
    fn analysts_upload_only_for_their_own_stt() {
        let a = principal(Some(Role::DataAnalyst), UserStatus::Approved, Some(5));
        assert_eq!(a.upload(5).unwrap().uploader_id(), 7);
        assert!(forbidden(a.upload(6)));
    }

    #[test]
    fn regional_staff_may_not_upload_or_download() {
        let a = principal(Some(Role::RegionalStaff), UserStatus::Approved, None);
        assert!(forbidden(a.upload(1)));
        assert_eq!(a.downloads().unwrap().reach, Reach::Nothing);
        assert_eq!(a.files().unwrap().reach, Reach::Regions(vec![1]));
    }

    #[test]
    fn pending_and_deactivated_users_only_have_me() {
        for status in [UserStatus::Pending, UserStatus::Deactivated] {
            let a = principal(Some(Role::SystemAdmin), status, None);
            assert!(a.principal().is_ok());
            assert!(a.reference().is_ok(), "me {{ stt }} reads reference data");
            assert!(forbidden(a.files()));
            assert!(forbidden(a.people()));
            assert!(forbidden(a.upload(1)));
            assert!(forbidden(a.audit()));
            assert!(forbidden(a.user_admin()));
        }
    }

    #[test]
    fn anonymous_callers_are_unauthenticated() {
        let a = anonymous();
        assert!(matches!(a.principal(), Err(AppError::Unauthenticated)));
        assert!(matches!(a.reference(), Err(AppError::Unauthenticated)));
        assert!(matches!(a.files(), Err(AppError::Unauthenticated)));
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
    fn a_budget_refuses_what_does_not_fit_and_everything_after() {
        let budget = Budget::new(NonZeroUsize::new(3).unwrap());
        assert!(budget.spend(2).is_ok());
        let refused = budget.spend(2).unwrap_err();
        assert_eq!(refused.code(), "BAD_USER_INPUT");
        assert!(refused.to_string().contains("more than 3"), "{refused}");
        assert!(budget.spend(1).is_err(), "nothing runs after a refusal");
        let shared = budget.clone();
        assert!(shared.spend(1).is_err(), "clones share the budget");
        assert!(Budget::unlimited().spend(usize::MAX / 2).is_ok());
    }

    #[test]
    fn admins_are_approved_ofa_and_system_admins() {
        let admin = |role, status| principal(Some(role), status, None).is_admin();
        assert!(admin(Role::OfaAdmin, UserStatus::Approved));
        assert!(admin(Role::SystemAdmin, UserStatus::Approved));
        assert!(!admin(Role::SystemAdmin, UserStatus::Pending));
        assert!(!admin(Role::SystemAdmin, UserStatus::Deactivated));
        assert!(!admin(Role::DataAnalyst, UserStatus::Approved));
        assert!(!admin(Role::RegionalStaff, UserStatus::Approved));
        assert!(!anonymous().is_admin());
    }

    #[test]
    fn only_system_admins_manage_users() {
        let ofa = principal(Some(Role::OfaAdmin), UserStatus::Approved, None);
        assert!(ofa.audit().is_ok());
        assert!(forbidden(ofa.user_admin()));
        let sys = principal(Some(Role::SystemAdmin), UserStatus::Approved, None);
        assert!(sys.user_admin().is_ok());
        let analyst = principal(Some(Role::DataAnalyst), UserStatus::Approved, Some(5));
        assert!(forbidden(analyst.audit()));
        assert!(analyst.people().is_ok());
    }
}
