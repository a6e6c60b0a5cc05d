//! Introspection requests, which GraphiQL (and codegen tools) send to learn
//! the schema. The standard introspection query nests `ofType` seven times
//! to unwrap types like `[Stt!]!`, so it is deeper than the depth limit that
//! bounds data queries; it runs under a limit of its own instead. Depth is
//! not what makes introspection expensive: the lists on `__Type` are, when
//! they nest (`fields { type { fields { type { … } } } }` fans out at every
//! level), so their nesting is capped as graphql-js's MaxIntrospectionDepth
//! rule does.

use async_graphql::parser::types::{ExecutableDocument, OperationType, Selection, SelectionSet};

/// Depth allowed for introspection-only operations: the standard query
/// needs 13.
pub const MAX_DEPTH: usize = 20;

/// How deeply `fields`, `inputFields`, `interfaces` and `possibleTypes` may nest.
const MAX_LIST_NESTING: usize = 3;

/// Past this many nested selections the document is not introspection we serve.
const MAX_WALK: usize = 64;

#[derive(Debug, PartialEq, Eq)]
pub enum Kind {
    /// Touches data: the normal limits apply.
    Data,
    /// Only `__schema`, `__type` and `__typename` at the top.
    Introspection,
    /// Introspection whose lists nest too deeply.
    TooNested,
}

/// What the operation `name` selects in `document` is.
pub fn classify(document: &ExecutableDocument, name: Option<&str>) -> Kind {
    let Some(operation) = super::selected_operation(document, name) else {
        return Kind::Data;
    };
    if operation.ty != OperationType::Query {
        return Kind::Data;
    }
    let set = &operation.selection_set.node;
    let mut top = Vec::new();
    if !field_names(document, set, 0, &mut top)
        || top.is_empty()
        || !top.iter().all(|n| n.starts_with("__"))
    {
        return Kind::Data;
    }
    match list_nesting(document, set, 0, 0) {
        Some(n) if n <= MAX_LIST_NESTING => Kind::Introspection,
        _ => Kind::TooNested,
    }
}

/// Whether the operation `name` selects in `document` asks for the schema
/// (`__schema` or `__type`, next to data or not). `__typename` is not
/// introspection of the schema: clients such as Apollo add it everywhere.
/// A document whose fragments nest too deeply to tell counts as asking.
pub fn asks_for_schema(document: &ExecutableDocument, name: Option<&str>) -> bool {
    let Some(operation) = super::selected_operation(document, name) else {
        return false;
    };
    let mut top = Vec::new();
    let told = field_names(document, &operation.selection_set.node, 0, &mut top);
    !told || top.iter().any(|n| matches!(*n, "__schema" | "__type"))
}

/// The names of the fields a selection set selects at its own level,
/// through fragments. `false` when fragments nest too deeply to tell.
fn field_names<'a>(
    document: &'a ExecutableDocument,
    set: &'a SelectionSet,
    walked: usize,
    out: &mut Vec<&'a str>,
) -> bool {
    if walked > MAX_WALK {
        return false;
    }
    set.items.iter().all(|item| match &item.node {
        Selection::Field(f) => {
            out.push(f.node.name.node.as_str());
            true
        }
        Selection::InlineFragment(f) => {
            field_names(document, &f.node.selection_set.node, walked + 1, out)
        }
        Selection::FragmentSpread(s) => match document.fragments.get(&s.node.fragment_name.node) {
            Some(def) => field_names(document, &def.node.selection_set.node, walked + 1, out),
            // An unknown fragment: validation will say so.
            None => true,
        },
    })
}

/// The deepest nesting of `__Type`'s list fields below `set`; `None` when
/// the document nests too deeply to walk (a fragment cycle, say).
fn list_nesting(
    document: &ExecutableDocument,
    set: &SelectionSet,
    walked: usize,
    lists: usize,
) -> Option<usize> {
    if walked > MAX_WALK || lists > MAX_LIST_NESTING {
        return None;
    }
    let mut deepest = lists;
    for item in &set.items {
        let n = match &item.node {
            Selection::Field(f) => {
                let is_list = matches!(
                    f.node.name.node.as_str(),
                    "fields" | "inputFields" | "interfaces" | "possibleTypes"
                );
                list_nesting(
                    document,
                    &f.node.selection_set.node,
                    walked + 1,
                    lists + usize::from(is_list),
                )?
            }
            Selection::InlineFragment(f) => {
                list_nesting(document, &f.node.selection_set.node, walked + 1, lists)?
            }
            Selection::FragmentSpread(s) => {
                match document.fragments.get(&s.node.fragment_name.node) {
                    Some(def) => {
                        list_nesting(document, &def.node.selection_set.node, walked + 1, lists)?
                    }
                    None => lists,
                }
            }
        };
        deepest = deepest.max(n);
    }
    Some(deepest)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(query: &str) -> Kind {
        let document = async_graphql::parser::parse_query(query).unwrap();
        classify(&document, None)
    }

    /// graphql-js's `getIntrospectionQuery()`, as GraphiQL sends it.
    const STANDARD: &str = "query IntrospectionQuery { __schema { queryType { name } mutationType { name } subscriptionType { name } types { ...FullType } directives { name description locations args { ...InputValue } } } }
      fragment FullType on __Type { kind name description fields(includeDeprecated: true) { name description args { ...InputValue } type { ...TypeRef } isDeprecated deprecationReason } inputFields { ...InputValue } interfaces { ...TypeRef } enumValues(includeDeprecated: true) { name description isDeprecated deprecationReason } possibleTypes { ...TypeRef } }
      fragment InputValue on __InputValue { name description type { ...TypeRef } defaultValue }
      fragment TypeRef on __Type { kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name } } } } } } } }";

    #[test]
    fn the_standard_introspection_query_is_introspection() {
        assert_eq!(kind(STANDARD), Kind::Introspection);
        assert_eq!(kind("{ __typename }"), Kind::Introspection);
        assert_eq!(
            kind("{ ... on Query { __type(name: \"Stt\") { name } } }"),
            Kind::Introspection
        );
    }

    #[test]
    fn anything_that_touches_data_is_data() {
        assert_eq!(kind("{ __typename me { id } }"), Kind::Data);
        assert_eq!(kind("{ me { __typename } }"), Kind::Data);
        assert_eq!(kind("mutation { __typename }"), Kind::Data);
        assert_eq!(
            kind("{ ...F } fragment F on Query { reportFiles { totalCount } }"),
            Kind::Data
        );
    }

    fn asks(query: &str) -> bool {
        let document = async_graphql::parser::parse_query(query).unwrap();
        asks_for_schema(&document, None)
    }

    #[test]
    fn schema_requests_are_told_from_typename() {
        assert!(asks(STANDARD));
        assert!(asks("{ me { id } __schema { types { name } } }"));
        assert!(asks(
            "{ ...F } fragment F on Query { __type(name: \"Stt\") { name } }"
        ));
        assert!(asks(
            "{ ... on Query { ... on Query { __schema { queryType { name } } } } }"
        ));
        assert!(!asks("{ __typename }"));
        assert!(!asks("{ me { __typename id } reportFiles { totalCount } }"));
        assert!(!asks("mutation { logout }"));
    }

    #[test]
    fn nested_type_lists_are_too_nested() {
        let fan_out = "{ __schema { types { fields { type { fields { type { fields { type { fields { name } } } } } } } } } }";
        assert_eq!(kind(fan_out), Kind::TooNested);
        let through_fragments = "{ __schema { types { ...A } } }
            fragment A on __Type { interfaces { ...B } }
            fragment B on __Type { possibleTypes { ...C } }
            fragment C on __Type { fields { type { inputFields { name } } } }";
        assert_eq!(kind(through_fragments), Kind::TooNested);
    }
}
