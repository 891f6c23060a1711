//! `host-check`: a conformance check of a `SessionHostService` against
//! CONTRACT §4, for the teams that write session hosts. It applies the rules
//! the backfill runner applies (jid shapes and lengths, text and participant
//! limits, items and bytes per message), and the ones the runner forgives
//! but a conforming host never breaks (duplicates), times both streams, and
//! checks the answer for a session the host does not hold.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::time::{Duration, Instant};

use tonic::transport::Channel;

use super::convert;
use super::error::{HostError, from_status};
pub use super::finding::Finding;
use crate::directory::{MAX_ITEMS_PER_MESSAGE, MAX_PARTICIPANTS};
use crate::proto::host::{self as pb, session_host_service_client::SessionHostServiceClient};

#[derive(Debug, Clone)]
pub struct CheckOptions {
    pub session: String,
    /// A stream silent for this long fails its check (and a feed's
    /// snapshot must complete within it).
    pub stall: Duration,
    /// How long to wait for a feed change after the snapshot; `None` waits not.
    pub feed_change_wait: Option<Duration>,
}

#[derive(Debug, Clone, Default)]
pub struct Report {
    pub findings: Vec<Finding>,
}

impl Report {
    pub fn conforms(&self) -> bool {
        self.findings.iter().all(Finding::passed)
    }

    /// The report for people: one line per check, its problems below it.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for f in &self.findings {
            let mark = if f.passed() { "PASS" } else { "FAIL" };
            let _ = writeln!(out, "  {mark}  {}: {}", f.check, f.summary);
            for problem in &f.problems {
                let _ = writeln!(out, "          {problem}");
            }
            if f.more > 0 {
                let _ = writeln!(out, "          … and {} more", f.more);
            }
        }
        let failed = self.findings.iter().filter(|f| !f.passed()).count();
        match failed {
            0 => out.push_str("result: the host conforms\n"),
            n => {
                let _ =
                    writeln!(out, "result: the host does not conform ({n} of {} checks failed)", self.findings.len());
            }
        }
        out
    }
}

/// What one stream delivered.
#[derive(Default)]
struct Tally {
    messages: usize,
    items: usize,
    members: usize,
    first: Option<Duration>,
}

fn timing(tally: &Tally, total: Duration) -> String {
    let rate = tally.items as f64 / total.as_secs_f64().max(1e-6);
    let first = tally.first.map_or("none".into(), |d| format!("{} ms", d.as_millis()));
    format!("first message after {first}, whole stream {} ms ({rate:.0} items/s)", total.as_millis())
}

fn messages(n: usize) -> String {
    if n == 1 { "1 message".into() } else { format!("{n} messages") }
}

/// Notes an item's jid and names the earlier item it repeats.
fn repeat_of(seen: &mut HashMap<String, usize>, jid: &str, index: usize) -> Option<usize> {
    match seen.get(jid) {
        Some(first) => Some(*first),
        None => {
            seen.insert(jid.to_owned(), index);
            None
        }
    }
}

fn items_problem(count: usize) -> Option<String> {
    (count > MAX_ITEMS_PER_MESSAGE)
        .then(|| format!("a message carries {count} items; the limit is {MAX_ITEMS_PER_MESSAGE} per message"))
}

async fn next<M>(stream: &mut tonic::Streaming<M>, stall: Duration) -> Result<Option<M>, HostError> {
    match tokio::time::timeout(stall, stream.message()).await {
        Err(_) => Err(HostError::Stalled(stall)),
        Ok(result) => result.map_err(from_status),
    }
}

async fn check_contacts(client: &mut SessionHostServiceClient<Channel>, options: &CheckOptions) -> Finding {
    let mut finding = Finding { check: "contacts".into(), summary: String::new(), problems: vec![], more: 0 };
    let (mut tally, started) = (Tally::default(), Instant::now());
    let mut seen = HashMap::new();
    let request = pb::StreamContactsRequest { session_id: options.session.clone() };
    let opened = tokio::time::timeout(options.stall, client.stream_contacts(request)).await;
    let mut stream = match opened {
        Err(_) => return failed(finding, HostError::Stalled(options.stall)),
        Ok(Err(status)) => return failed(finding, from_status(status)),
        Ok(Ok(response)) => response.into_inner(),
    };
    loop {
        let message = match next(&mut stream, options.stall).await {
            Ok(Some(message)) => message,
            Ok(None) => break,
            Err(error) => return failed(finding, error),
        };
        tally.first.get_or_insert(started.elapsed());
        tally.messages += 1;
        if let Some(problem) = items_problem(message.contacts.len()) {
            finding.problem(problem);
        }
        for contact in message.contacts {
            let index = tally.items;
            tally.items += 1;
            match convert::contact(contact) {
                Err((field, problem)) => finding.problem(format!("contacts[{index}].{field}: {problem}")),
                Ok(c) => {
                    if let Some(first) = repeat_of(&mut seen, &c.jid, index) {
                        finding.problem(format!("contacts[{index}]: {} repeats contacts[{first}]", c.jid));
                    }
                }
            }
        }
    }
    finding.summary =
        format!("{} contacts in {} messages; {}", tally.items, tally.messages, timing(&tally, started.elapsed()));
    finding
}

async fn check_groups(client: &mut SessionHostServiceClient<Channel>, options: &CheckOptions) -> Finding {
    let mut finding = Finding { check: "joined groups".into(), summary: String::new(), problems: vec![], more: 0 };
    let (mut tally, started) = (Tally::default(), Instant::now());
    let mut seen = HashMap::new();
    let request = pb::StreamJoinedGroupsRequest { session_id: options.session.clone() };
    let opened = tokio::time::timeout(options.stall, client.stream_joined_groups(request)).await;
    let mut stream = match opened {
        Err(_) => return failed(finding, HostError::Stalled(options.stall)),
        Ok(Err(status)) => return failed(finding, from_status(status)),
        Ok(Ok(response)) => response.into_inner(),
    };
    loop {
        let message = match next(&mut stream, options.stall).await {
            Ok(Some(message)) => message,
            Ok(None) => break,
            Err(error) => return failed(finding, error),
        };
        tally.first.get_or_insert(started.elapsed());
        tally.messages += 1;
        if let Some(problem) = items_problem(message.groups.len()) {
            finding.problem(problem);
        }
        for group in message.groups {
            let index = tally.items;
            tally.items += 1;
            tally.members += group.participants.len();
            let mut members = HashMap::new();
            for (m, p) in group.participants.iter().enumerate() {
                if let Some(first) = repeat_of(&mut members, &p.jid, m) {
                    finding
                        .problem(format!("groups[{index}].participants[{m}]: {} repeats participants[{first}]", p.jid));
                }
            }
            match convert::group(group) {
                Err((field, problem)) => finding.problem(format!("groups[{index}].{field}: {problem}")),
                Ok(g) => {
                    if let Some(first) = repeat_of(&mut seen, &g.info.jid, index) {
                        finding.problem(format!("groups[{index}]: {} repeats groups[{first}]", g.info.jid));
                    }
                }
            }
        }
    }
    finding.summary = format!(
        "{} groups with {} participants in {} (limit {MAX_PARTICIPANTS} per group); {}",
        tally.items,
        tally.members,
        messages(tally.messages),
        timing(&tally, started.elapsed())
    );
    finding
}

fn failed(mut finding: Finding, error: HostError) -> Finding {
    finding.summary = "the stream did not complete".into();
    finding.problem(error.to_string());
    finding
}

/// Both RPCs must answer NOT_FOUND for a session the host does not hold.
async fn check_unknown_session(client: &mut SessionHostServiceClient<Channel>, stall: Duration) -> Finding {
    let session = format!("host-check-unknown-{}", ulid::Ulid::new());
    let mut finding = Finding {
        check: "unknown session".into(),
        summary: format!("both streams for {session} answer NOT_FOUND"),
        problems: vec![],
        more: 0,
    };
    let contacts = client.stream_contacts(pb::StreamContactsRequest { session_id: session.clone() });
    let contacts = tokio::time::timeout(stall, contacts).await.map(|r| r.map(|_| ()));
    let groups = client.stream_joined_groups(pb::StreamJoinedGroupsRequest { session_id: session.clone() });
    let groups = tokio::time::timeout(stall, groups).await.map(|r| r.map(|_| ()));
    for (rpc, answer) in [("StreamContacts", contacts), ("StreamJoinedGroups", groups)] {
        match answer {
            Ok(Err(status)) if status.code() == tonic::Code::NotFound => {}
            Ok(Err(status)) => finding.problem(format!("{rpc} answered {:?} ({})", status.code(), status.message())),
            Ok(Ok(())) => finding.problem(format!("{rpc} opened a stream instead of answering NOT_FOUND")),
            Err(_) => finding.problem(format!("{rpc} did not answer within {stall:?}")),
        }
    }
    finding
}

/// Runs every check against the host behind `channel`.
pub async fn run(channel: Channel, options: &CheckOptions) -> Report {
    let mut client = super::client_on(channel);
    let mut report = Report::default();
    report.findings.push(check_contacts(&mut client, options).await);
    report.findings.push(check_groups(&mut client, options).await);
    report.findings.push(check_unknown_session(&mut client, options.stall).await);
    report.findings.push(super::check_feed::check_feed(&mut client, options.stall, options.feed_change_wait).await);
    report
}
