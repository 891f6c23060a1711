//! Login JWT verification: a cold verify (signature check) against a cached
//! one (hash + map lookup), for each accepted algorithm.
//!
//!     cargo bench --bench auth

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use criterion::{Criterion, criterion_group, criterion_main};
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::json;
use wa_gateway::auth::{JwksCache, JwksConfig, JwtConfig, JwtVerifier};

const KEYS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/keys/");

fn read(file: &str) -> Vec<u8> {
    std::fs::read(format!("{KEYS}{file}")).expect("fixture key")
}

fn ed25519_jwk() -> serde_json::Value {
    let pem = String::from_utf8(read("ed25519.pub.pem")).unwrap();
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    let der = STANDARD.decode(body).unwrap();
    json!({"kty": "OKP", "crv": "Ed25519", "x": URL_SAFE_NO_PAD.encode(&der[der.len() - 32..]), "kid": "ed", "alg": "EdDSA"})
}

fn setup() -> (Arc<JwksCache>, Vec<(&'static str, String)>) {
    let rsa = EncodingKey::from_rsa_pem(&read("rsa.pem")).unwrap();
    let ec = EncodingKey::from_ec_pem(&read("ec.pem")).unwrap();
    let ed = EncodingKey::from_ed_pem(&read("ed25519.pem")).unwrap();
    let mut rsa_jwk = serde_json::to_value(Jwk::from_encoding_key(&rsa, Algorithm::RS256).unwrap()).unwrap();
    rsa_jwk["kid"] = json!("rsa");
    let mut ec_jwk = serde_json::to_value(Jwk::from_encoding_key(&ec, Algorithm::ES256).unwrap()).unwrap();
    ec_jwk["kid"] = json!("ec");
    let jwks = json!({"keys": [rsa_jwk, ec_jwk, ed25519_jwk()]});

    let cache = Arc::new(
        JwksCache::new(JwksConfig {
            url: "http://127.0.0.1:9/unused".into(),
            default_refresh: Duration::from_secs(300),
            unknown_kid_cooldown: Duration::from_secs(30),
            fetch_timeout: Duration::from_secs(1),
            ca: None,
        })
        .unwrap(),
    );
    cache.install(jwks.to_string().as_bytes()).unwrap();

    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let claims = json!({"sub": "user_root", "platform_role": "super_admin", "iat": now, "exp": now + 3600});
    let token = |alg, kid: &str, key: &EncodingKey| {
        let mut header = Header::new(alg);
        header.kid = Some(kid.into());
        jsonwebtoken::encode(&header, &claims, key).unwrap()
    };
    let tokens = vec![
        ("RS256", token(Algorithm::RS256, "rsa", &rsa)),
        ("ES256", token(Algorithm::ES256, "ec", &ec)),
        ("EdDSA", token(Algorithm::EdDSA, "ed", &ed)),
    ];
    (cache, tokens)
}

fn bench(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let (jwks, tokens) = setup();
    let mut group = c.benchmark_group("jwt_verify");
    for (alg, token) in &tokens {
        group.bench_function(format!("{alg}/cold"), |b| {
            b.iter(|| {
                // A fresh verifier has an empty cache: every call checks the signature.
                let verifier = JwtVerifier::new(JwtConfig::default(), jwks.clone());
                runtime.block_on(verifier.verify(token)).unwrap()
            })
        });
        let warm = JwtVerifier::new(JwtConfig::default(), jwks.clone());
        runtime.block_on(warm.verify(token)).unwrap();
        group.bench_function(format!("{alg}/cached"), |b| b.iter(|| runtime.block_on(warm.verify(token)).unwrap()));
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
