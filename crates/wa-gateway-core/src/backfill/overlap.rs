//! Receiving from the host while the store writes.
//!
//! A task of its own receives and decodes the host's batches while the job
//! writes, so the store never waits on a decode and the host never waits on
//! a write. Batches that arrived while a write ran are joined into the next
//! write, up to the store's rows per write ([`StagingWrites`]): a store
//! slower than the host gets fewer, larger writes (fewer transactions and
//! round trips), a faster one gets each batch as it comes.
//!
//! Memory stays bounded: at most the store's `ahead` rows (plus one batch)
//! are received ahead of the writes, and one write holds at most `rows`.

use std::sync::Arc;

use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, mpsc};
use tokio_util::task::AbortOnDropHandle;
use tracing::Instrument;

use crate::hosts::{HostBatches, HostError};
use crate::store::StagingWrites;

/// Most batches waiting for the writer, whatever their size (empty batches
/// included).
const AHEAD_BATCHES: usize = 64;

/// What the receiving task hands the writer. It always ends with `Ended` or
/// `Failed`; a channel closed without either means the task panicked.
enum Arrival<T> {
    Batch(Vec<T>, OwnedSemaphorePermit),
    Failed(HostError),
    Ended,
}

/// A host stream being received ahead of the job's writes. Dropping it stops
/// the receiving task.
pub(super) struct Ahead<T> {
    arrivals: mpsc::Receiver<Arrival<T>>,
    /// The host's failure, returned once the items before it are written.
    failed: Option<HostError>,
    ended: bool,
    /// Receiving starts when the writer first asks for a write.
    asked: Arc<Notify>,
    rows: fn(&T) -> usize,
    write_rows: usize,
    _receiving: AbortOnDropHandle<()>,
}

impl<T: Send + 'static> Ahead<T> {
    /// Starts receiving `batches`, each item weighing `rows` rows, for
    /// writes shaped as `shape` says (a single host batch larger than a
    /// write is taken whole).
    pub fn start(batches: Box<dyn HostBatches<T>>, rows: fn(&T) -> usize, shape: StagingWrites) -> Self {
        Self::opening(std::future::ready(Ok(batches)), rows, shape)
    }

    /// As [`Ahead::start`], for a stream still being opened: the job goes on
    /// meanwhile, and a failure to open is the first thing received. Nothing
    /// is received before the writer first asks for a write, so a stream
    /// opened early holds no more than the transport's window meanwhile.
    pub fn opening(
        open: impl Future<Output = Result<Box<dyn HostBatches<T>>, HostError>> + Send + 'static,
        rows: fn(&T) -> usize,
        shape: StagingWrites,
    ) -> Self {
        let write_rows = shape.rows.clamp(1, u32::MAX as usize);
        let ahead = shape.ahead.clamp(write_rows, u32::MAX as usize);
        let (sender, arrivals) = mpsc::channel(AHEAD_BATCHES);
        let room = Arc::new(Semaphore::new(ahead));
        let asked = Arc::new(Notify::new());
        let first_ask = asked.clone();
        let receiving = async move {
            let mut batches = match open.await {
                Ok(batches) => batches,
                Err(error) => {
                    let _ = sender.send(Arrival::Failed(error)).await;
                    return;
                }
            };
            first_ask.notified().await;
            loop {
                let batch = match batches.next().await {
                    Ok(Some(batch)) => batch,
                    Ok(None) => {
                        let _ = sender.send(Arrival::Ended).await;
                        return;
                    }
                    Err(error) => {
                        let _ = sender.send(Arrival::Failed(error)).await;
                        return;
                    }
                };
                let weight = batch.iter().map(rows).sum::<usize>().min(ahead) as u32;
                let permit = room.clone().acquire_many_owned(weight).await.expect("the semaphore is never closed");
                if sender.send(Arrival::Batch(batch, permit)).await.is_err() {
                    return;
                }
            }
        };
        let receiving = AbortOnDropHandle::new(tokio::spawn(receiving.in_current_span()));
        Self { arrivals, failed: None, ended: false, asked, rows, write_rows, _receiving: receiving }
    }

    /// The next write's items: waits for a batch, then joins whatever else
    /// has arrived, up to the rows of one write. Empty once the host has ended its
    /// stream. A host failure after some items arrived is returned on the
    /// next call, so those items are written first.
    pub async fn next_write(&mut self) -> Result<Vec<T>, HostError> {
        self.asked.notify_one();
        let mut items = Vec::new();
        let mut weight = 0;
        while !self.ended && self.failed.is_none() && weight < self.write_rows {
            let arrival = if items.is_empty() {
                self.arrivals.recv().await
            } else {
                match self.arrivals.try_recv() {
                    Ok(arrival) => Some(arrival),
                    Err(mpsc::error::TryRecvError::Empty) => break,
                    Err(mpsc::error::TryRecvError::Disconnected) => None,
                }
            };
            match arrival {
                Some(Arrival::Batch(batch, _room)) => weight += self.take(batch, &mut items),
                Some(Arrival::Failed(error)) => self.failed = Some(error),
                Some(Arrival::Ended) => self.ended = true,
                // The job fails as for any panic, never as if the host had
                // ended its stream.
                None => panic!("the task receiving a host stream panicked"),
            }
        }
        if items.is_empty()
            && let Some(error) = self.failed.take()
        {
            return Err(error);
        }
        Ok(items)
    }

    fn take(&self, batch: Vec<T>, into: &mut Vec<T>) -> usize {
        let weight = batch.iter().map(self.rows).sum();
        into.extend(batch);
        weight
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::sync::Mutex;
    use std::time::Duration;

    use async_trait::async_trait;

    use super::*;

    /// Batches ready at once, then (optionally) a failure; records how many
    /// were taken from the host.
    struct Script {
        batches: VecDeque<Result<Option<Vec<u32>>, HostError>>,
        taken: Arc<Mutex<usize>>,
    }

    #[async_trait]
    impl HostBatches<u32> for Script {
        async fn next(&mut self) -> Result<Option<Vec<u32>>, HostError> {
            tokio::task::yield_now().await;
            *self.taken.lock().unwrap() += 1;
            self.batches.pop_front().unwrap_or(Ok(None))
        }
    }

    fn host(batches: Vec<Result<Option<Vec<u32>>, HostError>>) -> (Box<dyn HostBatches<u32>>, Arc<Mutex<usize>>) {
        let taken = Arc::new(Mutex::new(0));
        (Box::new(Script { batches: batches.into(), taken: taken.clone() }), taken)
    }

    fn sized(sizes: &[usize]) -> Vec<Result<Option<Vec<u32>>, HostError>> {
        sizes.iter().map(|&n| Ok(Some(vec![1; n]))).collect()
    }

    const CAP: usize = 8_192;
    const SHAPE: StagingWrites = StagingWrites { rows: CAP, ahead: CAP, concurrent: 1 };

    /// Lets every other task run until it waits (time is paused in these
    /// tests, so the sleep ends only when nothing else can run).
    async fn settle() {
        tokio::time::sleep(Duration::from_secs(1)).await;
    }

    /// Lets receiving start, as a writer's first ask does, and settles.
    async fn asked<T: Send + 'static>(ahead: &Ahead<T>) {
        ahead.asked.notify_one();
        settle().await;
    }

    #[tokio::test(start_paused = true)]
    async fn batches_that_arrived_during_a_write_join_the_next_write_up_to_the_cap() {
        let (batches, taken) = host(sized(&[3_000, 3_000, 3_000, 3_000, 10]));
        let mut ahead = Ahead::start(batches, |_| 1, SHAPE);
        asked(&ahead).await;
        assert_eq!(*taken.lock().unwrap(), 3, "a batch past the cap waits for the writer to take rows");
        assert_eq!(ahead.next_write().await.unwrap().len(), 6_000);
        settle().await;
        assert_eq!(ahead.next_write().await.unwrap().len(), 6_010, "what arrived meanwhile, joined");
        assert!(ahead.next_write().await.unwrap().is_empty(), "the stream ended");
    }

    #[tokio::test(start_paused = true)]
    async fn a_writer_faster_than_the_host_gets_each_batch_as_it_comes() {
        let (batches, _) = host(sized(&[5, 0, 6]));
        let mut ahead = Ahead::start(batches, |_| 1, SHAPE);
        assert_eq!(ahead.next_write().await.unwrap().len(), 5);
        assert_eq!(ahead.next_write().await.unwrap().len(), 6, "an empty batch is skipped");
        assert!(ahead.next_write().await.unwrap().is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn rows_are_weighed_by_the_given_measure() {
        let (batches, taken) = host(sized(&[2, 2, 2]));
        let mut ahead = Ahead::start(batches, |_| CAP / 2, SHAPE);
        asked(&ahead).await;
        assert_eq!(*taken.lock().unwrap(), 2, "one batch of two heavy items fills the room; the next waits");
        assert_eq!(ahead.next_write().await.unwrap().len(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn items_received_before_a_host_failure_are_written_first() {
        let mut batches = sized(&[4]);
        batches.push(Err(HostError::Broken("cut".into())));
        let (batches, _) = host(batches);
        let mut ahead = Ahead::start(batches, |_| 1, SHAPE);
        asked(&ahead).await;
        assert_eq!(ahead.next_write().await.unwrap().len(), 4);
        let error = ahead.next_write().await.unwrap_err();
        assert!(matches!(error, HostError::Broken(_)), "{error}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_stream_that_fails_to_open_fails_the_first_write() {
        let open = async { Err::<Box<dyn HostBatches<u32>>, _>(HostError::NotHeld) };
        let mut ahead = Ahead::opening(open, |_| 1, SHAPE);
        let error = ahead.next_write().await.unwrap_err();
        assert!(matches!(error, HostError::NotHeld), "{error}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_stream_opened_early_is_received_only_once_the_writer_asks() {
        let (opened, open) = tokio::sync::oneshot::channel();
        let (batches, taken) = host(sized(&[3, 4]));
        let mut ahead = Ahead::opening(async move { open.await.map_err(|_| HostError::NotHeld) }, |_| 1, SHAPE);
        settle().await;
        assert!(opened.send(batches).is_ok(), "the stream is still being opened");
        settle().await;
        assert_eq!(*taken.lock().unwrap(), 0, "an open stream waits for the writer's first ask");
        let mut received = 0;
        loop {
            let items = ahead.next_write().await.unwrap();
            if items.is_empty() {
                break;
            }
            received += items.len();
        }
        assert_eq!(received, 7);
    }

    /// A stream whose receiving panics.
    struct Panicking;

    #[async_trait]
    impl HostBatches<u32> for Panicking {
        async fn next(&mut self) -> Result<Option<Vec<u32>>, HostError> {
            panic!("a bug in a decoder")
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_panic_while_receiving_is_a_panic_of_the_job_never_the_end_of_the_stream() {
        let mut ahead = Ahead::start(Box::new(Panicking), |_| 1, SHAPE);
        let outcome = futures_util::FutureExt::catch_unwind(std::panic::AssertUnwindSafe(ahead.next_write())).await;
        assert!(outcome.is_err(), "not {:?}", outcome.map(|r| r.map(|items| items.len())));
    }

    #[tokio::test(start_paused = true)]
    async fn dropping_it_stops_receiving() {
        let (batches, taken) = host(sized(&[1; 1_000]));
        let ahead = Ahead::start(batches, |_| 1, SHAPE);
        drop(ahead);
        settle().await;
        assert!(*taken.lock().unwrap() <= 1, "the receiving task was stopped");
    }
}
