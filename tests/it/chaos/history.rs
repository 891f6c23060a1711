//! What happened in a run: every operation with its answer, every fault,
//! with times from the run's start. Kept as JSON Lines under
//! `target/tmp/chaos/`, so a run can be read afterwards.

use std::sync::Mutex;
use std::time::Instant;

use serde_json::{Value, json};

pub struct History {
    started: Instant,
    events: Mutex<Vec<Value>>,
}

impl History {
    pub fn new() -> Self {
        Self { started: Instant::now(), events: Mutex::new(Vec::new()) }
    }

    pub fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    /// An operation `op` by `who` on `replica`, begun at `at`, and its answer.
    pub fn op(&self, who: &str, replica: Option<usize>, op: &str, at: u64, status: Option<u16>, detail: Value) {
        let event = json!({"at": at, "end": self.now_ms(), "who": who, "replica": replica, "op": op,
                           "status": status, "detail": detail});
        self.events.lock().unwrap().push(event);
    }

    pub fn fault(&self, fault: &str, replica: Option<usize>, phase: &str) {
        let event = json!({"at": self.now_ms(), "who": "nemesis", "replica": replica, "op": fault, "phase": phase});
        self.events.lock().unwrap().push(event);
    }

    pub fn events(&self) -> Vec<Value> {
        self.events.lock().unwrap().clone()
    }

    /// Writes the history to `target/tmp/chaos/<name>.jsonl`; its path.
    pub fn save(&self, name: &str) -> std::path::PathBuf {
        let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("chaos");
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("{name}.jsonl"));
        let lines: Vec<String> = self.events().iter().map(Value::to_string).collect();
        std::fs::write(&path, lines.join("\n") + "\n").unwrap();
        path
    }
}
