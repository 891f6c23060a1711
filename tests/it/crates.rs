//! Each crate's dependency rule, read from `cargo tree`: what a crate may
//! not reach, through any chain of normal dependencies, when it is built on
//! its own with its default features (the workspace-wide `cargo metadata`
//! would unify sqlx's driver features across the backends and blame each
//! for the other's driver). A new crate states its rule here.

use std::collections::BTreeSet;

/// Crates that reach a database.
const DATABASES: &[&str] = &["sqlx", "sqlx-core", "sqlx-sqlite", "sqlx-postgres", "rusqlite", "libsqlite3-sys"];

/// Crates that speak a wire protocol or serve HTTP.
const PROTOCOLS: &[&str] = &["tonic", "prost", "axum"];

/// (crate, what it may not reach, why).
const RULES: &[(&str, &[&str], &str)] = &[
    ("wa-gateway-core", DATABASES, "the domain owns the store's port; the backends implement it"),
    ("wa-gateway-core", PROTOCOLS, "the domain never sees a protocol's types; the binary converts at its edges"),
    ("wa-gateway-core", &["wa-gateway", "gateway-rest"], "the core is depended on, never the other way"),
    ("wa-gateway-sql", &["sqlx-sqlite", "sqlx-postgres", "rusqlite"], "what both backends share names no driver"),
    ("wa-gateway-sqlite", &["sqlx-postgres", "wa-gateway-postgres"], "a SQLite-only build links no PostgreSQL driver"),
    ("wa-gateway-postgres", &["rusqlite", "sqlx-sqlite", "wa-gateway-sqlite"], "each backend stands alone"),
    ("wa-gateway-sql", PROTOCOLS, "the store never sees a protocol's types"),
    ("wa-gateway-sqlite", PROTOCOLS, "the store never sees a protocol's types"),
    ("wa-gateway-postgres", PROTOCOLS, "the store never sees a protocol's types"),
    ("gateway-rest", DATABASES, "the REST layer reaches data only through the RPCs"),
    ("gateway-rest", &["wa-gateway"], "the REST layer is a client of the gRPC contract, never of the server's code"),
    ("wa-json", &["serde", "serde_json"], "the escaper stands alone (serde_json is only its tests' reference)"),
];

/// Names of every package `krate` reaches through normal dependencies,
/// itself included, built on its own.
fn reached_from(krate: &str) -> BTreeSet<String> {
    let out = std::process::Command::new(env!("CARGO"))
        .args(["tree", "--locked", "--offline", "-e", "normal", "--prefix", "none", "-p", krate])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run cargo tree");
    assert!(out.status.success(), "cargo tree -p {krate}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .map(str::to_owned)
        .collect()
}

#[test]
fn no_crate_reaches_what_its_rule_forbids() {
    let server = reached_from("wa-gateway");
    assert!(
        ["sqlx", "sqlx-postgres", "wa-gateway-core", "wa-gateway-sqlite"].iter().all(|c| server.contains(*c)),
        "the tree is read: the server reaches its core and both backends"
    );
    for (krate, forbidden, why) in RULES {
        let reached = reached_from(krate);
        assert!(reached.contains(*krate), "cargo tree -p {krate} lists {krate}");
        let broken: Vec<_> = forbidden.iter().filter(|f| reached.contains(**f)).collect();
        assert!(broken.is_empty(), "{krate} reaches {broken:?}, but {why}");
    }
}
