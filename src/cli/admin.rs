//! `wa-gateway admin`: the operator CLI, a gRPC client of AdminService.
//! Tables for people, `--json` for scripts; `--follow` draws a live progress
//! bar from WatchBackfill and exits non-zero when the job fails.

use std::time::Duration;

use anyhow::Context;
use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use tokio_stream::StreamExt;
use tonic::transport::Channel;

use crate::proto::admin::{self as pb, admin_service_client::AdminServiceClient};

#[derive(Args, Debug)]
pub struct AdminArgs {
    /// gRPC address of the wa-gateway server (http:// or https://).
    #[arg(long, env = "WA_GATEWAY_SERVER", default_value = "http://127.0.0.1:50051")]
    pub server: String,
    /// CA bundle (PEM) trusted for an https:// server instead of the WebPKI roots.
    #[arg(long, env = "WA_GATEWAY_SERVER_CA", value_name = "PEM")]
    pub ca: Option<std::path::PathBuf>,
    /// Client certificate (PEM) for a server that requires mTLS; needs --key.
    #[arg(long, env = "WA_GATEWAY_CLIENT_CERT", value_name = "PEM", requires = "key")]
    pub cert: Option<std::path::PathBuf>,
    /// Private key (PEM) of --cert.
    #[arg(long, env = "WA_GATEWAY_CLIENT_KEY", value_name = "PEM", requires = "cert")]
    pub key: Option<std::path::PathBuf>,
    /// A super_admin login JWT.
    #[arg(long, env = "WA_GATEWAY_TOKEN", hide_env_values = true)]
    pub token: String,
    /// Print JSON instead of tables.
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub command: AdminCommand,
}

#[derive(Subcommand, Debug)]
pub enum AdminCommand {
    /// Sessions across every organization.
    #[command(subcommand)]
    Sessions(SessionsCommand),
    /// Backfill jobs.
    #[command(subcommand)]
    Backfill(BackfillCommand),
    /// Session events across the fleet.
    #[command(subcommand)]
    Events(super::events::EventsCommand),
    /// Every configured gateway: its session feed and its sessions by status.
    Gateways {
        #[command(subcommand)]
        command: Option<super::gateways::GatewaysCommand>,
    },
}

#[derive(Subcommand, Debug)]
pub enum SessionsCommand {
    /// List sessions (one page, or every page with --all).
    List {
        #[arg(long)]
        org: Option<String>,
        /// stopped, starting, scan_qr_code, working or failed.
        #[arg(long)]
        status: Option<String>,
        #[arg(long)]
        gateway: Option<String>,
        /// Page size (1-500).
        #[arg(long, default_value_t = 50)]
        limit: i32,
        /// Follow the cursor to the last page.
        #[arg(long)]
        all: bool,
    },
    /// One session's history, newest first: when it appeared, each status
    /// change and move, and its removal.
    Events {
        session: String,
        /// Page size (1-500).
        #[arg(long, default_value_t = 50)]
        limit: i32,
        /// Follow the cursor to the oldest event kept.
        #[arg(long)]
        all: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum BackfillCommand {
    /// Start a backfill of one session.
    Start {
        session: String,
        /// Show live progress until the job finishes; exit 1 if it fails.
        #[arg(long)]
        follow: bool,
    },
    /// The current or latest job of a session.
    Status { session: String },
    /// Stop the session's queued or running job; stored data stays as it was.
    Cancel { session: String },
}

fn status_name(raw: i32) -> &'static str {
    match pb::SessionStatus::try_from(raw).unwrap_or(pb::SessionStatus::Unspecified) {
        pb::SessionStatus::Stopped => "stopped",
        pb::SessionStatus::Starting => "starting",
        pb::SessionStatus::ScanQrCode => "scan_qr_code",
        pb::SessionStatus::Working => "working",
        pb::SessionStatus::Failed => "failed",
        pb::SessionStatus::Unspecified => "-",
    }
}

fn job_status(job: &pb::BackfillJob) -> &'static str {
    match job.status() {
        pb::BackfillStatus::Queued => "queued",
        pb::BackfillStatus::Running => "running",
        pb::BackfillStatus::Succeeded => "succeeded",
        pb::BackfillStatus::Failed => "failed",
        pb::BackfillStatus::Unspecified => "-",
    }
}

fn millis(ts: &Option<prost_types::Timestamp>) -> Option<i64> {
    ts.as_ref().map(|t| t.seconds * 1000 + i64::from(t.nanos) / 1_000_000)
}

fn job_json(job: &pb::BackfillJob) -> serde_json::Value {
    serde_json::json!({
        "id": job.id, "organizationId": job.organization_id, "sessionId": job.session_id,
        "status": job_status(job), "startedAt": millis(&job.started_at), "finishedAt": millis(&job.finished_at),
        "contacts": job.contacts, "groups": job.groups, "groupMembers": job.group_members, "error": job.error,
    })
}

fn job_line(job: &pb::BackfillJob) -> String {
    let mut line = format!(
        "job {} of {}: {} (contacts {}, groups {}, group members {})",
        job.id,
        job.session_id,
        job_status(job),
        job.contacts,
        job.groups,
        job.group_members
    );
    if let Some(error) = &job.error {
        line.push_str(&format!(": {error}"));
    }
    line
}

struct Client {
    inner: AdminServiceClient<Channel>,
    token: tonic::metadata::AsciiMetadataValue,
}

impl Client {
    fn request<T>(&self, message: T) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        request.metadata_mut().insert("authorization", self.token.clone());
        request
    }
}

fn rpc_error(status: tonic::Status) -> anyhow::Error {
    anyhow::anyhow!("{:?}: {}", status.code(), status.message())
}

pub async fn run(args: AdminArgs) -> anyhow::Result<()> {
    let tls = crate::tls::ClientTls::load(args.ca.as_deref(), args.cert.as_deref(), args.key.as_deref())?;
    let channel = tls
        .endpoint(&args.server)
        .with_context(|| format!("--server {:?}", args.server))?
        .connect()
        .await
        .with_context(|| format!("cannot reach {}", args.server))?;
    let token = format!("Bearer {}", args.token.trim())
        .parse()
        .map_err(|_| anyhow::anyhow!("--token contains characters a header cannot carry"))?;
    let mut client = Client { inner: AdminServiceClient::new(channel), token };
    match args.command {
        AdminCommand::Events(command) => super::events::run(client.inner, client.token, command, args.json).await,
        AdminCommand::Sessions(SessionsCommand::Events { session, limit, all }) => {
            super::events::list(client.inner, client.token, session, limit, all, args.json).await
        }
        AdminCommand::Gateways { command } => {
            super::gateways::run(client.inner, client.token, command, args.json).await
        }
        AdminCommand::Sessions(SessionsCommand::List { org, status, gateway, limit, all }) => {
            let status = match status.as_deref() {
                None => pb::SessionStatus::Unspecified,
                Some(s) => pb::SessionStatus::from_str_name(&format!("SESSION_STATUS_{}", s.to_uppercase()))
                    .ok_or_else(|| {
                        anyhow::anyhow!("--status {s:?}: expected stopped, starting, scan_qr_code, working or failed")
                    })?,
            };
            let mut cursor = String::new();
            if !args.json {
                println!(
                    "{:<28} {:<18} {:<12} {:<13} {:<16} LABEL",
                    "ID", "ORGANIZATION", "GATEWAY", "STATUS", "PHONE"
                );
            }
            loop {
                let request = pb::ListSessionsRequest {
                    limit: Some(limit),
                    cursor: cursor.clone(),
                    organization_id: org.clone().unwrap_or_default(),
                    status: status.into(),
                    gateway_id: gateway.clone().unwrap_or_default(),
                    if_none_match: String::new(),
                };
                let page = client.inner.list_sessions(client.request(request)).await.map_err(rpc_error)?.into_inner();
                for s in &page.data {
                    if args.json {
                        let line = serde_json::json!({
                            "id": s.id, "organizationId": s.organization_id, "gatewayId": s.gateway_id,
                            "status": status_name(s.status), "phoneNumber": s.phone_number, "label": s.label,
                        });
                        println!("{line}");
                    } else {
                        println!(
                            "{:<28} {:<18} {:<12} {:<13} {:<16} {}",
                            s.id,
                            s.organization_id,
                            s.gateway_id.as_deref().unwrap_or("-"),
                            status_name(s.status),
                            s.phone_number.as_deref().unwrap_or("-"),
                            s.label.as_deref().unwrap_or("")
                        );
                    }
                }
                match page.next_cursor {
                    Some(next) if all => cursor = next,
                    Some(_) => {
                        if !args.json {
                            eprintln!("(more sessions: add --all)");
                        }
                        return Ok(());
                    }
                    None => return Ok(()),
                }
            }
        }
        AdminCommand::Backfill(BackfillCommand::Cancel { session }) => {
            let request = pb::CancelBackfillRequest { session_id: session };
            let job = client.inner.cancel_backfill(client.request(request)).await.map_err(rpc_error)?.into_inner().job;
            let job = job.ok_or_else(|| anyhow::anyhow!("the server answered without a job"))?;
            if args.json {
                println!("{}", job_json(&job))
            } else {
                println!("{}", job_line(&job))
            }
            Ok(())
        }
        AdminCommand::Backfill(BackfillCommand::Status { session }) => {
            let request = pb::GetBackfillRequest { session_id: session };
            let job = client.inner.get_backfill(client.request(request)).await.map_err(rpc_error)?.into_inner().job;
            let job = job.ok_or_else(|| anyhow::anyhow!("the server answered without a job"))?;
            if args.json {
                println!("{}", job_json(&job))
            } else {
                println!("{}", job_line(&job))
            }
            Ok(())
        }
        AdminCommand::Backfill(BackfillCommand::Start { session, follow }) => {
            let request = pb::StartBackfillRequest { session_id: session.clone() };
            let job = client.inner.start_backfill(client.request(request)).await.map_err(rpc_error)?.into_inner().job;
            let job = job.ok_or_else(|| anyhow::anyhow!("the server answered without a job"))?;
            if !follow {
                if args.json {
                    println!("{}", job_json(&job))
                } else {
                    println!("{}", job_line(&job))
                }
                return Ok(());
            }
            let last = follow_job(&mut client, &session, &job.id, args.json).await?;
            match last.status() {
                pb::BackfillStatus::Succeeded => Ok(()),
                _ => Err(anyhow::anyhow!(
                    "backfill {} failed: {}",
                    last.id,
                    last.error.as_deref().unwrap_or("unknown reason")
                )),
            }
        }
    }
}

/// Streams job `job_id` until it finishes, drawing progress (or JSON lines).
async fn follow_job(client: &mut Client, session: &str, job_id: &str, json: bool) -> anyhow::Result<pb::BackfillJob> {
    let request = pb::WatchBackfillRequest { session_id: session.to_owned(), job_id: job_id.to_owned() };
    let mut stream = client.inner.watch_backfill(client.request(request)).await.map_err(rpc_error)?.into_inner();
    let bar = if json { ProgressBar::hidden() } else { ProgressBar::new_spinner() };
    bar.set_style(
        ProgressStyle::with_template("{spinner} {elapsed_precise} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    bar.enable_steady_tick(Duration::from_millis(120));
    let mut last = None;
    while let Some(update) = stream.next().await {
        let job = update.map_err(rpc_error)?.job.ok_or_else(|| anyhow::anyhow!("empty update"))?;
        if json {
            println!("{}", job_json(&job));
        }
        bar.set_message(format!(
            "{}: contacts {} | groups {} | group members {}",
            job_status(&job),
            job.contacts,
            job.groups,
            job.group_members
        ));
        last = Some(job);
    }
    bar.finish_and_clear();
    let last = last.ok_or_else(|| anyhow::anyhow!("the watch ended without any state"))?;
    if !json {
        println!("{}", job_line(&last));
    }
    Ok(last)
}
