//! Which figure each bench is shown against: the one place that pairs a bench with its
//! reference (the bare service, the naive serde way, the peer crate users would otherwise
//! pick), both measured in the same run.

/// `(pattern, reference)`, first match wins. A pattern matches an id with the same number of
/// `/`-separated segments; `*` matches any one segment, and `$1`, `$2`, … in the reference
/// stand for the segments the first, second, … `*` matched.
pub(crate) const REFERENCES: &[(&str, &str)] = &[
    // JSON transforms against the naive `serde_json::Value` round trip.
    ("json/*/*/*", "json/$1/serde_value/$3"),
    // Every layer on the trivial service, and the full stack on a cache hit, against the
    // bare service.
    ("layer/*/*", "layer/none/passthrough"),
    ("stack/*/*", "layer/none/passthrough"),
    // Cache hits against the handler answering without any cache.
    ("cache/*/*", "cache/$1/bare_handler"),
    // Compression against tower-http's `CompressionLayer::new()`; compressed bytes served by
    // the cache against the bare service.
    ("compress/cached_hit/*", "layer/none/passthrough"),
    ("compress/*/*/*", "compress/$1/$2/tower_http_default"),
    // Timed queries against raw deadpool-postgres.
    ("db/*/*", "db/$1/deadpool_raw"),
];

/// The id `id` is compared with, if a pattern matches; `None` when it has no reference or is
/// its own reference.
pub(crate) fn reference_of(id: &str) -> Option<String> {
    reference_in(REFERENCES, id)
}

fn reference_in(table: &[(&str, &str)], id: &str) -> Option<String> {
    let segments: Vec<&str> = id.split('/').collect();
    for (pattern, reference) in table {
        let parts: Vec<&str> = pattern.split('/').collect();
        if parts.len() != segments.len() {
            continue;
        }
        let mut captured = Vec::new();
        let matches = parts.iter().zip(&segments).all(|(part, segment)| {
            if *part == "*" {
                captured.push(*segment);
                true
            } else {
                part == segment
            }
        });
        if !matches {
            continue;
        }
        // Substitute from the highest index down so `$1` does not eat the start of `$10`.
        let mut resolved = (*reference).to_owned();
        for (index, segment) in captured.iter().enumerate().rev() {
            resolved = resolved.replace(&format!("${}", index + 1), segment);
        }
        return (resolved != id).then_some(resolved);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_transforms_are_shown_against_the_serde_value_reference() {
        assert_eq!(
            reference_of("json/strip_nulls/towerkit/1MB").as_deref(),
            Some("json/strip_nulls/serde_value/1MB")
        );
        assert_eq!(
            reference_of("json/fields/sonic_rs/10KB").as_deref(),
            Some("json/fields/serde_value/10KB")
        );
    }

    #[test]
    fn layers_and_the_full_stack_are_shown_against_the_bare_service() {
        assert_eq!(
            reference_of("layer/strip_nulls/passthrough").as_deref(),
            Some("layer/none/passthrough")
        );
        assert_eq!(
            reference_of("stack/full/hit").as_deref(),
            Some("layer/none/passthrough")
        );
    }

    #[test]
    fn peers_are_paired_within_their_group() {
        assert_eq!(
            reference_of("cache/hit/towerkit_memory").as_deref(),
            Some("cache/hit/bare_handler")
        );
        assert_eq!(
            reference_of("compress/br/100KB/towerkit").as_deref(),
            Some("compress/br/100KB/tower_http_default")
        );
        assert_eq!(
            reference_of("compress/cached_hit/br_100KB").as_deref(),
            Some("layer/none/passthrough")
        );
        assert_eq!(
            reference_of("db/select1/towerkit").as_deref(),
            Some("db/select1/deadpool_raw")
        );
    }

    #[test]
    fn a_reference_and_an_unknown_id_have_no_reference() {
        assert_eq!(reference_of("layer/none/passthrough"), None);
        assert_eq!(reference_of("json/strip_nulls/serde_value/1MB"), None);
        assert_eq!(reference_of("something/else"), None);
        // The segment count must match: `layer/*/*` says nothing about a four-part id.
        assert_eq!(reference_of("layer/a/b/c"), None);
    }

    #[test]
    fn captures_beyond_nine_are_substituted_whole() {
        let table = [("*/*/*/*/*/*/*/*/*/*", "$10-$1")];
        assert_eq!(
            reference_in(&table, "a/b/c/d/e/f/g/h/i/j").as_deref(),
            Some("j-a")
        );
    }
}
