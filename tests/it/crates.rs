//! Each crate's dependency rule, read from `cargo metadata`: what a crate may
//! not reach, through any chain of normal dependencies. A new crate states
//! its rule here.

use std::collections::{BTreeSet, HashMap};

use serde_json::Value;

/// Crates that reach a database.
const DATABASES: &[&str] = &["sqlx", "sqlx-core", "sqlx-sqlite", "sqlx-postgres", "rusqlite", "libsqlite3-sys"];

/// (crate, what it may not reach, why).
const RULES: &[(&str, &[&str], &str)] = &[
    ("gateway-rest", DATABASES, "the REST layer reaches data only through the RPCs"),
    ("gateway-rest", &["wa-gateway"], "the REST layer is a client of the gRPC contract, never of the server's code"),
    ("wa-json", &["serde", "serde_json"], "the escaper stands alone (serde_json is only its tests' reference)"),
];

struct Graph {
    /// Package id → name.
    names: HashMap<String, String>,
    /// Package id → ids of its normal (not dev, not build) dependencies.
    normal: HashMap<String, Vec<String>>,
}

fn metadata() -> Graph {
    let out = std::process::Command::new(env!("CARGO"))
        .args(["metadata", "--format-version", "1", "--locked", "--offline"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run cargo metadata");
    assert!(out.status.success(), "cargo metadata: {}", String::from_utf8_lossy(&out.stderr));
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    let names = doc["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["id"].as_str().unwrap().to_owned(), p["name"].as_str().unwrap().to_owned()))
        .collect();
    let normal = doc["resolve"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|node| {
            let deps = node["deps"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|dep| dep["dep_kinds"].as_array().unwrap().iter().any(|k| k["kind"].is_null()))
                .map(|dep| dep["pkg"].as_str().unwrap().to_owned())
                .collect();
            (node["id"].as_str().unwrap().to_owned(), deps)
        })
        .collect();
    Graph { names, normal }
}

impl Graph {
    fn id_of(&self, name: &str) -> String {
        let ids: Vec<_> = self.names.iter().filter(|(_, n)| *n == name).map(|(id, _)| id.clone()).collect();
        assert_eq!(ids.len(), 1, "one package named {name}");
        ids[0].clone()
    }

    /// Names of every package `name` reaches through normal dependencies.
    fn reached_from(&self, name: &str) -> BTreeSet<String> {
        let mut seen = BTreeSet::new();
        let mut todo = vec![self.id_of(name)];
        while let Some(id) = todo.pop() {
            for dep in &self.normal[&id] {
                if seen.insert(dep.clone()) {
                    todo.push(dep.clone());
                }
            }
        }
        seen.into_iter().map(|id| self.names[&id].clone()).collect()
    }
}

#[test]
fn no_crate_reaches_what_its_rule_forbids() {
    let graph = metadata();
    assert!(graph.reached_from("wa-gateway").contains("sqlx"), "the graph is read: the server reaches its store");
    for (krate, forbidden, why) in RULES {
        let reached = graph.reached_from(krate);
        let broken: Vec<_> = forbidden.iter().filter(|f| reached.contains(**f)).collect();
        assert!(broken.is_empty(), "{krate} reaches {broken:?}, but {why}");
    }
}
