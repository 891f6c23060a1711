//! Following one job until it ends, over a board's subscription to its
//! session. A subscription may move on to a newer job before the followed
//! one's last state was seen (a cluster's notifications coalesce); then the
//! followed job is read by id, so a follower always sees how its job ended.

use std::sync::Arc;

use futures_util::stream::{self, BoxStream};
use tokio::sync::watch;

use super::board::JobBoard;
use super::job::Job;
use crate::sessions::model::SessionId;

struct Follow {
    board: Arc<dyn JobBoard>,
    session: SessionId,
    rx: watch::Receiver<Job>,
    following: String,
    last: Option<Job>,
    done: bool,
}

impl Follow {
    async fn next(&mut self) -> Option<Job> {
        if self.done {
            return None;
        }
        let job = match self.last {
            None => self.rx.borrow_and_update().clone(),
            Some(_) => loop {
                let job = self.changed().await?;
                if Some(&job) != self.last.as_ref() {
                    break job;
                }
            },
        };
        self.done = !job.status.is_active();
        self.last = Some(job.clone());
        Some(job)
    }

    async fn changed(&mut self) -> Option<Job> {
        if self.rx.changed().await.is_ok() {
            let job = self.rx.borrow_and_update().clone();
            if job.id == self.following {
                return Some(job);
            }
        }
        match self.board.job(&self.session, &self.following).await {
            Ok(Some(job)) if !job.status.is_active() => Some(job),
            _ => None,
        }
    }
}

/// The job the receiver shows now, then each change of it, ending after its
/// terminal state.
pub fn follow(board: Arc<dyn JobBoard>, session: SessionId, rx: watch::Receiver<Job>) -> BoxStream<'static, Job> {
    let following = rx.borrow().id.clone();
    let state = Follow { board, session, rx, following, last: None, done: false };
    Box::pin(stream::unfold(state, |mut follow| async move {
        let job = follow.next().await?;
        Some((job, follow))
    }))
}
