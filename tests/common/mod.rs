//! Shared test harness: the real `wa-gateway` binary on 127.0.0.1:0 with a
//! temporary SQLite file, a real JWKS HTTP server with real RSA, EC and
//! Ed25519 keys, and token minting.
#![allow(dead_code)]

pub mod certs;
pub mod env;
pub mod h2raw;
pub mod history;
pub mod host;
pub mod jwks;
pub mod otlp;
pub mod pg;
pub mod proxy;
pub mod webdriver;

use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tonic::transport::Channel;
use wa_gateway::proto::admin::admin_service_client::AdminServiceClient;

#[allow(unused_imports)]
pub use jwks::{JwksServer, KeyKind, claims, mint, now as jwks_now, super_admin_claims};

pub const BIN: &str = env!("CARGO_BIN_EXE_wa-gateway");

/// Which database a test's gateways use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

tokio::task_local! {
    pub static BACKEND: Backend;
}

/// The backend of the running test (SQLite unless it runs on both).
pub fn backend() -> Backend {
    BACKEND.try_with(|b| *b).unwrap_or(Backend::Sqlite)
}

/// Runs the async fn `$name` as two tests, `$name::sqlite` and
/// `$name::postgres`, each with every gateway it starts on that backend.
#[macro_export]
macro_rules! both_backends {
    ($name:ident) => {
        mod $name {
            #[tokio::test]
            async fn sqlite() {
                $crate::common::BACKEND.scope($crate::common::Backend::Sqlite, super::$name()).await
            }
            #[tokio::test]
            async fn postgres() {
                $crate::common::BACKEND.scope($crate::common::Backend::Postgres, super::$name()).await
            }
        }
    };
}

/// Runs a one-shot CLI command against the database `db` (a path or URL).
pub fn cli(db: impl AsRef<std::ffi::OsStr>, args: &[&str]) -> std::process::Output {
    std::process::Command::new(BIN).arg("--database-url").arg(db).args(args).output().expect("run wa-gateway")
}

/// Imports JSON Lines through `wa-gateway sessions import -`.
pub fn import(db: impl AsRef<std::ffi::OsStr>, jsonl: &str) -> std::process::Output {
    import_with(db, jsonl.as_bytes(), &[])
}

/// Feeds raw bytes to `wa-gateway sessions import - EXTRA…`.
pub fn import_with(db: impl AsRef<std::ffi::OsStr>, input: &[u8], extra: &[&str]) -> std::process::Output {
    use std::io::Write;
    let mut child = std::process::Command::new(BIN)
        .arg("--database-url")
        .arg(db)
        .args(["sessions", "import", "-"])
        .args(extra)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn import");
    // The import stops reading at its first bad line; a broken pipe then is expected.
    let _ = child.stdin.take().unwrap().write_all(input);
    child.wait_with_output().unwrap()
}

pub fn session_line(id: &str, org: &str, status: &str, gateway: &str) -> String {
    serde_json::json!({
        "id": id, "organizationId": org, "gatewayId": gateway, "status": status,
        "label": format!("line {id}"), "phoneNumber": "6281234567890",
        "createdAt": 1719662400000i64, "updatedAt": 1719662400000i64,
    })
    .to_string()
}

/// A running `wa-gateway serve`.
pub struct Gateway {
    pub child: Child,
    pub grpc_addr: String,
    pub http_addr: String,
    /// The database: a SQLite file path or a postgres:// URL.
    pub db: String,
    _dir: Option<tempfile::TempDir>,
    /// Its JSON log lines, when started with [`Gateway::start_logged`].
    pub logs: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

/// The set-up most tests share: a JWKS server with real keys, a gateway on
/// a fresh database of the test's backend that trusts it, and a super_admin
/// token the gateway accepts. The JWKS server lives as long as this does.
pub struct Platform {
    pub jwks: JwksServer,
    pub gw: Gateway,
    /// A super_admin bearer token (RS256, kid `rsa-1`).
    pub admin: String,
}

impl Platform {
    /// Starts both, with `extra` flags for `serve`.
    pub async fn start(extra: &[&str]) -> Self {
        let jwks = JwksServer::start().await;
        let gw = Gateway::start(&jwks.url(), extra).await;
        Self { jwks, gw, admin: mint(KeyKind::Rsa, "rsa-1", &super_admin_claims()) }
    }
}

impl Gateway {
    /// Starts with a fresh database of the test's backend.
    pub async fn start(jwks_url: &str, extra: &[&str]) -> Self {
        let (db, dir) = fresh_database().await;
        let mut gw = Self::start_with_db(&db, jwks_url, extra).await;
        gw._dir = dir;
        gw
    }

    pub async fn start_with_db(db: &str, jwks_url: &str, extra: &[&str]) -> Self {
        Self::spawn(db, jwks_url, extra, false).await
    }

    /// Starts with a fresh database, keeping its log lines (`info`, JSON).
    /// [`Gateway::start_with_db`], keeping its JSON log lines in `logs`.
    pub async fn start_with_db_logged(db: &str, jwks_url: &str, extra: &[&str]) -> Self {
        Self::spawn(db, jwks_url, extra, true).await
    }

    pub async fn start_logged(jwks_url: &str, extra: &[&str]) -> Self {
        let (db, dir) = fresh_database().await;
        let mut gw = Self::spawn(&db, jwks_url, extra, true).await;
        gw._dir = dir;
        gw
    }

    async fn spawn(db: &str, jwks_url: &str, extra: &[&str], keep_logs: bool) -> Self {
        let log = if keep_logs {
            ["--log", "info", "--log-format", "json"]
        } else {
            ["--log", "warn", "--log-format", "pretty"]
        };
        let mut child = Command::new(BIN)
            .arg("--database-url")
            .arg(db)
            .args(log)
            .args(["serve", "--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0", "--jwks-url", jwks_url])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(if keep_logs { Stdio::piped() } else { Stdio::inherit() })
            .kill_on_drop(true)
            .spawn()
            .expect("spawn wa-gateway serve");
        let logs = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        if let Some(stderr) = child.stderr.take() {
            let kept = logs.clone();
            tokio::spawn(async move {
                let mut lines = BufReader::new(stderr).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    kept.lock().unwrap().push(line);
                }
            });
        }
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        let line = tokio::time::timeout(Duration::from_secs(60), lines.next_line())
            .await
            .expect("server did not report its addresses within 60 s")
            .unwrap()
            .expect("server exited before listening");
        let addr = |key: &str| {
            line.split_whitespace()
                .find_map(|w| w.strip_prefix(key))
                .unwrap_or_else(|| panic!("no {key} in {line:?}"))
                .to_owned()
        };
        let (grpc_addr, http_addr) = (addr("grpc="), addr("http="));
        // Keep draining stdout so the server never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Self { child, grpc_addr, http_addr, db: db.to_owned(), _dir: None, logs }
    }

    /// SIGKILL: no shutdown at all, as a crash or a power loss.
    pub async fn kill(&mut self) {
        self.child.kill().await.unwrap();
    }

    pub async fn client(&self) -> AdminServiceClient<Channel> {
        let channel = Channel::from_shared(format!("http://{}", self.grpc_addr))
            .unwrap()
            .connect()
            .await
            .expect("connect to gRPC");
        AdminServiceClient::new(channel)
    }

    pub fn http(&self, path: &str) -> String {
        format!("http://{}{}", self.http_addr, path)
    }

    /// SIGTERM, then the exit status.
    /// The database (and its folder) stay, for a restart on the same file.
    pub async fn stop(&mut self) -> std::process::ExitStatus {
        let pid = self.child.id().expect("running").to_string();
        let sent = std::process::Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        assert!(sent.success());
        tokio::time::timeout(Duration::from_secs(30), self.child.wait())
            .await
            .expect("server did not stop within 30 s of SIGTERM")
            .unwrap()
    }
}

/// An empty database of the test's backend, and the temporary folder that
/// holds it (SQLite).
pub async fn fresh_database() -> (String, Option<tempfile::TempDir>) {
    match backend() {
        Backend::Sqlite => {
            let dir = tempfile::tempdir().unwrap();
            (dir.path().join("gateway.db").display().to_string(), Some(dir))
        }
        Backend::Postgres => (pg::database().await, None),
    }
}

/// A tonic request carrying `authorization: Bearer <token>`.
pub fn authed<T>(message: T, token: &str) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.metadata_mut().insert("authorization", format!("Bearer {token}").parse().unwrap());
    request
}

/// Polls `check` until it returns `Some` or the deadline passes.
pub async fn eventually<T, F, Fut>(what: &str, deadline: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let until = tokio::time::Instant::now() + deadline;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(tokio::time::Instant::now() < until, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A `wa-gateway rest` process on 127.0.0.1:0.
pub struct RestProcess {
    pub child: Child,
    pub addr: String,
}

impl RestProcess {
    pub async fn start(args: &[&str]) -> Self {
        let mut child = Command::new(BIN)
            .args(["--log", "warn", "rest", "--http-addr", "127.0.0.1:0"])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn wa-gateway rest");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
            .await
            .expect("rest did not start")
            .unwrap()
            .expect("rest exited");
        let addr = line.split("http=").nth(1).expect("http= in the rest line").split_whitespace().next().unwrap();
        let addr = addr.to_owned();
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Self { child, addr }
    }
}

/// A `wa-gateway host-sim` process on 127.0.0.1:0.
pub struct HostSimProcess {
    pub child: Child,
    pub url: String,
}

impl HostSimProcess {
    pub async fn start(args: &[&str]) -> Self {
        let mut child = Command::new(BIN)
            .args(["--log", "warn", "host-sim", "--addr", "127.0.0.1:0"])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn host-sim");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
            .await
            .expect("host-sim did not start")
            .unwrap()
            .expect("host-sim exited");
        let addr = line.split("addr=").nth(1).expect("addr in host-sim line").trim().to_owned();
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Self { child, url: format!("http://{addr}") }
    }
}
