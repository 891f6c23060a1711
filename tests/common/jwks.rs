//! A real JWKS endpoint over HTTP on 127.0.0.1:0, and real signing keys.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::response::IntoResponse;
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

const KEYS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/keys/");

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyKind {
    Rsa,
    Ec,
    Ed,
    /// An RSA key that the JWKS never publishes.
    Rogue,
}

impl KeyKind {
    pub fn algorithm(self) -> Algorithm {
        match self {
            Self::Rsa | Self::Rogue => Algorithm::RS256,
            Self::Ec => Algorithm::ES256,
            Self::Ed => Algorithm::EdDSA,
        }
    }

    fn pem(self) -> Vec<u8> {
        let file = match self {
            Self::Rsa => "rsa.pem",
            Self::Rogue => "rsa-rogue.pem",
            Self::Ec => "ec.pem",
            Self::Ed => "ed25519.pem",
        };
        std::fs::read(format!("{KEYS}{file}")).unwrap()
    }

    pub fn encoding_key(self) -> EncodingKey {
        let pem = self.pem();
        match self {
            Self::Rsa | Self::Rogue => EncodingKey::from_rsa_pem(&pem).unwrap(),
            Self::Ec => EncodingKey::from_ec_pem(&pem).unwrap(),
            Self::Ed => EncodingKey::from_ed_pem(&pem).unwrap(),
        }
    }

    /// The public JWK of this key under `kid`.
    pub fn jwk(self, kid: &str) -> Value {
        let mut jwk = match self {
            Self::Ed => {
                let pem = std::fs::read_to_string(format!("{KEYS}ed25519.pub.pem")).unwrap();
                let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
                let der = STANDARD.decode(body).unwrap();
                let x = URL_SAFE_NO_PAD.encode(&der[der.len() - 32..]);
                json!({"kty": "OKP", "crv": "Ed25519", "x": x, "alg": "EdDSA"})
            }
            _ => serde_json::to_value(Jwk::from_encoding_key(&self.encoding_key(), self.algorithm()).unwrap()).unwrap(),
        };
        jwk["kid"] = json!(kid);
        jwk["use"] = json!("sig");
        jwk
    }
}

pub fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
}

/// Claims of a login JWT valid for ten minutes.
pub fn claims(sub: &str, org: &str, role: &str, platform_role: Option<&str>) -> Value {
    let mut c = json!({"sub": sub, "org_id": org, "role": role, "iat": now(), "exp": now() + 600});
    if let Some(p) = platform_role {
        c["platform_role"] = json!(p);
    }
    c
}

pub fn super_admin_claims() -> Value {
    claims("user_root", "org_platform", "owner", Some("super_admin"))
}

pub fn mint(kind: KeyKind, kid: &str, claims: &Value) -> String {
    let mut header = Header::new(kind.algorithm());
    header.kid = Some(kid.to_owned());
    jsonwebtoken::encode(&header, claims, &kind.encoding_key()).unwrap()
}

#[derive(Default)]
pub struct JwksState {
    keys: Mutex<Vec<Value>>,
    fetches: AtomicUsize,
    down: AtomicBool,
}

pub struct JwksServer {
    pub addr: std::net::SocketAddr,
    pub state: Arc<JwksState>,
}

async fn serve_jwks(State(state): State<Arc<JwksState>>) -> axum::response::Response {
    state.fetches.fetch_add(1, Ordering::SeqCst);
    if state.down.load(Ordering::SeqCst) {
        return (http::StatusCode::SERVICE_UNAVAILABLE, "down").into_response();
    }
    let keys = state.keys.lock().unwrap().clone();
    axum::Json(json!({ "keys": keys })).into_response()
}

impl JwksServer {
    /// Publishes RSA as `rsa-1`, EC as `ec-1`, Ed25519 as `ed-1`.
    pub async fn start() -> Self {
        Self::start_with(vec![KeyKind::Rsa.jwk("rsa-1"), KeyKind::Ec.jwk("ec-1"), KeyKind::Ed.jwk("ed-1")]).await
    }

    pub async fn start_with(keys: Vec<Value>) -> Self {
        let state = Arc::new(JwksState::default());
        *state.keys.lock().unwrap() = keys;
        let app = axum::Router::new()
            .route("/.well-known/jwks.json", axum::routing::get(serve_jwks))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self { addr, state }
    }

    pub fn url(&self) -> String {
        format!("http://{}/.well-known/jwks.json", self.addr)
    }

    pub fn publish(&self, jwk: Value) {
        self.state.keys.lock().unwrap().push(jwk);
    }

    pub fn set_down(&self, down: bool) {
        self.state.down.store(down, Ordering::SeqCst);
    }

    pub fn fetches(&self) -> usize {
        self.state.fetches.load(Ordering::SeqCst)
    }
}
