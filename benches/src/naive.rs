//! The naive ways the transforms are measured against: parse into a `serde_json::Value`
//! tree (or sonic-rs's), edit it, serialize. One copy, shared by the criterion benches and
//! the instruction counts, so both measure the same reference.

use serde_json::{Map, Value, json};

/// The naive way: parse into a `Value` tree (member order preserved), strip, serialize.
pub fn strip_with_serde_value(input: &[u8], out: &mut Vec<u8>) {
    fn strip(value: &mut Value) {
        match value {
            Value::Object(map) => {
                map.retain(|_, v| !v.is_null());
                map.values_mut().for_each(strip);
            }
            Value::Array(items) => items.iter_mut().for_each(strip),
            _ => {}
        }
    }
    let mut value: Value = serde_json::from_slice(input).expect("corpus is JSON");
    strip(&mut value);
    serde_json::to_writer(out, &value).expect("serialize");
}

/// [`strip_with_serde_value`] with sonic-rs, the fastest general JSON library for Rust.
pub fn strip_with_sonic(input: &[u8], out: &mut Vec<u8>) {
    fn strip(value: &mut sonic_rs::Value) {
        use sonic_rs::{JsonValueMutTrait, JsonValueTrait};
        if let Some(object) = value.as_object_mut() {
            let nulls: Vec<String> = object
                .iter()
                .filter(|(_, v)| v.is_null())
                .map(|(k, _)| k.to_owned())
                .collect();
            for key in nulls {
                object.remove(&key);
            }
            for (_, child) in object.iter_mut() {
                strip(child);
            }
        } else if let Some(array) = value.as_array_mut() {
            for child in array.iter_mut() {
                strip(child);
            }
        }
    }
    let mut value: sonic_rs::Value = sonic_rs::from_slice(input).expect("corpus is JSON");
    strip(&mut value);
    sonic_rs::to_writer(out, &value).expect("serialize");
}

/// A typical list-view selection: a few scalars and one member of two nested objects.
pub const FIELDS: &str = "id,name,price,category(name),stock/count";

/// [`FIELDS`] for [`project_with_serde_value`]: member name and the members kept inside it
/// (none: the whole value).
pub const FIELDS_TREE: [(&str, &[&str]); 5] = [
    ("id", &[]),
    ("name", &[]),
    ("price", &[]),
    ("category", &["name"]),
    ("stock", &["count"]),
];

/// The naive way: parse into a `Value` tree (member order preserved), keep the selected
/// members of every item, serialize.
pub fn project_with_serde_value(input: &[u8], out: &mut Vec<u8>) {
    let value: Value = serde_json::from_slice(input).expect("corpus is JSON");
    let Value::Array(items) = value else {
        panic!("corpus is an array")
    };
    let projected: Vec<Value> = items
        .into_iter()
        .map(|item| {
            let Value::Object(mut object) = item else {
                return item;
            };
            let mut kept = Map::new();
            for &(name, children) in &FIELDS_TREE {
                let Some(value) = object.remove(name) else {
                    continue;
                };
                let value = match value {
                    Value::Object(mut inner) if !children.is_empty() => {
                        let mut sub = Map::new();
                        for &child in children {
                            if let Some(v) = inner.remove(child) {
                                sub.insert(child.to_owned(), v);
                            }
                        }
                        Value::Object(sub)
                    }
                    _ if !children.is_empty() => continue,
                    value => value,
                };
                kept.insert(name.to_owned(), value);
            }
            Value::Object(kept)
        })
        .collect();
    serde_json::to_writer(out, &projected).expect("serialize");
}

/// The naive way: parse, slice, build the envelope, serialize.
pub fn paginate_with_serde_value(input: &[u8], out: &mut Vec<u8>, page: usize, limit: usize) {
    let value: Value = serde_json::from_slice(input).expect("corpus is JSON");
    let Value::Array(items) = value else {
        panic!("corpus is an array")
    };
    let total = items.len();
    let start = ((page - 1) * limit).min(total);
    let end = (start + limit).min(total);
    let data: Vec<Value> = items.into_iter().skip(start).take(end - start).collect();
    let envelope = json!({
        "data": data,
        "pagination": {
            "page": page, "limit": limit, "total": total, "totalPages": total.div_ceil(limit),
            "hasNext": end < total, "hasPrevious": page > 1,
        }
    });
    serde_json::to_writer(out, &envelope).expect("serialize");
}
