//! Connection URLs shown without their passwords, for `Debug` output and logs.

/// `url` with every password replaced by `***`: the userinfo's password, and the value of
/// any query parameter whose name contains `password`. Scheme, user, hosts, ports, path and
/// the other parameters stay, so a log still says where the service tried to connect.
/// Text that is not a `scheme://` URL (a libpq `key=value` string) is not shown at all.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return "<not a URL, not shown>".to_owned();
    };
    // The last `@` ends the userinfo: a password may contain `@`, a host may not. Cutting
    // at the last one errs towards hiding too much when a path or query holds an `@`.
    let (user, rest) = match rest.rfind('@') {
        Some(at) => {
            let userinfo = &rest[..at];
            let user = match userinfo.split_once(':') {
                Some((user, _password)) => format!("{user}:***@"),
                None => format!("{userinfo}@"),
            };
            (user, &rest[at + 1..])
        }
        None => (String::new(), rest),
    };
    let (location, query) = match rest.split_once('?') {
        Some((location, query)) => (location, Some(query)),
        None => (rest, None),
    };
    let mut shown = format!("{scheme}://{user}{location}");
    if let Some(query) = query {
        shown.push('?');
        for (index, pair) in query.split('&').enumerate() {
            if index > 0 {
                shown.push('&');
            }
            match pair.split_once('=') {
                Some((name, _)) if name.to_ascii_lowercase().contains("password") => {
                    shown.push_str(name);
                    shown.push_str("=***");
                }
                _ => shown.push_str(pair),
            }
        }
    }
    shown
}

#[cfg(test)]
mod tests {
    use super::redact_url;

    fn check(url: &str, expected: &str) {
        assert_eq!(redact_url(url), expected, "{url}");
    }

    #[test]
    fn passwords_are_replaced_and_the_rest_kept() {
        check(
            "postgres://app:hunter2@db:5432/shop?sslmode=require",
            "postgres://app:***@db:5432/shop?sslmode=require",
        );
        check("redis://:hunter2@cache:6380/1", "redis://:***@cache:6380/1");
        check(
            "rediss://user:hun@ter2@cache/0",
            "rediss://user:***@cache/0",
        );
        check(
            "postgres://app@db/shop?password=hunter2&application_name=x",
            "postgres://app@db/shop?password=***&application_name=x",
        );
        check(
            "postgres://a:hunter2@h1:5432,h2:5433/db",
            "postgres://a:***@h1:5432,h2:5433/db",
        );
    }

    #[test]
    fn urls_without_secrets_are_unchanged() {
        for url in [
            "postgres://postgres@127.0.0.1:5432/postgres",
            "redis://127.0.0.1:6379",
            "redis://[::1]:6379/2",
        ] {
            check(url, url);
        }
    }

    #[test]
    fn key_value_strings_are_not_shown() {
        assert!(!redact_url("host=db password=hunter2").contains("hunter2"));
    }
}
