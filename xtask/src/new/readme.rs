//! The generated project's README: `README.template.md` with the project's name, its tests,
//! and the example's configuration table (taken from the example's README, so the two
//! cannot drift apart).

use crate::Result;

const TEMPLATE: &str = include_str!("README.template.md");

/// What the README names.
pub(crate) struct Facts<'a> {
    pub(crate) name: &'a str,
    /// Where the `[patch]` section points.
    pub(crate) checkout: &'a str,
    pub(crate) tests: &'a [String],
    pub(crate) left_out: &'a [String],
}

/// The README, from the example's README (`example_readme`).
pub(crate) fn render(facts: &Facts<'_>, example_readme: &str) -> Result<String> {
    let table = config_table(example_readme)?;
    Ok(TEMPLATE
        .replace("{{name}}", facts.name)
        .replace("{{checkout}}", facts.checkout)
        .replace("{{tests}}", &files(facts.tests))
        .replace("{{left_out}}", &files(facts.left_out))
        .replace("{{config_table}}", &table))
}

/// `tests/a.rs`, `tests/b.rs` as a list in prose.
fn files(names: &[String]) -> String {
    if names.is_empty() {
        return "none".to_owned();
    }
    names
        .iter()
        .map(|name| format!("`tests/{name}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The example README's environment table (the rows from `| variable |` to the first line
/// that is not a row), without what only applies inside towerkit's workspace.
fn config_table(readme: &str) -> Result<String> {
    let rows: Vec<&str> = readme
        .lines()
        .skip_while(|line| !line.starts_with("| variable |"))
        .take_while(|line| line.starts_with('|'))
        .collect();
    if rows.len() < 3 {
        return Err("the example's README has no `| variable | default | meaning |` table".into());
    }
    Ok(rows
        .join("\n")
        .replace("unset (`cargo xtask run`: a development key)", "unset"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example's real README renders into a README that names no workspace tool and
    /// keeps no placeholder.
    #[test]
    fn renders_from_the_examples_readme() {
        let example = std::fs::read_to_string(crate::root().join("examples/service/README.md"))
            .expect("the example's README");
        let readme = render(
            &Facts {
                name: "shop",
                checkout: "/src/towerkit",
                tests: &["api.rs".to_owned()],
                left_out: &[],
            },
            &example,
        )
        .unwrap();
        assert!(readme.starts_with("# shop\n"), "{readme}");
        assert!(readme.contains("| `DATABASE_URL` |"), "{readme}");
        assert!(readme.contains("`tests/api.rs`"), "{readme}");
        assert!(readme.contains("(`/src/towerkit`)"), "{readme}");
        assert!(!readme.contains("{{"), "{readme}");
        assert!(
            !readme.replace("cargo xtask new shop", "").contains("xtask"),
            "{readme}"
        );
        assert!(
            render(
                &Facts {
                    name: "x",
                    checkout: "",
                    tests: &[],
                    left_out: &[]
                },
                "# no table"
            )
            .is_err()
        );
    }
}
