//! The response's shape, as the GraphQL specification says, where
//! async-graphql departs from it:
//! - keys in the order of the selection (§6.3, "ordered map"): async-graphql
//!   inserts a level's fields in the order they finish resolving;
//! - null propagation (§6.4.4, "Handling Field Errors"): a field that errors
//!   is `null` when its type is nullable and makes its parent `null` when it
//!   is not, up to `data` itself; async-graphql leaves the field out.
//!
//! Both follow the executed document (response keys, aliases and fragments
//! included) and, for nullability, the schema's types.

use std::collections::HashMap;

use async_graphql::{
    Name, PathSegment, Value,
    parser::types::{
        BaseType, ExecutableDocument, Field, OperationType, Selection, SelectionSet, Type,
        TypeKind, TypeSystemDefinition,
    },
};

/// The declared type of every field of every object and interface type.
pub struct FieldTypes(HashMap<String, HashMap<String, Type>>);

impl FieldTypes {
    /// From the schema's SDL (`graphql::sdl()`).
    pub fn from_sdl(sdl: &str) -> Self {
        let mut types = HashMap::new();
        if let Ok(document) = async_graphql::parser::parse_schema(sdl) {
            for definition in document.definitions {
                let TypeSystemDefinition::Type(ty) = definition else {
                    continue;
                };
                let fields = match &ty.node.kind {
                    TypeKind::Object(o) => &o.fields,
                    TypeKind::Interface(i) => &i.fields,
                    _ => continue,
                };
                let fields = fields
                    .iter()
                    .map(|f| (f.node.name.node.to_string(), f.node.ty.node.clone()))
                    .collect();
                types.insert(ty.node.name.node.to_string(), fields);
            }
        }
        FieldTypes(types)
    }

    fn field(&self, parent: &str, field: &str) -> Option<&Type> {
        self.0.get(parent)?.get(field)
    }
}

/// Orders every object of `data` as its selection set orders its fields.
pub fn order(document: &ExecutableDocument, operation_name: Option<&str>, data: &mut Value) {
    let Some(operation) = crate::graphql::selected_operation(document, operation_name) else {
        return;
    };
    reorder(document, &[&operation.selection_set.node], data);
}

fn reorder(document: &ExecutableDocument, sets: &[&SelectionSet], value: &mut Value) {
    match value {
        Value::Object(map) => {
            let mut ordered = async_graphql::indexmap::IndexMap::with_capacity(map.len());
            for key in response_keys(document, sets) {
                if let Some((name, mut child)) = map.shift_remove_entry(key.as_str()) {
                    let fields = fields_with_key(document, sets, &key);
                    let child_sets: Vec<&SelectionSet> =
                        fields.iter().map(|f| &f.selection_set.node).collect();
                    reorder(document, &child_sets, &mut child);
                    ordered.insert(name, child);
                }
            }
            // Anything the document does not name stays, after the rest.
            ordered.extend(std::mem::take(map));
            *map = ordered;
        }
        Value::List(items) => {
            for item in items {
                reorder(document, sets, item);
            }
        }
        _ => {}
    }
}

/// The response keys of `sets` in document order (through fragments),
/// each once.
fn response_keys(document: &ExecutableDocument, sets: &[&SelectionSet]) -> Vec<String> {
    fn visit(
        document: &ExecutableDocument,
        set: &SelectionSet,
        keys: &mut Vec<String>,
        depth: usize,
    ) {
        if depth > 64 {
            return;
        }
        for item in &set.items {
            match &item.node {
                Selection::Field(f) => {
                    let key = f.node.response_key().node.as_str();
                    if !keys.iter().any(|k| k == key) {
                        keys.push(key.to_string());
                    }
                }
                Selection::InlineFragment(f) => {
                    visit(document, &f.node.selection_set.node, keys, depth + 1)
                }
                Selection::FragmentSpread(s) => {
                    if let Some(def) = document.fragments.get(&s.node.fragment_name.node) {
                        visit(document, &def.node.selection_set.node, keys, depth + 1);
                    }
                }
            }
        }
    }
    let mut keys = Vec::new();
    for set in sets {
        visit(document, set, &mut keys, 0);
    }
    keys
}

/// Puts the nulls of the errors with a path into `data`.
pub fn propagate(
    types: &FieldTypes,
    document: &ExecutableDocument,
    operation_name: Option<&str>,
    data: &mut Value,
    error_paths: &[Vec<PathSegment>],
) {
    let Some(operation) = crate::graphql::selected_operation(document, operation_name) else {
        return;
    };
    let root = match operation.ty {
        OperationType::Query => "Query",
        OperationType::Mutation => "Mutation",
        OperationType::Subscription => "Subscription",
    };
    let root_set = &operation.selection_set.node;
    for path in error_paths {
        if path.is_empty() {
            continue;
        }
        let steps = walk(types, document, root, root_set, path);
        null_out(data, path, &steps);
    }
}

/// Whether the value at each step of `path` may be null (`None` where the
/// type is unknown: treated as nullable).
fn walk(
    types: &FieldTypes,
    document: &ExecutableDocument,
    root: &str,
    root_set: &SelectionSet,
    path: &[PathSegment],
) -> Vec<bool> {
    let mut nullable = Vec::with_capacity(path.len());
    let mut parent_type: Option<String> = Some(root.to_string());
    let mut sets: Vec<&SelectionSet> = vec![root_set];
    // The type still to unwrap at list indexes.
    let mut current: Option<Type> = None;
    for segment in path {
        match segment {
            PathSegment::Field(key) => {
                let fields = fields_with_key(document, &sets, key);
                let name = fields.first().map(|f| f.name.node.as_str());
                let ty = match (&parent_type, name) {
                    (Some(parent), Some(name)) => types.field(parent, name).cloned(),
                    _ => None,
                };
                nullable.push(ty.as_ref().is_none_or(|t| t.nullable));
                sets = fields.iter().map(|f| &f.selection_set.node).collect();
                parent_type = ty.as_ref().and_then(named);
                current = ty;
            }
            PathSegment::Index(_) => {
                let element = match current.as_ref().map(|t| &t.base) {
                    Some(BaseType::List(element)) => Some((**element).clone()),
                    _ => None,
                };
                nullable.push(element.as_ref().is_none_or(|t| t.nullable));
                parent_type = element.as_ref().and_then(named);
                current = element;
            }
        }
    }
    nullable
}

/// The object type a type ends in, through lists.
fn named(ty: &Type) -> Option<String> {
    match &ty.base {
        BaseType::Named(name) => Some(name.to_string()),
        BaseType::List(element) => named(element),
    }
}

/// The fields of `sets` (through fragments) whose response key is `key`.
fn fields_with_key<'a>(
    document: &'a ExecutableDocument,
    sets: &[&'a SelectionSet],
    key: &str,
) -> Vec<&'a Field> {
    let mut found = Vec::new();
    let mut pending: Vec<&SelectionSet> = sets.to_vec();
    let mut visited = 0;
    while let Some(set) = pending.pop() {
        visited += 1;
        if visited > 256 {
            break;
        }
        for item in &set.items {
            match &item.node {
                Selection::Field(f) if f.node.response_key().node.as_str() == key => {
                    found.push(&f.node)
                }
                Selection::Field(_) => {}
                Selection::InlineFragment(f) => pending.push(&f.node.selection_set.node),
                Selection::FragmentSpread(s) => {
                    if let Some(def) = document.fragments.get(&s.node.fragment_name.node) {
                        pending.push(&def.node.selection_set.node);
                    }
                }
            }
        }
    }
    found
}

/// Sets the value at the end of `path` to null, then walks up while the
/// nulled position may not be null, nulling its parent; a non-null field of
/// the root nulls `data`.
fn null_out(data: &mut Value, path: &[PathSegment], nullable: &[bool]) {
    let mut depth = path.len();
    while depth > 0 {
        let (parent_path, last) = path[..depth].split_at(depth - 1);
        let Some(parent) = locate(data, parent_path) else {
            // Already nulled higher up by another error.
            return;
        };
        match (parent, &last[0]) {
            (Value::Object(map), PathSegment::Field(key)) => {
                map.insert(Name::new(key), Value::Null);
            }
            (Value::List(items), PathSegment::Index(i)) if *i < items.len() => {
                items[*i] = Value::Null;
            }
            _ => return,
        }
        if nullable.get(depth - 1).copied().unwrap_or(true) {
            return;
        }
        depth -= 1;
    }
    *data = Value::Null;
}

/// The value at `path`, when every step of it exists and is not null.
fn locate<'a>(data: &'a mut Value, path: &[PathSegment]) -> Option<&'a mut Value> {
    let mut at = data;
    for segment in path {
        at = match (at, segment) {
            (Value::Object(map), PathSegment::Field(key)) => map.get_mut(key.as_str())?,
            (Value::List(items), PathSegment::Index(i)) => items.get_mut(*i)?,
            _ => return None,
        };
        if *at == Value::Null {
            return None;
        }
    }
    Some(at)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SDL: &str = "type Query { me: User  files: [File!]!  file(id: ID!): File }
        type User { subject: String  stt: Stt }
        type Stt { name: String! }
        type File { id: ID!  stt: Stt!  size: Int }";

    fn run(query: &str, data: serde_json::Value, paths: &[&[PathSegment]]) -> serde_json::Value {
        let types = FieldTypes::from_sdl(SDL);
        let document = async_graphql::parser::parse_query(query).unwrap();
        let mut data = Value::from_json(data).unwrap();
        let paths: Vec<Vec<PathSegment>> = paths.iter().map(|p| p.to_vec()).collect();
        propagate(&types, &document, None, &mut data, &paths);
        data.into_json().unwrap()
    }

    fn field(name: &str) -> PathSegment {
        PathSegment::Field(name.to_string())
    }

    #[test]
    fn keys_follow_the_selection_through_aliases_and_fragments() {
        let document = async_graphql::parser::parse_query(
            "{ files { size id } ...F } fragment F on Query { mine: me { stt { name } subject } }",
        )
        .unwrap();
        let mut data = Value::from_json(serde_json::json!({
            "mine": { "subject": "a", "stt": { "name": "x" } },
            "files": [ { "id": "1", "size": 3 } ],
        }))
        .unwrap();
        order(&document, None, &mut data);
        assert_eq!(
            serde_json::to_string(&data).unwrap(),
            r#"{"files":[{"size":3,"id":"1"}],"mine":{"stt":{"name":"x"},"subject":"a"}}"#
        );
    }

    #[test]
    fn an_errored_nullable_field_is_null() {
        let data = run(
            "{ me { subject } file(id: 1) { id } }",
            serde_json::json!({ "me": { "subject": "a" } }),
            &[&[field("file")]],
        );
        assert_eq!(
            data,
            serde_json::json!({ "me": { "subject": "a" }, "file": null })
        );
    }

    #[test]
    fn an_errored_non_null_root_field_nulls_data() {
        let data = run(
            "{ me { subject } files { id } }",
            serde_json::json!({ "me": { "subject": "a" } }),
            &[&[field("files")]],
        );
        assert_eq!(data, serde_json::Value::Null);
    }

    #[test]
    fn a_non_null_field_in_a_list_nulls_up_to_the_first_nullable_position() {
        // files: [File!]! and File.stt: Stt! → the item may not be null, nor
        // the list: data goes; `file` (nullable) stops at itself.
        let data = run(
            "{ f: file(id: 1) { stt { name } } }",
            serde_json::json!({ "f": { } }),
            &[&[field("f"), field("stt")]],
        );
        assert_eq!(data, serde_json::json!({ "f": null }));
        let data = run(
            "{ files { id stt { name } } }",
            serde_json::json!({ "files": [ { "id": "1" }, { "id": "2", "stt": { "name": "x" } } ] }),
            &[&[field("files"), PathSegment::Index(0), field("stt")]],
        );
        assert_eq!(data, serde_json::Value::Null);
    }

    #[test]
    fn aliases_and_fragments_are_followed() {
        let data = run(
            "{ ...F } fragment F on Query { mine: me { ... on User { subject } } }",
            serde_json::json!({ "mine": { } }),
            &[&[field("mine"), field("subject")]],
        );
        assert_eq!(data, serde_json::json!({ "mine": { "subject": null } }));
    }
}
