//! `wa-gateway admin sessions events` and `wa-gateway admin events watch`:
//! session history as lines for people, or JSON lines (the REST shape) for
//! scripts. A watch resumes where it stopped: after a dropped connection it
//! asks again after the last event printed, and every line carries the
//! cursor to pass as `--after` next time.

use std::time::Duration;

use clap::Subcommand;
use tokio_stream::StreamExt;
use tonic::transport::Channel;

use crate::proto::admin::{self as pb, admin_service_client::AdminServiceClient};

#[derive(Subcommand, Debug)]
pub enum EventsCommand {
    /// Print the fleet's session events as they commit, one line each, until
    /// interrupted; reconnects after a dropped connection without losing or
    /// repeating an event.
    Watch {
        /// The cursor of the last event already seen (the last column of a
        /// line, or `cursor` in --json); without it, from now on.
        #[arg(long)]
        after: Option<String>,
    },
}

/// How long a watch waits before asking again after a dropped connection.
const RECONNECT: Duration = Duration::from_secs(1);

fn authorized<T>(token: &tonic::metadata::AsciiMetadataValue, message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.metadata_mut().insert("authorization", token.clone());
    request
}

fn line(event: pb::SessionEvent, json: bool) -> String {
    let cursor = event.cursor.clone();
    let rest = gateway_rest::events::SessionEvent::from(event);
    if json {
        return serde_json::to_string(&rest).unwrap_or_default();
    }
    let change = match (rest.from_status, rest.to_status) {
        (Some(from), Some(to)) => format!("{from} -> {to}"),
        (None, Some(to)) => to.to_owned(),
        (Some(from), None) => format!("{from} ->"),
        (None, None) => String::new(),
    };
    let moved = rest.from_gateway_id.map(|g| format!(" (from {g})")).unwrap_or_default();
    format!(
        "{:<14} {:<28} {:<18} {:<12} {:<15} {:<28} {:<7} {cursor}",
        rest.recorded_at.unwrap_or_default(),
        rest.session_id,
        rest.organization_id,
        rest.gateway_id.as_deref().unwrap_or("-"),
        rest.kind,
        format!("{change}{moved}"),
        rest.source,
    )
}

fn header() -> String {
    format!(
        "{:<14} {:<28} {:<18} {:<12} {:<15} {:<28} {:<7} CURSOR",
        "RECORDED_MS", "SESSION", "ORGANIZATION", "GATEWAY", "KIND", "CHANGE", "SOURCE"
    )
}

fn rpc_error(status: tonic::Status) -> anyhow::Error {
    anyhow::anyhow!("{:?}: {}", status.code(), status.message())
}

/// A status after which asking again cannot help.
fn terminal(status: &tonic::Status) -> bool {
    use tonic::Code;
    matches!(
        status.code(),
        Code::Unauthenticated | Code::PermissionDenied | Code::InvalidArgument | Code::OutOfRange | Code::NotFound
    )
}

/// One session's events, newest first (one page, or every page with `all`).
pub async fn list(
    mut client: AdminServiceClient<Channel>,
    token: tonic::metadata::AsciiMetadataValue,
    session: String,
    limit: i32,
    all: bool,
    json: bool,
) -> anyhow::Result<()> {
    if !json {
        println!("{}", header());
    }
    let mut cursor = String::new();
    loop {
        let request = pb::ListSessionEventsRequest {
            session_id: session.clone(),
            limit: Some(limit),
            cursor,
            ..Default::default()
        };
        let page = client.list_session_events(authorized(&token, request)).await.map_err(rpc_error)?.into_inner();
        for event in page.data {
            println!("{}", line(event, json));
        }
        match page.next_cursor {
            Some(next) if all => cursor = next,
            Some(_) => {
                if !json {
                    eprintln!("(older events: add --all)");
                }
                return Ok(());
            }
            None => return Ok(()),
        }
    }
}

pub async fn run(
    mut client: AdminServiceClient<Channel>,
    token: tonic::metadata::AsciiMetadataValue,
    command: EventsCommand,
    json: bool,
) -> anyhow::Result<()> {
    let EventsCommand::Watch { after } = command;
    let mut after = after.unwrap_or_default();
    if !json {
        println!("{}", header());
    }
    loop {
        let request = pb::WatchSessionEventsRequest { after: after.clone() };
        let mut stream = match client.watch_session_events(authorized(&token, request)).await {
            Ok(response) => response.into_inner(),
            Err(status) if terminal(&status) => return Err(rpc_error(status)),
            Err(status) => {
                eprintln!("watch: {}; asking again in {}s", status.message(), RECONNECT.as_secs());
                tokio::time::sleep(RECONNECT).await;
                continue;
            }
        };
        loop {
            match stream.next().await {
                Some(Ok(update)) => {
                    let Some(event) = update.event else { continue };
                    after = event.cursor.clone();
                    println!("{}", line(event, json));
                }
                Some(Err(status)) if terminal(&status) => return Err(rpc_error(status)),
                Some(Err(status)) => {
                    eprintln!("watch: {}; resuming after the last event", status.message());
                    break;
                }
                None => break,
            }
        }
        tokio::time::sleep(RECONNECT).await;
    }
}
