use crate::time::UnixMillis;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobStatus {
    Queued,
    Running,
    Succeeded,
    Failed,
}

impl JobStatus {
    pub fn is_active(self) -> bool {
        matches!(self, Self::Queued | Self::Running)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
        }
    }
}

/// A backfill job as callers see it. Counters only grow within a job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    /// A ULID.
    pub id: String,
    pub organization_id: String,
    pub session_id: String,
    pub status: JobStatus,
    pub started_at: UnixMillis,
    pub finished_at: Option<UnixMillis>,
    pub contacts: u64,
    pub groups: u64,
    pub group_members: u64,
    pub error: Option<String>,
}
