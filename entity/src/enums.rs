use sea_orm::entity::prelude::*;

/// Stored as the GraphQL spelling, so logs, SQL and API agree.
macro_rules! string_enum {
    ($(#[$doc:meta])* $name:ident { $($variant:ident = $value:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, async_graphql::Enum)]
        #[sea_orm(rs_type = "String", db_type = "String(StringLen::N(24))")]
        pub enum $name {
            $(
                #[sea_orm(string_value = $value)]
                #[graphql(name = $value)]
                $variant,
            )+
        }

        impl $name {
            pub fn as_str(self) -> &'static str {
                match self { $(Self::$variant => $value,)+ }
            }
        }
    };
}

string_enum!(
    /// What a user may do; see the role table in PRODUCT.md.
    Role {
        DataAnalyst = "DATA_ANALYST",
        RegionalStaff = "REGIONAL_STAFF",
        OfaAdmin = "OFA_ADMIN",
        SystemAdmin = "SYSTEM_ADMIN",
    }
);

string_enum!(
    UserStatus {
        Pending = "PENDING",
        Approved = "APPROVED",
        Deactivated = "DEACTIVATED",
    }
);

string_enum!(
    SttType {
        State = "STATE",
        Territory = "TERRITORY",
        Tribe = "TRIBE",
    }
);

string_enum!(
    /// Fiscal quarter; Q1 is October to December of the previous calendar year.
    Quarter {
        Q1 = "Q1",
        Q2 = "Q2",
        Q3 = "Q3",
        Q4 = "Q4",
    }
);

string_enum!(
    Section {
        ActiveCaseData = "ACTIVE_CASE_DATA",
        ClosedCaseData = "CLOSED_CASE_DATA",
        AggregateData = "AGGREGATE_DATA",
        StratumData = "STRATUM_DATA",
    }
);

string_enum!(
    DownloadOutcome {
        Completed = "COMPLETED",
        Aborted = "ABORTED",
        NotModified = "NOT_MODIFIED",
        Failed = "FAILED",
    }
);

string_enum!(
    /// What ClamAV said of an upload: no verdict (unreachable, timed out,
    /// refused the stream) is `FAILED`.
    ScanResult {
        Clean = "CLEAN",
        Infected = "INFECTED",
        Failed = "FAILED",
    }
);
