//! `sessions import` of large JSON Lines files: wall time and the peak RSS of
//! the importing process, beside a raw-SQLite baseline run in the same loop:
//! Python's `sqlite3.executemany` of the same rows, in one transaction, into
//! the same schema. Each figure is the median of 3 runs on a fresh database.
//!
//!     cargo bench --bench import      # 100,000 and 1,000,000 lines
//!     cargo test --bench import       # 2,000 lines (smoke)

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_wa-gateway");

const BASELINE: &str = r#"
import json, sqlite3, sys
cols = ["id","organization_id","created_by_user_id","gateway_id","label","phone_number","wa_jid","wa_lid",
        "status","auto_read","presence_typing","is_admin_session","rate_per_min","rate_per_hour",
        "created_at","updated_at","last_connected_at"]
keys = ["id","organizationId","createdByUserId","gatewayId","label","phoneNumber","waJid","waLid",
        "status","autoRead","presenceTyping","isAdminSession","ratePerMin","ratePerHour",
        "createdAt","updatedAt","lastConnectedAt"]
db = sqlite3.connect(sys.argv[1], isolation_level=None)
db.execute("PRAGMA journal_mode=WAL"); db.execute("PRAGMA synchronous=NORMAL")
def rows():
    with open(sys.argv[2], "rb") as f:
        for line in f:
            r = json.loads(line)
            yield tuple(r.get(k) for k in keys)
db.execute("BEGIN")
db.executemany("INSERT INTO sessions (%s) VALUES (%s)" % (",".join(cols), ",".join("?" * len(cols))), rows())
db.execute("COMMIT")
"#;

fn write_lines(path: &Path, n: usize) {
    let mut out = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    for i in 0..n {
        writeln!(
            out,
            r#"{{"id":"imp{i:07}","organizationId":"org_{}","createdByUserId":"user_{}","gatewayId":"gw-{}","label":"Line {i}","phoneNumber":"628{i:010}","waJid":"628{i:010}@s.whatsapp.net","waLid":null,"status":"working","autoRead":false,"presenceTyping":true,"isAdminSession":false,"ratePerMin":20,"ratePerHour":600,"createdAt":1719662400000,"updatedAt":1719662400000,"lastConnectedAt":null}}"#,
            i % 40,
            i % 97,
            i % 8
        )
        .unwrap();
    }
}

/// Runs `command` to completion; its wall time and peak RSS in KiB.
fn measured(command: &mut Command) -> (Duration, i64) {
    let started = Instant::now();
    let child = command.stdout(Stdio::null()).spawn().unwrap();
    let mut status = 0;
    // SAFETY: an all-zero rusage is a valid value for wait4 to overwrite.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: waits for our own child, which nothing else reaps.
    let pid = unsafe { libc::wait4(child.id() as libc::pid_t, &mut status, 0, &mut usage) };
    assert!(pid > 0 && libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0, "{command:?} failed");
    (started.elapsed(), usage.ru_maxrss)
}

fn fresh_db(dir: &Path, name: &str) -> String {
    let db = dir.join(name);
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", db.display()));
    }
    let db = db.display().to_string();
    assert!(Command::new(BIN).args(["--log", "warn", "--database-url", &db, "migrate"]).status().unwrap().success());
    db
}

fn median(mut runs: Vec<(Duration, i64)>) -> (Duration, i64) {
    runs.sort_by_key(|r| r.0);
    let wall = runs[runs.len() / 2].0;
    let mut rss: Vec<i64> = runs.iter().map(|r| r.1).collect();
    rss.sort();
    (wall, rss[rss.len() / 2])
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let sizes: &[usize] = if full { &[100_000, 1_000_000] } else { &[2_000] };
    let runs = if full { 3 } else { 1 };
    let dir = tempfile::tempdir().unwrap();
    println!(
        "| lines | file | wa-gateway import | rows/s | peak RSS | raw SQLite (executemany) | rows/s | peak RSS | ratio (rate) |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for &n in sizes {
        let file = dir.path().join(format!("sessions-{n}.jsonl"));
        write_lines(&file, n);
        let bytes = std::fs::metadata(&file).unwrap().len();
        let (mut ours, mut raw) = (Vec::new(), Vec::new());
        for _ in 0..runs {
            let db = fresh_db(dir.path(), "ours.db");
            ours.push(measured(
                Command::new(BIN).args(["--log", "warn", "--database-url", &db, "sessions", "import"]).arg(&file),
            ));
            let db = fresh_db(dir.path(), "raw.db");
            raw.push(measured(Command::new("python3").args(["-c", BASELINE, &db]).arg(&file)));
        }
        let ((ours_wall, ours_rss), (raw_wall, raw_rss)) = (median(ours), median(raw));
        let rate = |wall: Duration| n as f64 / wall.as_secs_f64();
        println!(
            "| {n} | {:.0} MB | {:.2} s | {:.0} | {:.1} MiB | {:.2} s | {:.0} | {:.1} MiB | {:.2} |",
            bytes as f64 / 1e6,
            ours_wall.as_secs_f64(),
            rate(ours_wall),
            ours_rss as f64 / 1024.0,
            raw_wall.as_secs_f64(),
            rate(raw_wall),
            raw_rss as f64 / 1024.0,
            rate(ours_wall) / rate(raw_wall)
        );
    }
}
