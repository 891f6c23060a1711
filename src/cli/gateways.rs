//! `wa-gateway admin gateways`: the gateways view as a table (or JSON), and
//! accepting a held snapshot.

use clap::Subcommand;
use tonic::transport::Channel;

use crate::proto::admin::{self as pb, admin_service_client::AdminServiceClient};

#[derive(Subcommand, Debug)]
pub enum GatewaysCommand {
    /// Apply the gateway's held snapshot: remove the sessions its host no
    /// longer holds (see the gateway's lastError for how many).
    Accept { gateway: String },
}

const STATUSES: [&str; 5] = ["working", "scan_qr_code", "starting", "stopped", "failed"];

fn millis(ts: Option<&prost_types::Timestamp>) -> Option<i64> {
    ts.map(|t| t.seconds * 1000 + i64::from(t.nanos) / 1_000_000)
}

fn feed(g: &pb::Gateway) -> &'static str {
    gateway_rest::dto::feed_state(g.feed())
}

fn json(g: &pb::Gateway) -> serde_json::Value {
    serde_json::json!({
        "id": g.id, "hostUrl": g.host_url, "feed": feed(g), "sessions": g.sessions,
        "lastSnapshotAt": millis(g.last_snapshot_at.as_ref()), "lastEventAt": millis(g.last_event_at.as_ref()),
        "lastError": g.last_error, "follower": g.follower, "statusCounts": g.status_counts, "heldRemovals": g.held_removals,
    })
}

/// The table: one row per gateway, a column per status.
fn table(gateways: &[pb::Gateway]) -> String {
    let mut out = format!("{:<20} {:<12} {:>9}", "GATEWAY", "FEED", "SESSIONS");
    for status in STATUSES {
        out.push_str(&format!(" {status:>12}"));
    }
    out.push_str("  LAST ERROR\n");
    for g in gateways {
        out.push_str(&format!("{:<20} {:<12} {:>9}", g.id, feed(g), g.sessions));
        for status in STATUSES {
            out.push_str(&format!(" {:>12}", g.status_counts.get(status).copied().unwrap_or(0)));
        }
        out.push_str(&format!("  {}\n", g.last_error.as_deref().unwrap_or("-")));
    }
    out
}

pub async fn run(
    mut client: AdminServiceClient<Channel>,
    token: tonic::metadata::AsciiMetadataValue,
    command: Option<GatewaysCommand>,
    as_json: bool,
) -> anyhow::Result<()> {
    fn request<T>(token: &tonic::metadata::AsciiMetadataValue, message: T) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        request.metadata_mut().insert("authorization", token.clone());
        request
    }
    let error = |status: tonic::Status| anyhow::anyhow!("{:?}: {}", status.code(), status.message());
    match command {
        None => {
            let listed =
                client.list_gateways(request(&token, pb::ListGatewaysRequest {})).await.map_err(error)?.into_inner();
            if as_json {
                for g in &listed.data {
                    println!("{}", json(g));
                }
            } else {
                print!("{}", table(&listed.data));
            }
        }
        Some(GatewaysCommand::Accept { gateway }) => {
            let message = pb::AcceptGatewaySnapshotRequest { gateway_id: gateway };
            let accepted = client.accept_gateway_snapshot(request(&token, message)).await.map_err(error)?.into_inner();
            let g = accepted.gateway.ok_or_else(|| anyhow::anyhow!("the server answered without the gateway"))?;
            if as_json {
                println!("{}", json(&g));
            } else {
                println!(
                    "accepted: the follower of {} removes {} session(s) its host no longer holds",
                    g.id, g.held_removals
                );
            }
        }
    }
    Ok(())
}
