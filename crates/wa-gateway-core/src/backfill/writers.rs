//! A job's staging writes in flight.
//!
//! A backend may take several writes of one job at once
//! ([`StagingWrites::concurrent`]); each is its own transaction, and all of
//! them end before the job publishes, fails or retries a stream. A write
//! that may replace rows an earlier write staged runs alone, after every
//! earlier write has ended, so the last version of a row always wins.
//!
//! [`StagingWrites::concurrent`]: crate::store::StagingWrites

use futures_util::StreamExt;
use futures_util::future::BoxFuture;
use futures_util::stream::FuturesUnordered;

pub(super) type Write<'a, E> = BoxFuture<'a, Result<(), E>>;

pub(super) struct Writers<'a, E> {
    concurrent: usize,
    running: FuturesUnordered<Write<'a, E>>,
}

impl<'a, E> Writers<'a, E> {
    pub fn new(concurrent: usize) -> Self {
        Self { concurrent: concurrent.max(1), running: FuturesUnordered::new() }
    }

    /// Waits until another write may start; `alone`: until none runs.
    pub async fn room(&mut self, alone: bool) -> Result<(), E> {
        let limit = if alone { 1 } else { self.concurrent };
        while self.running.len() >= limit {
            self.finished().await?;
        }
        Ok(())
    }

    pub fn start(&mut self, write: Write<'a, E>) {
        self.running.push(write);
    }

    /// The next write to end; never ready while none runs.
    pub async fn finished(&mut self) -> Result<(), E> {
        match self.running.next().await {
            Some(result) => result,
            None => std::future::pending().await,
        }
    }

    /// Waits for every running write; the first failure is the result.
    pub async fn all_ended(&mut self) -> Result<(), E> {
        let mut first = Ok(());
        while let Some(result) = self.running.next().await {
            if first.is_ok() {
                first = result;
            }
        }
        first
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use futures_util::FutureExt;
    use tokio::sync::oneshot;

    use super::*;

    #[derive(Debug)]
    struct Failed;

    /// A write that ends when told, logging its start and end.
    fn write(name: &'static str, log: &Arc<Mutex<Vec<String>>>) -> (Write<'static, Failed>, oneshot::Sender<bool>) {
        let (end, ended) = oneshot::channel();
        let log = log.clone();
        log.lock().unwrap().push(format!("start {name}"));
        let write = async move {
            let ok = ended.await.unwrap_or(false);
            log.lock().unwrap().push(format!("end {name}"));
            if ok { Ok(()) } else { Err(Failed) }
        };
        (write.boxed(), end)
    }

    #[tokio::test]
    async fn up_to_the_backends_writes_run_at_once_and_a_repeat_runs_alone() {
        let log = Arc::new(Mutex::new(Vec::new()));
        let mut writers = Writers::new(2);
        let (a, end_a) = write("a", &log);
        writers.start(a);
        writers.room(false).now_or_never().expect("a second write may start at once").unwrap();
        let (b, end_b) = write("b", &log);
        writers.start(b);
        assert!(writers.room(false).now_or_never().is_none(), "a third waits");

        let mut alone = Box::pin(writers.room(true));
        end_a.send(true).unwrap();
        assert!((&mut alone).now_or_never().is_none(), "a repeat waits for b as well");
        end_b.send(true).unwrap();
        alone.await.unwrap();
        assert_eq!(*log.lock().unwrap(), ["start a", "start b", "end a", "end b"]);
    }

    #[tokio::test]
    async fn every_write_ends_before_a_failure_is_reported() {
        let log = Arc::new(Mutex::new(Vec::new()));
        let mut writers = Writers::new(2);
        let (a, end_a) = write("a", &log);
        let (b, end_b) = write("b", &log);
        writers.start(a);
        writers.start(b);
        end_a.send(false).unwrap();
        let mut ended = Box::pin(writers.all_ended());
        assert!((&mut ended).now_or_never().is_none(), "b still runs");
        end_b.send(true).unwrap();
        assert!(matches!(ended.await, Err(Failed)));
        assert_eq!(*log.lock().unwrap(), ["start a", "start b", "end a", "end b"]);
    }
}
