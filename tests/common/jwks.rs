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

/// A token whose header names no key.
pub fn mint_without_kid(kind: KeyKind, claims: &Value) -> String {
    jsonwebtoken::encode(&Header::new(kind.algorithm()), claims, &kind.encoding_key()).unwrap()
}

#[derive(Default)]
pub struct JwksState {
    keys: Mutex<Vec<Value>>,
    fetches: AtomicUsize,
    down: AtomicBool,
    /// Served instead of the keys when set (a broken or hostile answer).
    body: Mutex<Option<String>>,
    /// Answered with a redirect to this URL when set.
    redirect: Mutex<Option<String>>,
}

pub struct JwksServer {
    pub addr: std::net::SocketAddr,
    pub state: Arc<JwksState>,
    scheme: &'static str,
}

async fn serve_jwks(State(state): State<Arc<JwksState>>) -> axum::response::Response {
    state.fetches.fetch_add(1, Ordering::SeqCst);
    if state.down.load(Ordering::SeqCst) {
        return (http::StatusCode::SERVICE_UNAVAILABLE, "down").into_response();
    }
    if let Some(to) = state.redirect.lock().unwrap().clone() {
        return (http::StatusCode::FOUND, [(http::header::LOCATION, to)]).into_response();
    }
    if let Some(body) = state.body.lock().unwrap().clone() {
        return ([(http::header::CONTENT_TYPE, "application/json")], body).into_response();
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
        Self { addr, state, scheme: "http" }
    }

    /// The default keys, served over TLS with the server certificate of `pki`.
    pub async fn start_tls(pki: &super::certs::Pki) -> Self {
        use rustls::pki_types::pem::PemObject;
        let state = Arc::new(JwksState::default());
        *state.keys.lock().unwrap() = vec![KeyKind::Rsa.jwk("rsa-1"), KeyKind::Ec.jwk("ec-1"), KeyKind::Ed.jwk("ed-1")];
        let app = axum::Router::new()
            .route("/.well-known/jwks.json", axum::routing::get(serve_jwks))
            .with_state(state.clone());
        let certs =
            rustls::pki_types::CertificateDer::pem_file_iter(&pki.server_cert).unwrap().map(|c| c.unwrap()).collect();
        let key = rustls::pki_types::PrivateKeyDer::from_pem_file(&pki.server_key).unwrap();
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else { continue };
                let (acceptor, app) = (acceptor.clone(), app.clone());
                tokio::spawn(async move {
                    let Ok(stream) = acceptor.accept(tcp).await else { return };
                    let service = hyper_util::service::TowerToHyperService::new(app);
                    let builder = hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new());
                    let _ = builder.serve_connection(hyper_util::rt::TokioIo::new(stream), service).await;
                });
            }
        });
        Self { addr, state, scheme: "https" }
    }

    pub fn url(&self) -> String {
        match self.scheme {
            "https" => format!("https://localhost:{}/.well-known/jwks.json", self.addr.port()),
            _ => format!("http://{}/.well-known/jwks.json", self.addr),
        }
    }

    /// Answers every fetch with `body` instead of the keys (`None`: the keys).
    pub fn set_body(&self, body: Option<&str>) {
        *self.state.body.lock().unwrap() = body.map(str::to_owned);
    }

    /// Answers every fetch with a redirect to `to` (`None`: no redirect).
    pub fn set_redirect(&self, to: Option<String>) {
        *self.state.redirect.lock().unwrap() = to;
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
