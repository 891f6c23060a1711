//! `serve --demo`: everything in one process with nothing to configure. A
//! throwaway database with seeded sessions, an in-process simulated session
//! host, an ephemeral Ed25519 signing key whose JWKS the server serves itself,
//! and ready-made credentials. Nothing here is reachable without `--demo`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use rand::RngCore;
use serde_json::json;
use tokio_stream::wrappers::TcpListenerStream;

use crate::auth::generate_api_key;
use crate::hosts::HostRegistry;
use crate::hosts::sim::{SimConfig, SimHost};
use crate::proto::host::session_host_service_server::SessionHostServiceServer;
use crate::sessions::{Session, SessionId, SessionStatus};
use crate::time::{now_millis, now_secs};

const ORGS: [&str; 3] = ["org_acme", "org_globex", "org_initech"];
const GATEWAYS: [&str; 2] = ["gw-demo-1", "gw-demo-2"];
/// The seeded session the simulated host reports as not connected.
pub const DISCONNECTED: &str = "demo-initech-02";
const TOKEN_LIFETIME_SECS: u64 = 12 * 3600;
/// How often a demo host changes one session's status.
const DEMO_CHURN_PER_SEC: f64 = 0.2;

pub struct Demo {
    pub dir: PathBuf,
    pub database_url: String,
    pub hosts: HostRegistry,
    pub jwks_json: String,
    super_admin_token: String,
    owner_token: String,
    api_key: String,
}

/// RFC 8410 PKCS#8 wrapping of a raw Ed25519 seed.
fn ed25519_pkcs8(seed: &[u8; 32]) -> Vec<u8> {
    let mut der = vec![0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20];
    der.extend_from_slice(seed);
    der
}

fn seeded_sessions() -> Result<Vec<Session>, crate::sessions::IdError> {
    let now = now_millis();
    let statuses = [SessionStatus::Working, SessionStatus::Working, SessionStatus::ScanQrCode, SessionStatus::Stopped];
    let mut sessions = Vec::new();
    for (o, org) in ORGS.iter().enumerate() {
        let short = org.trim_start_matches("org_");
        for n in 1..=4 {
            let id = format!("demo-{short}-{n:02}");
            let phone = format!("62812{:03}{:04}", o + 100, n);
            sessions.push(Session {
                id: SessionId::parse(&id)?,
                organization_id: (*org).to_owned(),
                created_by_user_id: Some(format!("user_{short}_admin")),
                gateway_id: Some(GATEWAYS[(o + n) % 2].to_owned()),
                label: Some(format!("{} line {n}", short.to_uppercase())),
                wa_jid: Some(format!("{phone}@s.whatsapp.net")),
                wa_lid: None,
                phone_number: Some(phone),
                status: statuses[(n - 1) % statuses.len()],
                auto_read: n % 2 == 0,
                presence_typing: true,
                is_admin_session: n == 1,
                rate_per_min: Some(20),
                rate_per_hour: Some(600),
                created_at: now - (n as i64) * 86_400_000,
                updated_at: now,
                last_connected_at: Some(now - (n as i64) * 60_000),
            });
        }
    }
    Ok(sessions)
}

/// One simulated host per gateway, each feeding the directory the seeded
/// sessions of its gateway, with a status change every few seconds.
async fn start_sim(sessions: &[Session], gateway: &str) -> anyhow::Result<SocketAddr> {
    let held = sessions.iter().filter(|s| s.gateway_id.as_deref() == Some(gateway)).map(crate::hosts::sim_feed::hosted);
    // Paced so that `backfill start --follow` shows progress for a few
    // seconds: 2,000 contacts and 60 groups in batches of 50, 80 ms apart.
    let config = SimConfig {
        contacts: 2_000,
        groups: 60,
        members_per_group: 12,
        batch_size: 50,
        delay: Duration::from_millis(80),
        fail_after: None,
        disconnected: [DISCONNECTED.to_owned()].into_iter().collect(),
        held: None,
        feed: Some(crate::hosts::sim_feed::SimFeed::new(held, DEMO_CHURN_PER_SEC)),
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        let served = tonic::transport::Server::builder()
            .add_service(SessionHostServiceServer::new(SimHost::new(config)))
            .serve_with_incoming(TcpListenerStream::new(listener))
            .await;
        if let Err(error) = served {
            tracing::error!(%error, "demo session host stopped");
        }
    });
    Ok(addr)
}

impl Demo {
    pub async fn prepare() -> anyhow::Result<Self> {
        let dir = std::env::temp_dir().join(format!("wa-gateway-demo-{}", std::process::id()));
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let database_url = dir.join("demo.db").display().to_string();
        let store = crate::store::open(&database_url).await?;
        let seeded = seeded_sessions()?;
        store.upsert_sessions(&seeded).await?;
        let key = generate_api_key(ORGS[0], Some("demo".into()), vec!["sessions.read".into()]);
        store.insert_api_key(&key.row).await?;
        store.close().await;

        let mut specs = Vec::with_capacity(GATEWAYS.len());
        for gateway in GATEWAYS {
            specs.push(format!("{gateway}=http://{}", start_sim(&seeded, gateway).await?));
        }
        let hosts = HostRegistry::from_specs(&specs, &crate::tls::ClientTls::default())?;

        let mut seed = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut seed);
        let public = ed25519_dalek::SigningKey::from_bytes(&seed).verifying_key().to_bytes();
        let kid = format!("demo-{}", &ulid::Ulid::new().to_string()[..10].to_lowercase());
        let jwks_json = json!({"keys": [{
            "kty": "OKP", "crv": "Ed25519", "alg": "EdDSA", "use": "sig", "kid": kid,
            "x": URL_SAFE_NO_PAD.encode(public),
        }]})
        .to_string();
        let signing = EncodingKey::from_ed_der(&ed25519_pkcs8(&seed));
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(kid);
        let now = now_secs();
        let sign = |claims: serde_json::Value| jsonwebtoken::encode(&header, &claims, &signing);
        let super_admin_token = sign(json!({
            "sub": "demo_super_admin", "org_id": "org_platform", "role": "owner",
            "platform_role": "super_admin", "iat": now, "exp": now + TOKEN_LIFETIME_SECS,
        }))?;
        let owner_token = sign(json!({
            "sub": "demo_acme_owner", "org_id": ORGS[0], "role": "owner", "iat": now, "exp": now + TOKEN_LIFETIME_SECS,
        }))?;
        Ok(Self { dir, database_url, hosts, jwks_json, super_admin_token, owner_token, api_key: key.secret })
    }

    /// The loud banner with ready-to-paste commands.
    pub fn banner(&self, grpc: SocketAddr, http: SocketAddr) -> String {
        let (token, owner, key) = (&self.super_admin_token, &self.owner_token, &self.api_key);
        format!(
            r#"
==================================================================
  wa-gateway DEMO MODE: not for production.
  Throwaway database: {db}
  Ephemeral signing key, simulated session host, seeded sessions
  of {orgs} on {gateways}.
==================================================================

Open the console (this link signs in; the token stays in the tab):
http://{http}/console/#token={token}

super_admin token (12 h), for the commands below:
export WA_GATEWAY_TOKEN='{token}'
org owner token (org_acme; admin calls answer 403):
export OWNER_TOKEN='{owner}'
api-key (org_acme; admin calls answer 403):
export API_KEY='{key}'

List sessions of every organization:
curl -s -H "Authorization: Bearer $WA_GATEWAY_TOKEN" http://{http}/api/v1/admin/sessions
Start a backfill and poll it:
curl -s -X POST -H "Authorization: Bearer $WA_GATEWAY_TOKEN" http://{http}/api/v1/admin/sessions/demo-acme-01:backfill
curl -s -H "Authorization: Bearer $WA_GATEWAY_TOKEN" http://{http}/api/v1/admin/sessions/demo-acme-01/backfill
Over gRPC:
grpcurl -plaintext -H "authorization: Bearer $WA_GATEWAY_TOKEN" -d '{{"limit": 5}}' {grpc} wa.gateway.admin.v1.AdminService/ListSessions
Follow a backfill with a progress bar (the CLI reads $WA_GATEWAY_TOKEN):
wa-gateway admin --server http://{grpc} backfill start demo-globex-01 --follow
Cancel a running job (stored data stays as it was):
wa-gateway admin --server http://{grpc} backfill cancel demo-globex-01
A session whose phone is offline (the job fails):
wa-gateway admin --server http://{grpc} backfill start {disconnected} --follow
"#,
            db = self.database_url,
            orgs = ORGS.join(", "),
            gateways = GATEWAYS.join(" and "),
            disconnected = DISCONNECTED,
        )
    }

    pub fn cleanup(&self) {
        if let Err(error) = std::fs::remove_dir_all(&self.dir) {
            tracing::debug!(%error, "could not remove the demo directory");
        }
    }
}
