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

    pub fn parse(raw: &str) -> Option<Self> {
        [Self::Queued, Self::Running, Self::Succeeded, Self::Failed].into_iter().find(|s| s.as_str() == raw)
    }

    /// Order of the states a job moves through.
    pub fn rank(self) -> u8 {
        match self {
            Self::Queued => 0,
            Self::Running => 1,
            Self::Succeeded | Self::Failed => 2,
        }
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

/// The error of a job an operator cancelled.
pub const CANCELLED: &str = "cancelled by a super_admin";
/// The error of a job whose replica stopped (shutdown, crash, lost lease).
pub const INTERRUPTED: &str = "interrupted";

impl Job {
    /// A new job of `session`, queued now.
    pub fn queued(id: String, organization_id: String, session_id: String) -> Self {
        Self {
            id,
            organization_id,
            session_id,
            status: JobStatus::Queued,
            started_at: crate::time::now_millis(),
            finished_at: None,
            contacts: 0,
            groups: 0,
            group_members: 0,
            error: None,
        }
    }

    /// Ends the job `failed` with `error`.
    pub fn fail(&mut self, error: &str) {
        self.status = JobStatus::Failed;
        self.error = Some(error.to_owned());
        self.finished_at = Some(crate::time::now_millis());
    }
}
