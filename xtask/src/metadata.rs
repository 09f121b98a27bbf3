//! The workspace as `cargo metadata` describes it (members only, no dependency graph).

use crate::{Result, cargo};

/// `cargo metadata --no-deps` of the workspace.
pub(crate) fn workspace() -> Result<serde_json::Value> {
    let output = cargo()
        .args(["metadata", "--no-deps", "--format-version", "1", "--locked"])
        .output()
        .map_err(|e| format!("could not run cargo metadata: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "cargo metadata failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    serde_json::from_slice(&output.stdout)
        .map_err(|e| format!("cargo metadata printed invalid JSON: {e}"))
}

/// The members in `metadata`.
pub(crate) fn packages(metadata: &serde_json::Value) -> Result<&[serde_json::Value]> {
    metadata["packages"]
        .as_array()
        .map(Vec::as_slice)
        .ok_or_else(|| "cargo metadata printed no `packages` list".to_owned())
}

/// The member called `name`.
pub(crate) fn package<'a>(
    metadata: &'a serde_json::Value,
    name: &str,
) -> Result<&'a serde_json::Value> {
    packages(metadata)?
        .iter()
        .find(|package| package["name"] == name)
        .ok_or_else(|| format!("the workspace has no package `{name}`"))
}
