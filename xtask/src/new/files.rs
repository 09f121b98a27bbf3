//! The example's sources, migrations, dashboards, Varnish configuration and tests, copied
//! with the package renamed.

use std::fs;
use std::path::{Path, PathBuf};

use crate::Result;

/// The directories copied whole, relative to the example's directory.
const COPIED_DIRS: &[&str] = &[
    "src",
    "migrations",
    "dashboards",
    "varnish",
    "tests/support",
];

/// What a test file that needs the workspace's throwaway servers (Redis Cluster, TLS-only
/// Redis, a PostgreSQL to stop) or its log capture imports; those tests stay in the
/// workspace, the rest are the template's.
const WORKSPACE_ONLY: &str = "towerkit_test_support";

/// What was copied.
#[derive(Debug)]
pub(crate) struct Copied {
    /// The test files (`tests/*.rs`) copied, by name.
    pub(crate) tests: Vec<String>,
    /// Those left in the workspace, by name.
    pub(crate) left_out: Vec<String>,
    /// The text of every copied test file, to tell which crates they use.
    pub(crate) test_text: String,
}

/// How the example's names become the project's.
pub(crate) struct Rename<'a> {
    /// The package name (`example-service` becomes it).
    pub(crate) package: &'a str,
    /// The crate's Rust name (`example_service` becomes it).
    pub(crate) krate: &'a str,
}

impl Rename<'_> {
    fn apply(&self, text: &str) -> String {
        text.replace("example_service", self.krate)
            .replace("example-service", self.package)
    }
}

/// Copies the example at `from` into `to`.
pub(crate) fn copy(from: &Path, to: &Path, rename: &Rename<'_>) -> Result<Copied> {
    for dir in COPIED_DIRS {
        for file in files_under(&from.join(dir))? {
            let relative = file
                .strip_prefix(from)
                .map_err(|e| format!("{}: {e}", file.display()))?;
            copy_file(&file, &to.join(relative), rename)?;
        }
    }
    let mut copied = Copied {
        tests: Vec::new(),
        left_out: Vec::new(),
        test_text: String::new(),
    };
    for file in files_in(&from.join("tests"))? {
        let name = file
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if !name.ends_with(".rs") {
            continue;
        }
        let text = read(&file)?;
        if text.contains(WORKSPACE_ONLY) {
            copied.left_out.push(name);
            continue;
        }
        copy_file(&file, &to.join("tests").join(&name), rename)?;
        copied.test_text.push_str(&text);
        copied.tests.push(name);
    }
    for file in files_under(&from.join("tests/support"))? {
        copied.test_text.push_str(&read(&file)?);
    }
    copied.tests.sort();
    copied.left_out.sort();
    Ok(copied)
}

fn copy_file(from: &Path, to: &Path, rename: &Rename<'_>) -> Result {
    if let Some(parent) = to.parent() {
        fs::create_dir_all(parent).map_err(|e| format!("create {}: {e}", parent.display()))?;
    }
    let bytes = fs::read(from).map_err(|e| format!("read {}: {e}", from.display()))?;
    let bytes = match String::from_utf8(bytes) {
        Ok(text) => rename.apply(&text).into_bytes(),
        Err(binary) => binary.into_bytes(),
    };
    fs::write(to, bytes).map_err(|e| format!("write {}: {e}", to.display()))
}

fn read(file: &Path) -> Result<String> {
    fs::read_to_string(file).map_err(|e| format!("read {}: {e}", file.display()))
}

/// The files directly in `dir`, sorted; none when it does not exist.
fn files_in(dir: &Path) -> Result<Vec<PathBuf>> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Ok(Vec::new());
    };
    let mut files = Vec::new();
    for entry in entries {
        let path = entry
            .map_err(|e| format!("read {}: {e}", dir.display()))?
            .path();
        if path.is_file() {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

/// Every file under `dir`, at any depth, sorted.
fn files_under(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut files = files_in(dir)?;
    let Ok(entries) = fs::read_dir(dir) else {
        return Ok(files);
    };
    for entry in entries {
        let path = entry
            .map_err(|e| format!("read {}: {e}", dir.display()))?
            .path();
        if path.is_dir() {
            files.extend(files_under(&path)?);
        }
    }
    files.sort();
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renames_the_crate_and_the_package() {
        let rename = Rename {
            package: "shop-api",
            krate: "shop_api",
        };
        assert_eq!(
            rename.apply("use example_service::app; // example-service: prefix"),
            "use shop_api::app; // shop-api: prefix"
        );
    }
}
