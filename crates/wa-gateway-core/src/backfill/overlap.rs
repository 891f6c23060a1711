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

use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio_util::task::AbortOnDropHandle;
use tracing::Instrument;

use crate::hosts::{HostBatches, HostError};
use crate::store::StagingWrites;

/// Most batches waiting for the writer, whatever their size (empty batches
/// included).
const AHEAD_BATCHES: usize = 64;

type Arrival<T> = (Result<Vec<T>, HostError>, Option<OwnedSemaphorePermit>);

/// A host stream being received ahead of the job's writes. Dropping it stops
/// the receiving task.
pub(super) struct Ahead<T> {
    arrivals: mpsc::Receiver<Arrival<T>>,
    failed: Option<HostError>,
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
    /// meanwhile, and a failure to open is the first thing received.
    pub fn opening(
        open: impl Future<Output = Result<Box<dyn HostBatches<T>>, HostError>> + Send + 'static,
        rows: fn(&T) -> usize,
        shape: StagingWrites,
    ) -> Self {
        let write_rows = shape.rows.clamp(1, u32::MAX as usize);
        let ahead = shape.ahead.clamp(write_rows, u32::MAX as usize);
        let (sender, arrivals) = mpsc::channel(AHEAD_BATCHES);
        let room = Arc::new(Semaphore::new(ahead));
        let receiving = async move {
            let mut batches = match open.await {
                Ok(batches) => batches,
                Err(error) => {
                    let _ = sender.send((Err(error), None)).await;
                    return;
                }
            };
            loop {
                let batch = match batches.next().await {
                    Ok(Some(batch)) => batch,
                    Ok(None) => return,
                    Err(error) => {
                        let _ = sender.send((Err(error), None)).await;
                        return;
                    }
                };
                let weight = batch.iter().map(rows).sum::<usize>().min(ahead) as u32;
                let Ok(permit) = room.clone().acquire_many_owned(weight).await else { return };
                if sender.send((Ok(batch), Some(permit))).await.is_err() {
                    return;
                }
            }
        };
        let receiving = AbortOnDropHandle::new(tokio::spawn(receiving.in_current_span()));
        Self { arrivals, failed: None, rows, write_rows, _receiving: receiving }
    }

    /// The next write's items: waits for a batch, then joins whatever else
    /// has arrived, up to the rows of one write. Empty once the host has ended its
    /// stream. A host failure after some items arrived is returned on the
    /// next call, so those items are written first.
    pub async fn next_write(&mut self) -> Result<Vec<T>, HostError> {
        if let Some(error) = self.failed.take() {
            return Err(error);
        }
        let mut items = Vec::new();
        let mut weight = 0;
        while items.is_empty() {
            let Some((batch, _room)) = self.arrivals.recv().await else { return Ok(items) };
            weight += self.take(batch?, &mut items);
        }
        while weight < self.write_rows {
            let Ok((batch, _room)) = self.arrivals.try_recv() else { break };
            match batch {
                Ok(batch) => weight += self.take(batch, &mut items),
                Err(error) => {
                    self.failed = Some(error);
                    break;
                }
            }
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

    #[tokio::test(start_paused = true)]
    async fn batches_that_arrived_during_a_write_join_the_next_write_up_to_the_cap() {
        let (batches, taken) = host(sized(&[3_000, 3_000, 3_000, 3_000, 10]));
        let mut ahead = Ahead::start(batches, |_| 1, SHAPE);
        settle().await;
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
        settle().await;
        assert_eq!(*taken.lock().unwrap(), 2, "one batch of two heavy items fills the room; the next waits");
        assert_eq!(ahead.next_write().await.unwrap().len(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn items_received_before_a_host_failure_are_written_first() {
        let mut batches = sized(&[4]);
        batches.push(Err(HostError::Broken("cut".into())));
        let (batches, _) = host(batches);
        let mut ahead = Ahead::start(batches, |_| 1, SHAPE);
        settle().await;
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
    async fn a_stream_being_opened_is_received_once_open() {
        let (opened, open) = tokio::sync::oneshot::channel();
        let (batches, taken) = host(sized(&[3, 4]));
        let mut ahead = Ahead::opening(async move { open.await.map_err(|_| HostError::NotHeld) }, |_| 1, SHAPE);
        settle().await;
        assert_eq!(*taken.lock().unwrap(), 0, "nothing is received before the stream is open");
        assert!(opened.send(batches).is_ok());
        settle().await;
        assert_eq!(ahead.next_write().await.unwrap().len(), 7);
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
