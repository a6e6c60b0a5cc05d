//! What a document costs, checked before anything runs.
//!
//! async-graphql adds up a cost per field (`complexity` on a resolver; 1
//! plus its children's cost without one). Fields answered from memory keep
//! that default. Fields that run SQL of their own cost [`SQL`] per
//! statement, so aliases multiply the price along with the statements: 1000
//! aliases of `reportFiles(first: 0) { totalCount }` cost 1000 times two
//! statements and are refused by validation, before any SQL.
//!
//! Fields read through DataLoaders (`stt`, `region`, `uploadedBy`,
//! `isLatest`, `versions`, `scan`, `user`, `User.stt`, `User.regions`) run one
//! statement per kind for a whole page, so they cost by the rows they bring
//! (the default), not per statement. Lists multiply their items' cost by the
//! rows they may return: a connection by its page size, clamped to the
//! largest page so that an oversized `first` reaches the resolver, whose
//! error names the limit.
//!
//! The per-request statement budget (`access`) is the backstop for what the
//! estimate misses.

use std::sync::Arc;

use async_graphql::{
    ServerError, ValidationResult,
    extensions::{Extension, ExtensionContext, ExtensionFactory, NextValidation},
};

use crate::access::{DEFAULT_PAGE, MAX_PAGE};

/// The cost of one SQL statement, in fields resolved from memory. The
/// default limit of 10000 allows about 100 statements' worth, in line with
/// the statement budget, and a page of 100 files with some 60 fields each.
pub const SQL: usize = 100;

/// The versions a slot is expected to have, for pricing `versions`.
pub const VERSIONS_PER_SLOT: usize = 10;

/// A field that runs `n` statements of its own, above its children.
pub fn statements(n: usize, children: usize) -> usize {
    n.saturating_mul(SQL).saturating_add(children)
}

/// A page of report files: two statements of its own (the page, and the
/// count), then the items. The count is priced here whether or not
/// `totalCount` is asked for: as a field of the connection, its cost would
/// be multiplied by the page size along with the items'.
pub fn files_page(first: Option<i64>, last: Option<i64>, children: usize) -> usize {
    statements(2, rows(page(first, last), children))
}

/// A page of download events: one statement, then the items.
pub fn events_page(first: Option<i64>, children: usize) -> usize {
    statements(1, rows(page(first, None), children))
}

/// Every version of a file's slot (loaded for a whole page at once).
pub fn versions(children: usize) -> usize {
    rows(VERSIONS_PER_SLOT, children).saturating_add(1)
}

/// The rows a page may hold: the requested size (or the default), clamped
/// to `0..=MAX_PAGE`. A size out of range is priced as the nearest valid
/// one; the resolver then refuses it, naming the limit.
pub fn page(first: Option<i64>, last: Option<i64>) -> usize {
    let requested = first.or(last).unwrap_or(DEFAULT_PAGE as i64);
    requested.clamp(0, MAX_PAGE as i64) as usize
}

/// `items` rows of `per_item` each, saturating: a cost never wraps around.
pub fn rows(items: usize, per_item: usize) -> usize {
    items.saturating_mul(per_item)
}

/// Refuses a document that costs more than the limit, saying by how much
/// and what to change. (async-graphql's own limit says only "Query is too
/// complex.")
pub struct CostLimit(pub usize);

impl ExtensionFactory for CostLimit {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(CostCheck(self.0))
    }
}

struct CostCheck(usize);

#[async_graphql::async_trait::async_trait]
impl Extension for CostCheck {
    async fn validation(
        &self,
        ctx: &ExtensionContext<'_>,
        next: NextValidation<'_>,
    ) -> Result<ValidationResult, Vec<ServerError>> {
        let result = next.run(ctx).await?;
        if result.complexity > self.0 {
            return Err(vec![ServerError::new(
                too_costly(result.complexity, self.0),
                None,
            )]);
        }
        Ok(result)
    }
}

fn too_costly(cost: usize, limit: usize) -> String {
    format!(
        "Query is too complex: it costs {cost} and the limit is {limit}. Ask for fewer \
         aliases or fields, or smaller pages (`first`/`last` at most {MAX_PAGE}); every \
         field that reads the database costs {SQL}"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_are_priced_within_the_limits_the_resolver_enforces() {
        assert_eq!(page(None, None), DEFAULT_PAGE as usize);
        assert_eq!(page(Some(0), None), 0);
        assert_eq!(page(Some(100_000), None), MAX_PAGE as usize);
        assert_eq!(page(Some(-5), None), 0);
        assert_eq!(page(None, Some(7)), 7);
        assert_eq!(rows(usize::MAX, 2), usize::MAX);
    }

    #[test]
    fn aliases_of_a_count_cost_two_statements_each() {
        // `reportFiles(first: 0) { totalCount }`: totalCount costs nothing of
        // its own, the page holds no items.
        assert_eq!(files_page(Some(0), None, 0), 2 * SQL);
        // A page of 100 with 30 fields per item.
        assert_eq!(files_page(Some(100), None, 30), 2 * SQL + 3000);
        assert_eq!(versions(2), 1 + 2 * VERSIONS_PER_SLOT);
        assert_eq!(statements(1, usize::MAX), usize::MAX);
    }

    #[test]
    fn a_refusal_says_what_to_reduce() {
        let message = too_costly(102_000, 10_000);
        for part in ["102000", "10000", "aliases", "100"] {
            assert!(message.contains(part), "{part} in {message}");
        }
    }

    /// What the schema's cost check makes of `query` (it refuses every
    /// document at a limit of 0, saying what it costs).
    async fn cost_of(query: &str) -> usize {
        use crate::graphql::{Mutation, Query};
        let schema =
            async_graphql::Schema::build(Query, Mutation, async_graphql::EmptySubscription)
                .extension(CostLimit(0))
                .finish();
        let response = schema.execute(query).await;
        let message = &response.errors[0].message;
        let cost = message
            .split("costs ")
            .nth(1)
            .and_then(|rest| rest.split(' ').next())
            .unwrap_or_else(|| panic!("{message}"));
        cost.parse().unwrap()
    }

    const LIMIT: usize = 10_000;

    #[tokio::test]
    async fn frontend_queries_fit_and_alias_bombs_do_not() {
        let page = "{ reportFiles(first: 100) { totalCount edges { node { id
            stt { name region { name } } uploadedBy { name } isLatest versions { id } } } } }";
        let rich = "{ reportFiles(first: 100) { totalCount
            pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
            edges { cursor node { id fiscalYear quarter section version originalFilename
                extension contentType sizeBytes sha256 createdAt downloadUrl isLatest
                stt { id name region { id name } } uploadedBy { id name }
                versions { id version createdAt } } } } }";
        let dropdowns = "{ me { id name role stt { id name } regions { id name } }
            stts { id name type postalCode sttCode region { id name } } regions { id name } }";
        assert_eq!(cost_of(page).await, 2300);
        assert_eq!(cost_of(rich).await, 6300);
        assert!(cost_of(dropdowns).await < 500);

        let aliases = |n: usize, field: &str| {
            let body: String = (0..n).map(|i| format!("a{i}: {field} ")).collect();
            format!("{{ {body}}}")
        };
        let counts = aliases(1000, "reportFiles(first: 0) { totalCount }");
        assert_eq!(cost_of(&counts).await, 1000 * 2 * SQL);
        assert_eq!(cost_of(&aliases(1000, "stts { id name }")).await, 102_000);
        // The fewest aliases of a count that the limit refuses.
        assert!(cost_of(&aliases(51, "reportFiles(first: 0) { totalCount }")).await > LIMIT);
        let nested = "{ reportFiles(first: 100) { edges { node {
            versions { versions { stt { region { id } } } } } } } }";
        assert!(cost_of(nested).await > LIMIT);
    }
}
