//! The REST contract against its declarations: every google.api.http
//! annotation in the proto has its REST route and every REST route (as the
//! served OpenAPI document lists them) its annotation; and schemathesis,
//! driven by that document, finds no server error and no response that
//! violates it.

use std::collections::BTreeSet;
use std::process::Command;

use crate::common::host::{Script, ScriptedHost, contact, group};
use crate::common::*;
use prost::Message;
use serde_json::Value;

// Just enough of descriptor.proto to read the google.api.http option.
#[derive(Clone, PartialEq, Message)]
struct FileSet {
    #[prost(message, repeated, tag = "1")]
    file: Vec<File>,
}
#[derive(Clone, PartialEq, Message)]
struct File {
    #[prost(message, repeated, tag = "6")]
    service: Vec<Service>,
}
#[derive(Clone, PartialEq, Message)]
struct Service {
    #[prost(string, tag = "1")]
    name: String,
    #[prost(message, repeated, tag = "2")]
    method: Vec<Method>,
}
#[derive(Clone, PartialEq, Message)]
struct Method {
    #[prost(string, tag = "1")]
    name: String,
    #[prost(message, optional, tag = "4")]
    options: Option<MethodOptions>,
}
#[derive(Clone, PartialEq, Message)]
struct MethodOptions {
    #[prost(message, optional, tag = "72295728")]
    http: Option<HttpRule>,
}
#[derive(Clone, PartialEq, Message)]
struct HttpRule {
    #[prost(string, tag = "2")]
    get: String,
    #[prost(string, tag = "3")]
    put: String,
    #[prost(string, tag = "4")]
    post: String,
    #[prost(string, tag = "5")]
    delete: String,
    #[prost(string, tag = "6")]
    patch: String,
    #[prost(message, repeated, tag = "11")]
    additional_bindings: Vec<HttpRule>,
}

fn annotated_routes() -> BTreeSet<(String, String)> {
    let set = FileSet::decode(gateway_rest::proto::FILE_DESCRIPTOR_SET).unwrap();
    let mut routes = BTreeSet::new();
    for service in set.file.iter().flat_map(|f| &f.service).filter(|s| s.name == "AdminService") {
        for method in &service.method {
            let rule = method
                .options
                .as_ref()
                .and_then(|o| o.http.clone())
                .unwrap_or_else(|| panic!("{} has no google.api.http", method.name));
            for rule in std::iter::once(&rule).chain(&rule.additional_bindings) {
                let (verb, path) = [
                    ("GET", &rule.get),
                    ("PUT", &rule.put),
                    ("POST", &rule.post),
                    ("DELETE", &rule.delete),
                    ("PATCH", &rule.patch),
                ]
                .into_iter()
                .find(|(_, p)| !p.is_empty())
                .unwrap();
                routes.insert((
                    verb.to_owned(),
                    path.replace("{session_id}", "{session}")
                        .replace("{group_jid}", "{groupJid}")
                        .replace("{gateway_id}", "{gateway}"),
                ));
            }
        }
    }
    routes
}

async fn start() -> (JwksServer, ScriptedHost, Gateway, String) {
    let (host, url) = ScriptedHost::start(Script {
        contacts: (0..25).map(|i| contact(i, "c")).collect(),
        groups: (0..3).map(|i| group(i, 2, "g")).collect(),
        batch: 10,
        ..Default::default()
    })
    .await;
    let Platform { jwks, gw, admin } = Platform::start(&["--host", &format!("gw-1={url}")]).await;
    let lines: Vec<String> = (0..3).map(|i| session_line(&format!("s{i}"), "org_a", "working", "gw-1")).collect();
    assert!(import(&gw.db, &lines.join("\n")).status.success());
    (jwks, host, gw, admin)
}

crate::both_backends!(every_annotation_has_a_route_and_every_route_an_annotation);
async fn every_annotation_has_a_route_and_every_route_an_annotation() {
    let (_jwks, _host, gw, token) = start().await;
    let annotated = annotated_routes();
    assert_eq!(annotated.len(), 15, "{annotated:?}");

    let document: Value = reqwest::get(gw.http("/api/v1/openapi.json")).await.unwrap().json().await.unwrap();
    assert_eq!(document["openapi"], "3.1.0");
    let mut documented = BTreeSet::new();
    for (path, item) in document["paths"].as_object().unwrap() {
        for verb in item.as_object().unwrap().keys() {
            documented.insert((verb.to_uppercase(), path.clone()));
        }
    }
    assert_eq!(annotated, documented, "proto annotations and REST routes differ");

    // And each one is really routed (not the 404/405 of the router).
    let http = reqwest::Client::new();
    for (verb, path) in &annotated {
        let url =
            gw.http(&path.replace("{session}", "s1").replace("{groupJid}", "g0000@g.us").replace("{gateway}", "gw-1"));
        let resp = http.request(verb.parse().unwrap(), url).bearer_auth(&token).send().await.unwrap();
        let status = resp.status();
        if path.ends_with("session-events:watch") {
            // A change stream does not end: its answer is the proof.
            assert_eq!(status, 200, "{verb} {path}");
            continue;
        }
        let body = resp.text().await.unwrap();
        assert!(status != 405 && !body.contains("no such path"), "{verb} {path}: {status} {body}");
    }
}

fn schemathesis() -> String {
    std::env::var("WA_GATEWAY_SCHEMATHESIS").unwrap_or_else(|_| {
        let local = concat!(env!("CARGO_MANIFEST_DIR"), "/.tools/venv/bin/schemathesis");
        if std::path::Path::new(local).exists() { local.to_owned() } else { "schemathesis".to_owned() }
    })
}

#[tokio::test]
async fn schemathesis_finds_no_server_errors_or_contract_violations() {
    let (_jwks, _host, gw, token) = start().await;
    let out = tokio::task::spawn_blocking(move || {
        Command::new(schemathesis())
            .args(["--config-file", concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/schemathesis.toml")])
            .args(["run", &gw.http("/api/v1/openapi.json")])
            .args(["--header", &format!("Authorization: Bearer {token}")])
            .args(["--checks", "all", "--max-examples", "25", "--seed", "20261121"])
            // CancelBackfill may wait up to 15 s for a running job to stop
            // (then 504 CANCEL_PENDING): a shorter client timeout reports a
            // slow but correct cancel as a network error.
            .args(["--generation-database", "none", "--request-timeout", "20", "--max-time", "100"])
            .args(["--no-color", "--workers", "1"])
            // The change stream never ends by design; its contract is
            // tested in tests/it/events.rs.
            .args(["--exclude-operation-id", "watchSessionEvents"])
            .env("SCHEMATHESIS_HOOKS", "schemathesis_hooks")
            .env("PYTHONPATH", concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures"))
            .output()
            .expect("schemathesis must be installed (scripts/test installs it into .tools/)")
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "schemathesis failed:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
}
