//! The real grpcurl binary against the real server, through reflection only
//! (no proto files): list, describe, a health check, and an admin call.

use std::process::Command;

use crate::common::*;

fn grpcurl() -> String {
    std::env::var("WA_GATEWAY_GRPCURL").unwrap_or_else(|_| {
        let local = concat!(env!("CARGO_MANIFEST_DIR"), "/.tools/venv/bin/grpcurl");
        if std::path::Path::new(local).exists() { local.to_owned() } else { "grpcurl".to_owned() }
    })
}

fn run(args: &[&str]) -> String {
    let out = Command::new(grpcurl())
        .args(args)
        .output()
        .expect("grpcurl must be installed (scripts/test installs it into .tools/)");
    assert!(out.status.success(), "grpcurl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

crate::both_backends!(grpcurl_lists_describes_checks_health_and_calls);
async fn grpcurl_lists_describes_checks_health_and_calls() {
    let Platform { jwks: _jwks, gw, .. } = Platform::start(&[]).await;
    let addr = gw.grpc_addr.as_str();

    let services = run(&["-plaintext", addr, "list"]);
    for service in [
        "wa.gateway.admin.v1.AdminService",
        "grpc.health.v1.Health",
        "grpc.reflection.v1.ServerReflection",
        "grpc.reflection.v1alpha.ServerReflection",
    ] {
        assert!(services.lines().any(|l| l.trim() == service), "{service} not in {services}");
    }

    let described = run(&["-plaintext", addr, "describe", "wa.gateway.admin.v1.AdminService"]);
    for rpc in
        ["ListSessions", "StartBackfill", "GetBackfill", "WatchBackfill", "ListSessionContacts", "ListSessionGroups"]
    {
        assert!(described.contains(&format!("rpc {rpc} (")), "{rpc} missing from {described}");
    }
    let message = run(&["-plaintext", addr, "describe", "wa.gateway.admin.v1.Session"]);
    assert!(message.contains("organization_id"), "{message}");

    let health = run(&["-plaintext", "-d", r#"{"service":""}"#, addr, "grpc.health.v1.Health/Check"]);
    assert!(health.contains("SERVING"), "{health}");
    let admin_health = run(&[
        "-plaintext",
        "-d",
        r#"{"service":"wa.gateway.admin.v1.AdminService"}"#,
        addr,
        "grpc.health.v1.Health/Check",
    ]);
    assert!(admin_health.contains("SERVING"), "{admin_health}");

    assert!(import(&gw.db, &session_line("s1", "org_a", "working", "gw-1")).status.success());
    let token = mint(KeyKind::Ed, "ed-1", &super_admin_claims());
    let listed = run(&[
        "-plaintext",
        "-H",
        &format!("authorization: Bearer {token}"),
        "-d",
        r#"{"limit": 5}"#,
        addr,
        "wa.gateway.admin.v1.AdminService/ListSessions",
    ]);
    let json: serde_json::Value = serde_json::from_str(&listed).unwrap();
    assert_eq!(json["data"][0]["id"], "s1");
    assert_eq!(json["data"][0]["status"], "SESSION_STATUS_WORKING");

    // Without a token grpcurl reports Unauthenticated.
    let out = Command::new(grpcurl())
        .args(["-plaintext", addr, "wa.gateway.admin.v1.AdminService/ListSessions"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("Unauthenticated"));
}
