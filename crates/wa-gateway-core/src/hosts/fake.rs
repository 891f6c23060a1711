//! Session hosts for domain tests: each feed stream is a channel the test
//! writes to, and contacts come as many as the test asks, in batches, for
//! as long as the job reads. Groups are empty.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::mpsc;

use super::{FeedStream, HostBatches, HostError, SessionHost, SessionHosts};
use crate::directory::{Contact, Group};
use crate::feed::message::FeedMessage;
use crate::sessions::model::SessionId;

/// One end of a feed stream the follower reads: a message, or the host's
/// failure (which ends the stream).
pub type FeedSender = mpsc::UnboundedSender<Result<FeedMessage, HostError>>;

#[derive(Clone, Default)]
pub struct FakeHosts {
    hosts: BTreeMap<String, FakeHost>,
}

impl FakeHosts {
    /// Hosts for `gateways`.
    pub fn new(gateways: &[&str]) -> Self {
        let hosts = gateways.iter().map(|g| (g.to_string(), FakeHost::new(g))).collect();
        Self { hosts }
    }

    pub fn get(&self, gateway: &str) -> &FakeHost {
        &self.hosts[gateway]
    }
}

impl SessionHosts for FakeHosts {
    fn host(&self, gateway: &str) -> Option<Box<dyn SessionHost>> {
        self.hosts.get(gateway).map(|h| Box::new(h.clone()) as Box<dyn SessionHost>)
    }

    fn gateways(&self) -> Vec<String> {
        self.hosts.keys().cloned().collect()
    }
}

#[derive(Clone)]
pub struct FakeHost {
    gateway: String,
    /// The sending end of each feed stream opened, in order.
    opened: Arc<Mutex<mpsc::UnboundedSender<FeedSender>>>,
    opens: Arc<tokio::sync::Mutex<mpsc::UnboundedReceiver<FeedSender>>>,
    /// Contacts per batch; batches keep coming while the job reads.
    pub batch: usize,
}

impl FakeHost {
    fn new(gateway: &str) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        Self {
            gateway: gateway.to_owned(),
            opened: Arc::new(Mutex::new(tx)),
            opens: Arc::new(tokio::sync::Mutex::new(rx)),
            batch: 10,
        }
    }

    /// The next feed stream a follower opens.
    pub async fn next_feed(&self) -> FeedSender {
        self.opens.lock().await.recv().await.expect("the host lives as long as the test")
    }
}

struct Feed(mpsc::UnboundedReceiver<Result<FeedMessage, HostError>>);

#[async_trait]
impl FeedStream for Feed {
    async fn next(&mut self) -> Result<Option<FeedMessage>, HostError> {
        self.0.recv().await.transpose()
    }
}

/// Contacts without end, `batch` at a time.
struct Endless {
    next: usize,
    batch: usize,
}

#[async_trait]
impl HostBatches<Contact> for Endless {
    async fn next(&mut self) -> Result<Option<Vec<Contact>>, HostError> {
        tokio::task::yield_now().await;
        let batch = (self.next..self.next + self.batch)
            .map(|i| Contact {
                jid: format!("{i:07}@s.whatsapp.net"),
                lid: None,
                phone_number: None,
                push_name: None,
                full_name: None,
                first_name: None,
                business_name: None,
            })
            .collect();
        self.next += self.batch;
        Ok(Some(batch))
    }
}

struct Nothing;

#[async_trait]
impl HostBatches<Group> for Nothing {
    async fn next(&mut self) -> Result<Option<Vec<Group>>, HostError> {
        Ok(None)
    }
}

#[async_trait]
impl SessionHost for FakeHost {
    fn gateway(&self) -> &str {
        &self.gateway
    }

    async fn contacts(&self, _: &SessionId, _: Duration) -> Result<Box<dyn HostBatches<Contact>>, HostError> {
        Ok(Box::new(Endless { next: 0, batch: self.batch }))
    }

    async fn groups(&self, _: &SessionId, _: Duration) -> Result<Box<dyn HostBatches<Group>>, HostError> {
        Ok(Box::new(Nothing))
    }

    async fn watch_sessions(&self) -> Result<Box<dyn FeedStream>, HostError> {
        let (tx, rx) = mpsc::unbounded_channel();
        let _ = self.opened.lock().unwrap_or_else(PoisonError::into_inner).send(tx);
        Ok(Box::new(Feed(rx)))
    }

    fn url(&self) -> String {
        format!("http://{}.test", self.gateway)
    }
}
