//! Installing a missing tool from the Debian registry with `apt-get`, as xtask does for
//! Varnish, nginx and wrk (CI runs as root, with the registry reachable).

use std::process::Command;

/// Installs `packages` (without their recommended packages, non-interactively), refreshing
/// the package lists and trying once more when the first attempt fails (a fresh container
/// has none). Whether the install succeeded.
pub(crate) fn install(packages: &[&str]) -> bool {
    try_install(packages) || (update() && try_install(packages))
}

fn try_install(packages: &[&str]) -> bool {
    Command::new("apt-get")
        .args(["install", "-y", "-qq", "--no-install-recommends"])
        .args(packages)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .status()
        .is_ok_and(|s| s.success())
}

fn update() -> bool {
    Command::new("apt-get")
        .args(["update", "-qq"])
        .status()
        .is_ok_and(|s| s.success())
}
