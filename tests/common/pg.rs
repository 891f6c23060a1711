//! A throwaway PostgreSQL server for the tests: Debian's `initdb` and
//! `postgres` into a temporary directory, on a random loopback port. Tests
//! run as root in CI and PostgreSQL refuses root, so the server runs as the
//! unprivileged `postgres` user then. It dies with the test process
//! (PR_SET_PDEATHSIG). One server per test binary; every caller of
//! [`database`] gets a fresh database on it.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use sqlx::Connection;

struct Server {
    port: u16,
}

const DIR_PREFIX: &str = "wa-gateway-test-pg-";

/// Where Debian's packages put the server binaries (the newest version), or PATH.
fn bin(name: &str) -> PathBuf {
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("bin"))
        .filter(|b| b.join(name).exists())
        .collect();
    versions.sort_by_key(|p| p.parent().and_then(|v| v.file_name()).and_then(|v| v.to_str()?.parse::<u32>().ok()));
    versions.pop().map(|b| b.join(name)).unwrap_or_else(|| PathBuf::from(name))
}

/// uid and gid of `postgres` when running as root; `None` otherwise.
fn unprivileged() -> Option<(libc::uid_t, libc::gid_t)> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return None;
    }
    // SAFETY: a NUL-terminated name; the returned record is read at once.
    let pw = unsafe { libc::getpwnam(c"postgres".as_ptr()) };
    assert!(!pw.is_null(), "running as root needs the `postgres` user (Debian's postgresql package creates it)");
    // SAFETY: checked non-null above.
    Some(unsafe { ((*pw).pw_uid, (*pw).pw_gid) })
}

/// A command that runs as `postgres` when we are root, and receives SIGINT
/// (fast shutdown) when the thread that started it ends.
fn command(program: &Path) -> Command {
    let mut cmd = Command::new(program);
    let ids = unprivileged();
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            if let Some((uid, gid)) = ids {
                if libc::setgid(gid) != 0 || libc::setuid(uid) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            // After the credential change, which clears it.
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGINT);
            Ok(())
        });
    }
    cmd
}

/// Removes the data directories of earlier test runs whose server is gone.
fn remove_stale_dirs() {
    for entry in std::fs::read_dir(std::env::temp_dir()).into_iter().flatten().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.starts_with(DIR_PREFIX) {
            continue;
        }
        let pid = std::fs::read_to_string(entry.path().join("data/postmaster.pid"))
            .ok()
            .and_then(|s| s.lines().next().and_then(|l| l.trim().parse::<i32>().ok()));
        // SAFETY: signal 0 only checks that the process exists.
        let alive = pid.is_some_and(|pid| unsafe { libc::kill(pid, 0) } == 0);
        if !alive
            && entry
                .metadata()
                .is_ok_and(|m| m.modified().is_ok_and(|t| t.elapsed().unwrap_or_default() > Duration::from_secs(60)))
        {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A fresh data directory (initdb) in its own temporary folder.
fn init() -> (PathBuf, PathBuf) {
    remove_stale_dirs();
    let dir = std::env::temp_dir().join(format!("{DIR_PREFIX}{}-{}", std::process::id(), ulid::Ulid::new()));
    std::fs::create_dir_all(&dir).unwrap();
    if let Some((uid, gid)) = unprivileged() {
        std::os::unix::fs::chown(&dir, Some(uid), Some(gid)).unwrap();
    }
    let data = dir.join("data");
    let out = command(&bin("initdb"))
        .arg("-D")
        .arg(&data)
        .args(["-U", "postgres", "--auth=trust", "--no-sync", "-E", "UTF8", "--locale=C"])
        .output()
        .expect("initdb (install Debian's postgresql package)");
    assert!(out.status.success(), "initdb failed: {}", String::from_utf8_lossy(&out.stderr));
    (dir, data)
}

fn postgres(dir: &Path, data: &Path, port: u16) -> Command {
    let mut cmd = command(&bin("postgres"));
    cmd.arg("-D")
        .arg(data)
        .args(["-p", &port.to_string(), "-k"])
        .arg(dir)
        .args(["-c", "listen_addresses=127.0.0.1", "-c", "max_connections=400", "-c", "fsync=off"])
        .args(["-c", "synchronous_commit=off", "-c", "full_page_writes=off", "-c", "log_min_messages=fatal"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    cmd
}

fn until_listening(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "postgres did not listen within 30 s");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn start() -> Server {
    let (dir, data) = init();
    let port = free_port();
    let (tx, rx) = std::sync::mpsc::channel();
    // The server is a child of a thread that lives as long as the process,
    // so the parent-death signal arrives only when the process ends.
    std::thread::spawn(move || {
        let child = postgres(&dir, &data, port).spawn();
        tx.send(child.map(|c| c.id())).unwrap();
        loop {
            std::thread::park();
        }
    });
    rx.recv().unwrap().expect("start postgres");
    until_listening(port);
    Server { port }
}

/// A PostgreSQL server of one test's own, which the test may restart (a
/// fast shutdown, then a start on the same data and port).
pub struct Dedicated {
    pub port: u16,
    pid: std::sync::Arc<std::sync::atomic::AtomicU32>,
    start: std::sync::mpsc::Sender<()>,
}

impl Dedicated {
    pub fn start() -> Self {
        let (dir, data) = init();
        let port = free_port();
        let pid = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
        let (start, starts) = std::sync::mpsc::channel::<()>();
        let (started, running) = std::sync::mpsc::channel();
        let current = pid.clone();
        // One thread keeps the server: it starts it when told, and reaps it
        // when it stops; it lives as long as the process.
        std::thread::spawn(move || {
            while starts.recv().is_ok() {
                let mut child = postgres(&dir, &data, port).spawn().expect("start postgres");
                current.store(child.id(), std::sync::atomic::Ordering::SeqCst);
                started.send(()).unwrap();
                let _ = child.wait();
            }
        });
        start.send(()).unwrap();
        running.recv().unwrap();
        until_listening(port);
        // Later starts are announced by the listening port alone.
        std::mem::forget(running);
        Self { port, pid, start }
    }

    /// A fresh, empty database on this server; its URL.
    pub async fn database(&self) -> String {
        create_database(self.port).await
    }

    /// Stops the server (fast shutdown: sessions end, transactions roll
    /// back), keeps it down for `down`, and starts it again.
    pub async fn restart(&self, down: Duration) {
        let pid = self.pid.load(std::sync::atomic::Ordering::SeqCst) as libc::pid_t;
        // SAFETY: signalling the server this test started.
        unsafe { libc::kill(pid, libc::SIGINT) };
        let port = self.port;
        tokio::task::spawn_blocking(move || {
            let deadline = Instant::now() + Duration::from_secs(30);
            while std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                assert!(Instant::now() < deadline, "postgres did not stop within 30 s");
                std::thread::sleep(Duration::from_millis(20));
            }
        })
        .await
        .unwrap();
        tokio::time::sleep(down).await;
        // The keeper starts it again once it has reaped the old process.
        self.start.send(()).unwrap();
        while self.pid.load(std::sync::atomic::Ordering::SeqCst) as libc::pid_t == pid {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        tokio::task::spawn_blocking(move || until_listening(port)).await.unwrap();
    }
}

fn server() -> &'static Server {
    static SERVER: OnceLock<Server> = OnceLock::new();
    SERVER.get_or_init(start)
}

/// The URL of the throwaway server's `postgres` database.
pub fn admin_url() -> String {
    format!("postgres://postgres@127.0.0.1:{}/postgres", server().port)
}

/// A fresh, empty database; its URL.
pub async fn database() -> String {
    create_database(server().port).await
}

async fn create_database(port: u16) -> String {
    let admin = format!("postgres://postgres@127.0.0.1:{port}/postgres");
    let name = format!("t_{}", ulid::Ulid::new().to_string().to_lowercase());
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut conn = loop {
        // The server may still be starting up (it listens before it accepts).
        match sqlx::PgConnection::connect(&admin).await {
            Ok(conn) => break conn,
            Err(e) if Instant::now() < deadline => {
                let _ = e;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("cannot reach the test postgres: {e}"),
        }
    };
    sqlx::query(&format!("CREATE DATABASE {name}")).execute(&mut conn).await.unwrap();
    format!("postgres://postgres@127.0.0.1:{port}/{name}")
}

/// Waits until a statement of wa-gateway on `db` whose text contains
/// `naming` waits on a lock (`pg_stat_activity`), within a minute.
pub async fn until_waiting_on_a_lock(db: &str, naming: &str) {
    let watch = sqlx::PgPool::connect(db).await.unwrap();
    let pattern = format!("%{naming}%");
    super::eventually(&format!("a statement on {naming} waiting on a lock"), Duration::from_secs(60), || async {
        let waiting: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'wa-gateway' \
             AND wait_event_type = 'Lock' AND query LIKE $1",
        )
        .bind(&pattern)
        .fetch_one(&watch)
        .await
        .unwrap();
        (waiting > 0).then_some(())
    })
    .await;
    watch.close().await;
}
