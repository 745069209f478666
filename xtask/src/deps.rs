//! `cargo xtask deps`: checks the dependency direction of DESIGN.md §1 with `cargo tree`.
//!
//! Architecture invariants: `cairn-core` names no database driver; `cairn-stores` names no
//! concrete backend; backend crates do not depend on each other.

use crate::{Result, cmd};

/// Crates a crate must not reach through its normal (non-dev) dependencies.
const FORBIDDEN: &[(&str, &[&str])] = &[
    (
        "cairn-core",
        &[
            "sled",
            "tokio-postgres",
            "deadpool-postgres",
            "cairn-memory",
            "cairn-sled",
            "cairn-postgres",
        ],
    ),
    (
        "cairn-stores",
        &[
            "sled",
            "tokio-postgres",
            "cairn-memory",
            "cairn-sled",
            "cairn-postgres",
        ],
    ),
    (
        "cairn-memory",
        &["sled", "tokio-postgres", "cairn-sled", "cairn-postgres"],
    ),
    (
        "cairn-sled",
        &["tokio-postgres", "cairn-memory", "cairn-postgres"],
    ),
    ("cairn-postgres", &["sled", "cairn-memory", "cairn-sled"]),
];

/// Runs the check; fails listing every violation.
pub(crate) fn run(_args: &[String]) -> Result<()> {
    let mut violations = Vec::new();
    for (krate, forbidden) in FORBIDDEN {
        let tree = cmd::read(cmd::cargo().args([
            "tree",
            "--package",
            krate,
            "--edges",
            "normal",
            "--prefix",
            "none",
            "--format",
            "{p}",
        ]))?;
        for line in tree.lines() {
            let name = line.split_whitespace().next().unwrap_or_default();
            if forbidden.contains(&name) {
                violations.push(format!("{krate} depends on {name}"));
            }
        }
    }
    if violations.is_empty() {
        eprintln!("dependency direction ok");
        Ok(())
    } else {
        Err(format!(
            "dependency direction broken:\n  {}",
            violations.join("\n  ")
        )
        .into())
    }
}
