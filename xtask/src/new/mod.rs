//! `cargo xtask new <name> [--path DIR]`: a standalone service from the example service.
//!
//! The project gets its own `Cargo.toml` (versions instead of `workspace = true`, the
//! workspace's lints and profiles, and a `[patch.crates-io]` section resolving towerkit's
//! crates to this checkout until they are published), the example's sources, migrations,
//! dashboards and the tests that need nothing but PostgreSQL and Redis (with their own
//! harness in `tests/support/`), a README, and a copy of the workspace's `Cargo.lock`.

mod files;
mod manifest;
mod readme;

use std::fs;
use std::path::{Path, PathBuf};

use crate::Result;

pub(crate) use manifest::patch_section;

/// The example service's package name.
const EXAMPLE: &str = "example-service";

/// The command line: a name, and where to write (default `./<name>`).
pub(crate) fn new(args: &[String]) -> Result {
    let usage = "usage: cargo xtask new <name> [--path DIR]";
    let mut name = None;
    let mut path = None;
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--path" => path = Some(PathBuf::from(args.next().ok_or(usage)?)),
            flag if flag.starts_with('-') => return Err(format!("unknown flag {flag}; {usage}")),
            _ if name.is_some() => return Err(format!("one name only; {usage}")),
            value => name = Some(value.to_owned()),
        }
    }
    let name = name.ok_or(usage)?;
    let dir = path.unwrap_or_else(|| PathBuf::from(&name));
    let project = generate(&name, &dir)?;
    eprintln!(
        "xtask new: wrote {} ({} tests copied; left in the workspace: {})",
        dir.display(),
        project.tests.len(),
        if project.left_out.is_empty() {
            "none".to_owned()
        } else {
            project.left_out.join(", ")
        }
    );
    eprintln!(
        "next: cd {} && cargo test --release   (PostgreSQL and Redis as DATABASE_URL / REDIS_URL, \
         default 127.0.0.1; see its README)",
        dir.display()
    );
    Ok(())
}

/// What [`generate`] wrote.
#[derive(Debug)]
pub(crate) struct Project {
    /// The test files copied (`tests/*.rs`).
    pub(crate) tests: Vec<String>,
    /// The example's test files that need the workspace and were not copied.
    pub(crate) left_out: Vec<String>,
}

/// Writes the project `name` into `dir`, which must not exist or be empty.
pub(crate) fn generate(name: &str, dir: &Path) -> Result<Project> {
    let krate = check_name(name)?;
    check_empty(dir)?;
    let metadata = crate::metadata::workspace()?;
    let example = crate::metadata::package(&metadata, EXAMPLE)?;
    let example_dir = example["manifest_path"]
        .as_str()
        .and_then(|manifest| Path::new(manifest).parent())
        .ok_or("cargo metadata printed no manifest path for the example")?;
    let root = crate::root();
    let read =
        |path: &Path| fs::read_to_string(path).map_err(|e| format!("read {}: {e}", path.display()));

    fs::create_dir_all(dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
    let copied = files::copy(
        example_dir,
        dir,
        &files::Rename {
            package: name,
            krate: &krate,
        },
    )?;
    let workspace_toml = read(&root.join("Cargo.toml"))?;
    let toml = manifest::render(
        name,
        &manifest::Sources {
            metadata: &metadata,
            example,
            workspace_toml: &workspace_toml,
        },
        |krate| copied.test_text.contains(krate),
    )?;
    let readme = readme::render(
        &readme::Facts {
            name,
            checkout: &root.display().to_string(),
            tests: &copied.tests,
            left_out: &copied.left_out,
        },
        &read(&example_dir.join("README.md"))?,
    )?;
    let write = |file: &str, text: &str| {
        let path = dir.join(file);
        fs::write(&path, text).map_err(|e| format!("write {}: {e}", path.display()))
    };
    write("Cargo.toml", &toml)?;
    write("README.md", &readme)?;
    write(".gitignore", "/target\n")?;
    // The versions towerkit's CI builds and tests with; cargo drops the workspace's other
    // packages from it on the first build.
    fs::copy(root.join("Cargo.lock"), dir.join("Cargo.lock"))
        .map_err(|e| format!("copy Cargo.lock: {e}"))?;
    Ok(Project {
        tests: copied.tests,
        left_out: copied.left_out,
    })
}

/// A package name cargo accepts that is not the example's, and its Rust crate name.
fn check_name(name: &str) -> Result<String> {
    let valid = name.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        && name.len() <= 64;
    if !valid {
        return Err(format!(
            "`{name}` is not a package name: a letter, then letters, digits, `-` or `_` (64 at most)"
        ));
    }
    let krate = name.replace('-', "_");
    // Names the copy would collide with, or that cargo refuses for a package.
    const TAKEN: &[&str] = &[
        "example_service",
        "test",
        "towerkit",
        "self",
        "crate",
        "super",
    ];
    if TAKEN.contains(&krate.as_str()) || krate.starts_with("towerkit_") {
        return Err(format!("`{name}` is taken: choose another name"));
    }
    Ok(krate)
}

/// `dir` must not exist, or be an empty directory.
fn check_empty(dir: &Path) -> Result {
    match fs::read_dir(dir).map(|mut entries| entries.next().is_none()) {
        Ok(false) => Err(format!(
            "{} exists and is not empty: choose another --path",
            dir.display()
        )),
        Ok(true) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(format!("{}: {e}", dir.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked() {
        assert_eq!(check_name("shop-api").unwrap(), "shop_api");
        for bad in [
            "",
            "1shop",
            "shop api",
            "shop/api",
            "example-service",
            "towerkit-cache",
            "test",
        ] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
    }

    /// The real example, generated into a scratch directory: its sources renamed, the
    /// tests that need only PostgreSQL and Redis copied (the others listed), and a manifest
    /// without `workspace = true`. (Building and testing it is `cargo xtask outside
    /// template`, which CI runs.)
    #[test]
    fn generates_the_example_as_a_project() {
        let dir = std::env::temp_dir().join(format!("xtask-new-test-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let project = generate("shop-api", &dir).unwrap();
        let read = |file: &str| fs::read_to_string(dir.join(file)).unwrap();
        let toml = read("Cargo.toml");
        assert!(toml.contains("name = \"shop-api\""), "{toml}");
        assert!(!toml.contains("workspace = true"), "{toml}");
        assert!(toml.contains("[patch.crates-io]"), "{toml}");
        assert!(!toml.contains("towerkit-test-support"), "{toml}");
        assert!(read("src/main.rs").contains("shop_api"));
        assert!(!read("src/lib.rs").contains("example_service"));
        assert!(project.tests.contains(&"api.rs".to_owned()), "{project:?}");
        assert!(
            project.left_out.contains(&"redis_cluster.rs".to_owned()),
            "{project:?}"
        );
        for test in &project.tests {
            assert!(!read(&format!("tests/{test}")).contains("towerkit_test_support"));
        }
        assert!(dir.join("migrations/0001_schema.sql").is_file());
        assert!(dir.join("Cargo.lock").is_file());
        assert!(
            generate("shop-api", &dir).is_err(),
            "a second run must not overwrite"
        );
        fs::remove_dir_all(&dir).unwrap();
    }
}
