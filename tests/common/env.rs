//! A running gateway with four imported sessions on `gw-1` (and one on an
//! unconfigured gateway), a super_admin token, and helpers for the backfill
//! RPCs: start, get, cancel, watch to the end, and full walks of what a
//! backfill stored.

use std::time::Duration;

use tokio_stream::StreamExt;
use tonic::transport::Channel;
use wa_gateway::proto::admin::admin_service_client::AdminServiceClient;
use wa_gateway::proto::admin::*;

use super::Gateway;
use super::*;

pub type Client = AdminServiceClient<Channel>;

pub struct Env {
    pub _jwks: JwksServer,
    pub gw: Gateway,
    pub client: Client,
    pub token: String,
}

/// Starts a gateway with `--host GW=URL` for each of `hosts`, plus `extra` flags.
pub async fn env(hosts: &[(&str, &str)], extra: &[&str]) -> Env {
    let mut args: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
    for (gw, url) in hosts {
        args.push("--host".into());
        args.push(format!("{gw}={url}"));
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let Platform { jwks, gw, admin: token } = Platform::start(&args).await;
    let sessions = [
        session_line("sess-1", "org_a", "working", "gw-1"),
        session_line("sess-2", "org_b", "working", "gw-1"),
        session_line("sess-off", "org_b", "working", "gw-1"),
        session_line("sess-nohost", "org_c", "working", "gw-unconfigured"),
    ]
    .join("\n");
    assert!(import(&gw.db, &sessions).status.success());
    let client = gw.client().await;
    Env { _jwks: jwks, gw, client, token }
}

impl Env {
    pub async fn start(&self, session: &str) -> Result<BackfillJob, tonic::Status> {
        let req = StartBackfillRequest { session_id: session.into() };
        Ok(self.client.clone().start_backfill(authed(req, &self.token)).await?.into_inner().job.unwrap())
    }

    pub async fn get(&self, session: &str) -> Result<BackfillJob, tonic::Status> {
        let req = GetBackfillRequest { session_id: session.into() };
        Ok(self.client.clone().get_backfill(authed(req, &self.token)).await?.into_inner().job.unwrap())
    }

    pub async fn cancel(&self, session: &str) -> Result<BackfillJob, tonic::Status> {
        let req = CancelBackfillRequest { session_id: session.into() };
        Ok(self.client.clone().cancel_backfill(authed(req, &self.token)).await?.into_inner().job.unwrap())
    }

    /// Every state WatchBackfill reports, until the stream ends.
    pub async fn watch(&self, session: &str) -> Vec<BackfillJob> {
        let req = WatchBackfillRequest { session_id: session.into(), ..Default::default() };
        let mut stream = self.client.clone().watch_backfill(authed(req, &self.token)).await.unwrap().into_inner();
        let mut seen = Vec::new();
        while let Some(item) =
            tokio::time::timeout(Duration::from_secs(60), stream.next()).await.expect("watch stalled")
        {
            seen.push(item.unwrap().job.unwrap());
        }
        seen
    }

    /// The job's terminal state.
    pub async fn finished(&self, session: &str) -> BackfillJob {
        let states = self.watch(session).await;
        let last = states.last().cloned().expect("at least one state");
        assert!(matches!(last.status(), BackfillStatus::Succeeded | BackfillStatus::Failed), "{last:?}");
        last
    }

    /// Polls until the session's job runs and has stored at least one batch.
    pub async fn running_with_progress(&self, session: &str) -> BackfillJob {
        eventually("job to store a batch", Duration::from_secs(20), || async {
            let job = self.get(session).await.ok()?;
            (job.status() == BackfillStatus::Running && job.contacts > 0).then_some(job)
        })
        .await
    }

    pub async fn contacts(&self, session: &str) -> Vec<Contact> {
        let mut out = Vec::new();
        let mut cursor = String::new();
        loop {
            let req = ListSessionContactsRequest { session_id: session.into(), limit: Some(97), cursor };
            let page = self.client.clone().list_session_contacts(authed(req, &self.token)).await.unwrap().into_inner();
            out.extend(page.data);
            match page.next_cursor {
                Some(c) => cursor = c,
                None => return out,
            }
        }
    }

    pub async fn groups(&self, session: &str) -> Vec<Group> {
        let mut out = Vec::new();
        let mut cursor = String::new();
        loop {
            let req = ListSessionGroupsRequest { session_id: session.into(), limit: Some(7), cursor };
            let page = self.client.clone().list_session_groups(authed(req, &self.token)).await.unwrap().into_inner();
            out.extend(page.data);
            match page.next_cursor {
                Some(c) => cursor = c,
                None => return out,
            }
        }
    }

    /// Every member of one stored group, walked `limit` at a time.
    pub async fn participants(&self, session: &str, group: &str, limit: i32) -> Vec<Participant> {
        let mut out = Vec::new();
        let mut cursor = String::new();
        loop {
            let req = ListSessionGroupParticipantsRequest {
                session_id: session.into(),
                group_jid: group.into(),
                limit: Some(limit),
                cursor,
            };
            let page = self.client.clone().list_session_group_participants(authed(req, &self.token)).await;
            let page = page.unwrap().into_inner();
            out.extend(page.data);
            match page.next_cursor {
                Some(c) => cursor = c,
                None => return out,
            }
        }
    }

    /// Every group with its members, as (group, member jids).
    pub async fn groups_with_members(&self, session: &str) -> Vec<(Group, Vec<String>)> {
        let mut out = Vec::new();
        for group in self.groups(session).await {
            let members = self.participants(session, &group.jid, 500).await.into_iter().map(|p| p.jid).collect();
            out.push((group, members));
        }
        out
    }
}
