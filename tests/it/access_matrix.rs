//! The role table of the README ("Who may do what"), checked role by role against own and other
//! STTs through every read query.

use std::time::Duration;

use entity::{Quarter, Role, Section, UserStatus, user};
use serde_json::{Value, json};

use crate::common::{ALABAMA, ALABAMA_REGION, ALASKA, TestApp, db_tests, error_codes, wait_until};

#[derive(Debug, Clone, Copy, PartialEq)]
enum Sees {
    /// Both files (every STT).
    All,
    /// The Alabama file only.
    Own,
    /// Refused with this code.
    Refused(&'static str),
}

struct Case {
    who: &'static str,
    role: Option<Role>,
    stt: Option<i32>,
    regions: &'static [i32],
    status: UserStatus,
    sees: Sees,
}

const CASES: &[Case] = &[
    Case {
        who: "analyst",
        role: Some(Role::DataAnalyst),
        stt: Some(ALABAMA),
        regions: &[],
        status: UserStatus::Approved,
        sees: Sees::Own,
    },
    Case {
        who: "regional",
        role: Some(Role::RegionalStaff),
        stt: None,
        regions: &[ALABAMA_REGION],
        status: UserStatus::Approved,
        sees: Sees::Own,
    },
    Case {
        who: "ofa",
        role: Some(Role::OfaAdmin),
        stt: None,
        regions: &[],
        status: UserStatus::Approved,
        sees: Sees::All,
    },
    Case {
        who: "sysadmin",
        role: Some(Role::SystemAdmin),
        stt: None,
        regions: &[],
        status: UserStatus::Approved,
        sees: Sees::All,
    },
    Case {
        who: "pending",
        role: None,
        stt: None,
        regions: &[],
        status: UserStatus::Pending,
        sees: Sees::Refused("FORBIDDEN"),
    },
    Case {
        who: "deactivated-admin",
        role: Some(Role::SystemAdmin),
        stt: None,
        regions: &[],
        status: UserStatus::Deactivated,
        sees: Sees::Refused("FORBIDDEN"),
    },
    Case {
        who: "deactivated-analyst",
        role: Some(Role::DataAnalyst),
        stt: Some(ALABAMA),
        regions: &[],
        status: UserStatus::Deactivated,
        sees: Sees::Refused("FORBIDDEN"),
    },
];

impl Case {
    /// This case's user, and a token for them.
    async fn user(&self, app: &TestApp) -> (user::Model, String) {
        app.user(self.who, self.role, self.stt, self.regions, self.status)
            .await
    }
}

struct World {
    own: String,
    other: String,
}

async fn world(app: &TestApp) -> World {
    let (admin, _) = app
        .user(
            "uploader",
            Some(Role::OfaAdmin),
            None,
            &[],
            UserStatus::Approved,
        )
        .await;
    let own = app
        .insert_file(&admin, ALABAMA, 2026, Quarter::Q1, Section::ActiveCaseData)
        .await;
    let other = app
        .insert_file(&admin, ALASKA, 2026, Quarter::Q1, Section::ActiveCaseData)
        .await;
    World {
        own: own.id.to_string(),
        other: other.id.to_string(),
    }
}

const FILE: &str = "query($id: ID!) { reportFile(id: $id) { id stt { id } } }";
const FILES: &str = "{ reportFiles { totalCount edges { node { id } } } }";
const STTS: &str = "{ stts { id region { id } } }";

fn ids(body: &Value) -> Vec<String> {
    body["data"]["reportFiles"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["node"]["id"].as_str().unwrap().to_string())
        .collect()
}

async fn each_role_sees_exactly_its_files(app: TestApp) {
    let w = world(&app).await;
    for case in CASES {
        let (_, token) = case.user(&app).await;
        let t = Some(token.as_str());
        let own = app.gql(t, FILE, json!({ "id": w.own })).await;
        let other = app.gql(t, FILE, json!({ "id": w.other })).await;
        let list = app.gql(t, FILES, json!({})).await;
        match case.sees {
            Sees::All => {
                assert_eq!(own["data"]["reportFile"]["id"], w.own, "{}", case.who);
                assert_eq!(other["data"]["reportFile"]["id"], w.other, "{}", case.who);
                let mut got = ids(&list);
                got.sort();
                let mut want = vec![w.own.clone(), w.other.clone()];
                want.sort();
                assert_eq!(got, want, "{}", case.who);
                assert_eq!(list["data"]["reportFiles"]["totalCount"], 2, "{}", case.who);
            }
            Sees::Own => {
                assert_eq!(own["data"]["reportFile"]["id"], w.own, "{}", case.who);
                // Another STT's file does not exist for this user: null, no error.
                assert_eq!(other["data"]["reportFile"], Value::Null, "{}", case.who);
                assert!(other["errors"].is_null(), "{}: {other}", case.who);
                assert_eq!(ids(&list), vec![w.own.clone()], "{}", case.who);
                assert_eq!(list["data"]["reportFiles"]["totalCount"], 1, "{}", case.who);
            }
            Sees::Refused(code) => {
                for body in [&own, &other, &list] {
                    assert_eq!(error_codes(body), vec![code], "{}: {body}", case.who);
                }
            }
        }
    }
}

async fn each_role_sees_exactly_its_stts(app: TestApp) {
    for case in CASES {
        let (_, token) = case.user(&app).await;
        let body = app.gql(Some(&token), STTS, json!({})).await;
        match case.sees {
            Sees::Refused(code) => assert_eq!(error_codes(&body), vec![code], "{}", case.who),
            Sees::All => assert_eq!(
                body["data"]["stts"].as_array().unwrap().len(),
                131,
                "{}",
                case.who
            ),
            Sees::Own => {
                let stts = body["data"]["stts"].as_array().unwrap();
                assert!(!stts.is_empty(), "{}", case.who);
                if case.role == Some(Role::DataAnalyst) {
                    assert_eq!(stts.len(), 1);
                    assert_eq!(stts[0]["id"], ALABAMA);
                } else {
                    assert!(
                        stts.iter().all(|s| s["region"]["id"] == ALABAMA_REGION),
                        "{}",
                        case.who
                    );
                    assert!(stts.iter().any(|s| s["id"] == ALABAMA));
                }
            }
        }
    }
}

async fn every_user_reads_me_whatever_their_status(app: TestApp) {
    for case in CASES {
        let (user, token) = case.user(&app).await;
        let body = app
            .gql(Some(&token), "{ me { id subject status } }", json!({}))
            .await;
        assert_eq!(
            body["data"]["me"]["id"],
            user.id.to_string(),
            "{}",
            case.who
        );
        assert_eq!(
            body["data"]["me"]["status"],
            case.status.as_str(),
            "{}",
            case.who
        );
    }
}

async fn anonymous_callers_are_unauthenticated_everywhere(app: TestApp) {
    let w = world(&app).await;
    for (query, vars) in [
        ("{ me { id } }", json!({})),
        (FILE, json!({ "id": w.own })),
        (FILES, json!({})),
        (STTS, json!({})),
        ("{ users { id } }", json!({})),
    ] {
        let body = app.gql(None, query, vars).await;
        assert_eq!(
            error_codes(&body),
            vec!["UNAUTHENTICATED"],
            "{query}: {body}"
        );
        assert!(
            !body.to_string().contains(&w.own),
            "{query} leaked a file id"
        );
    }
}

async fn only_admins_list_users(app: TestApp) {
    for case in CASES {
        let (_, token) = case.user(&app).await;
        let body = app
            .gql(Some(&token), "{ users { subject } }", json!({}))
            .await;
        let admin = matches!(case.role, Some(Role::OfaAdmin | Role::SystemAdmin))
            && case.status == UserStatus::Approved;
        if admin {
            assert!(
                body["data"]["users"].as_array().unwrap().len() >= 2,
                "{}",
                case.who
            );
        } else {
            assert_eq!(
                error_codes(&body),
                vec!["FORBIDDEN"],
                "{}: {body}",
                case.who
            );
        }
    }
}

async fn only_system_admins_set_user_access(app: TestApp) {
    let (target, target_token) = app.pending("newcomer").await;
    const SET: &str = "mutation($id: ID!, $stt: Int) { setUserAccess(userId: $id, role: DATA_ANALYST, sttId: $stt, status: APPROVED) { status role stt { id } } }";
    let vars = json!({ "id": target.id.to_string(), "stt": ALABAMA });
    for case in CASES
        .iter()
        .filter(|c| c.role != Some(Role::SystemAdmin) || c.status != UserStatus::Approved)
    {
        let (_, token) = case.user(&app).await;
        let body = app.gql(Some(&token), SET, vars.clone()).await;
        assert_eq!(error_codes(&body), vec!["FORBIDDEN"], "{}", case.who);
    }
    // Still pending: nothing was half-applied.
    let me = app
        .gql(Some(&target_token), "{ me { status role } }", json!({}))
        .await;
    assert_eq!(
        me["data"]["me"],
        json!({ "status": "PENDING", "role": null })
    );

    let (_, admin) = app.admin().await;
    let body = app.gql(Some(&admin), SET, vars).await;
    assert_eq!(
        body["data"]["setUserAccess"],
        json!({ "status": "APPROVED", "role": "DATA_ANALYST", "stt": { "id": ALABAMA } })
    );
    let stts = app.gql(Some(&target_token), STTS, json!({})).await;
    assert_eq!(stts["data"]["stts"].as_array().unwrap().len(), 1);
}

async fn set_user_access_refuses_incoherent_changes(app: TestApp) {
    let (target, _) = app.pending("newcomer").await;
    let (_, admin) = app.admin().await;
    let id = target.id.to_string();
    for (args, why) in [
        (
            "role: DATA_ANALYST, status: APPROVED",
            "an analyst without an STT",
        ),
        (
            "role: DATA_ANALYST, sttId: 99999, status: APPROVED",
            "an unknown STT",
        ),
        (
            "role: REGIONAL_STAFF, status: APPROVED",
            "regional staff without regions",
        ),
        (
            "role: REGIONAL_STAFF, regionIds: [4, 4], status: APPROVED",
            "repeated regions",
        ),
        (
            "role: REGIONAL_STAFF, regionIds: [42], status: APPROVED",
            "an unknown region",
        ),
        ("status: APPROVED", "approval without a role"),
    ] {
        let q = format!("mutation {{ setUserAccess(userId: \"{id}\", {args}) {{ id }} }}");
        let body = app.gql(Some(&admin), &q, json!({})).await;
        assert_eq!(error_codes(&body), vec!["BAD_USER_INPUT"], "{why}: {body}");
    }
    let q =
        "mutation { setUserAccess(userId: \"987654\", role: OFA_ADMIN, status: APPROVED) { id } }";
    assert_eq!(
        error_codes(&app.gql(Some(&admin), q, json!({})).await),
        vec!["NOT_FOUND"]
    );
    let q = "mutation { setUserAccess(userId: \"abc\", role: OFA_ADMIN, status: APPROVED) { id } }";
    assert_eq!(
        error_codes(&app.gql(Some(&admin), q, json!({})).await),
        vec!["BAD_USER_INPUT"]
    );
    let users = app
        .gql(
            Some(&admin),
            "{ users(status: PENDING) { subject role } }",
            json!({}),
        )
        .await;
    assert_eq!(
        users["data"]["users"],
        json!([{ "subject": "newcomer", "role": null }])
    );
}

async fn regional_staff_regions_are_listed_on_their_user(app: TestApp) {
    let (_, token) = app.regional("regional", &[4, 10]).await;
    let body = app
        .gql(Some(&token), "{ me { regions { id name } } }", json!({}))
        .await;
    assert_eq!(
        body["data"]["me"]["regions"],
        json!([{ "id": 4, "name": "Atlanta" }, { "id": 10, "name": "Seattle" }])
    );
}

async fn a_change_of_access_applies_at_once_on_the_instance_that_made_it(app: TestApp) {
    let (user, token) = app.analyst("analyst", ALABAMA).await;
    let (_, admin) = app.admin().await;
    assert!(app.gql(Some(&token), STTS, json!({})).await["errors"].is_null());
    let q = format!(
        "mutation {{ setUserAccess(userId: \"{}\", role: DATA_ANALYST, sttId: 1, status: DEACTIVATED) {{ status }} }}",
        user.id
    );
    assert_eq!(
        app.gql(Some(&admin), &q, json!({})).await["data"]["setUserAccess"]["status"],
        "DEACTIVATED"
    );
    let body = app.gql(Some(&token), STTS, json!({})).await;
    assert_eq!(error_codes(&body), vec!["FORBIDDEN"], "{body}");
}

async fn other_instances_apply_a_change_within_the_cache_ttl(app: TestApp) {
    let app = app.with_vars(&[("AUTH_CACHE_TTL_MS", "300")]).await;
    let other = app.sibling().await;
    let (user, token) = app.analyst("analyst", ALABAMA).await;
    let (_, admin) = app.admin().await;
    assert!(other.gql(Some(&token), STTS, json!({})).await["errors"].is_null());
    let q = format!(
        "mutation {{ setUserAccess(userId: \"{}\", role: DATA_ANALYST, sttId: 1, status: DEACTIVATED) {{ status }} }}",
        user.id
    );
    app.gql(Some(&admin), &q, json!({})).await;
    // The other instance read the user before the change: it refuses them
    // once that entry is older than the TTL (300 ms), well within 400 ms.
    wait_until(
        Duration::from_millis(400),
        "the other instance refuses the deactivated user",
        async || error_codes(&other.gql(Some(&token), STTS, json!({})).await) == ["FORBIDDEN"],
    )
    .await;
}

db_tests!(
    a_change_of_access_applies_at_once_on_the_instance_that_made_it,
    other_instances_apply_a_change_within_the_cache_ttl,
    each_role_sees_exactly_its_files,
    each_role_sees_exactly_its_stts,
    every_user_reads_me_whatever_their_status,
    anonymous_callers_are_unauthenticated_everywhere,
    only_admins_list_users,
    only_system_admins_set_user_access,
    set_user_access_refuses_incoherent_changes,
    regional_staff_regions_are_listed_on_their_user,
);
