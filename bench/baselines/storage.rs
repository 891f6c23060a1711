//! The baselines `ingest` measures the backfill against: what the storage
//! engine itself takes to store rows of the same shape into the same schema.

use std::time::{Duration, Instant};

use super::common::*;
use wa_gateway::hosts::sim;

/// Stands for the job id a backfill stores its rows under: the same length,
/// so index keys weigh the same in the baselines as in the backfill.
const GENERATION: &str = "01JBENCHGENERATION00000000";

/// argv: database, contacts, groups, members per group, generation.
const BASELINE: &str = r#"
import sqlite3, sys
db_path, contacts, groups, members, gen = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
db = sqlite3.connect(db_path, isolation_level=None)
db.execute("PRAGMA journal_mode=WAL"); db.execute("PRAGMA synchronous=NORMAL")
s, base = "bench-session", 612345678
def contact(i):
    phone = "62%d%07d" % (base, i)
    return (phone + "@s.whatsapp.net", "%d%07d@lid" % (base + 7, i), phone, "Contact %d" % i,
            "Contact Number %d" % i, "Contact", "Shop %d" % i if i % 10 == 0 else "")
db.execute("BEGIN")
db.executemany("INSERT INTO wa_contacts (session_id, generation, jid, lid, phone_number, push_name, full_name, "
               "first_name, business_name) VALUES (?,?,?,?,?,?,?,?,?)",
               ((s, gen) + contact(i) for i in range(contacts)))
def group_jid(g): return "120363%d%06d@g.us" % (base, g)
db.executemany("INSERT INTO wa_groups (session_id, generation, jid, name, topic, owner_jid, created_at, is_announce, "
               "is_locked, addressing_mode, participant_count) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
               ((s, gen, group_jid(g), "Group %d" % g, "Topic of group %d" % g, contact(0)[0], 1719662400000,
                 0, 0, "pn", members) for g in range(groups)))
def members_of(g):
    for m in range(members):
        c = contact((g * members + m) % max(contacts, members))
        yield (s, gen, group_jid(g), c[0], c[1], c[2], int(m == 0), int(m == 0), c[3])
db.executemany("INSERT INTO wa_group_participants (session_id, generation, group_jid, jid, lid, phone_number, "
               "is_admin, is_super_admin, display_name) VALUES (?,?,?,?,?,?,?,?,?)",
               (row for g in range(groups) for row in members_of(g)))
db.execute("COMMIT")
"#;

/// The baseline's wall time on a fresh, migrated database.
pub fn executemany(contacts: usize, groups: usize, members: usize) -> Duration {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("raw.db");
    assert!(cli(&db, &["--log", "warn", "migrate"]).status.success());
    let started = Instant::now();
    let counts = [contacts, groups, members].map(|n| n.to_string());
    let out = std::process::Command::new("python3")
        .args(["-c", BASELINE])
        .arg(&db)
        .args(&counts)
        .arg(GENERATION)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    started.elapsed()
}

/// COPY text of every row the host sends, as the backfill stores them, per
/// table (built before timing).
pub fn copy_rows(session: &str, contacts: usize, groups: usize, members: usize) -> [Vec<u8>; 3] {
    let (mut c, mut g, mut p) = (Vec::new(), Vec::new(), Vec::new());
    let text = |v: &str| if v.is_empty() { "\\N".to_owned() } else { v.to_owned() };
    for i in 0..contacts {
        let x = sim::contact(session, i);
        let row = [session, GENERATION, &x.jid, &x.lid, &x.phone_number, &x.push_name, &x.full_name, &x.first_name];
        let mut line: Vec<String> = row.iter().map(|v| text(v)).collect();
        line.push(text(&x.business_name));
        c.extend_from_slice(format!("{}\n", line.join("\t")).as_bytes());
    }
    for i in 0..groups {
        let x = sim::group(session, i, members, contacts);
        let flag = |b: bool| if b { "t" } else { "f" };
        g.extend_from_slice(
            format!(
                "{session}\t{GENERATION}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\n",
                x.jid,
                x.name,
                x.topic,
                x.owner_jid,
                x.created_at_ms,
                flag(x.is_announce),
                flag(x.is_locked),
                x.addressing_mode,
                x.participants.len()
            )
            .as_bytes(),
        );
        for m in &x.participants {
            p.extend_from_slice(
                format!(
                    "{session}\t{GENERATION}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\n",
                    x.jid,
                    m.jid,
                    m.lid,
                    m.phone_number,
                    flag(m.is_admin),
                    flag(m.is_super_admin),
                    m.display_name
                )
                .as_bytes(),
            );
        }
    }
    [c, g, p]
}

pub async fn copy(data: &[Vec<u8>; 3]) -> Duration {
    let db = pg::database().await;
    assert!(cli(&db, &["--log", "warn", "migrate"]).status.success());
    let pool = sqlx::PgPool::connect(&db).await.unwrap();
    let mut conn = pool.acquire().await.unwrap();
    let statements = [
        "COPY wa_contacts (session_id, generation, jid, lid, phone_number, push_name, full_name, first_name, business_name) FROM STDIN",
        "COPY wa_groups (session_id, generation, jid, name, topic, owner_jid, created_at, is_announce, is_locked, addressing_mode, participant_count) FROM STDIN",
        "COPY wa_group_participants (session_id, generation, group_jid, jid, lid, phone_number, is_admin, is_super_admin, display_name) FROM STDIN",
    ];
    let started = Instant::now();
    for (statement, rows) in statements.iter().zip(data) {
        let mut copy = conn.copy_in_raw(statement).await.unwrap();
        copy.send(rows.as_slice()).await.unwrap();
        copy.finish().await.unwrap();
    }
    started.elapsed()
}
