//! TLS for both listening ports (rustls with ring), from PEM files that are
//! read again on SIGHUP. A reload swaps the configuration new connections
//! get; connections already open keep theirs, so none is dropped. A reload
//! that fails (a half-written file) keeps the previous certificates.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use anyhow::Context;
use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use tokio_rustls::TlsAcceptor;

/// How long a client has to finish its TLS handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// Clients of the gRPC port must present a certificate signed by this CA.
    pub client_ca: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy)]
pub enum Port {
    Grpc,
    Http,
}

struct Configs {
    grpc: Arc<ServerConfig>,
    http: Arc<ServerConfig>,
}

pub struct ServerTls {
    files: TlsFiles,
    configs: RwLock<Configs>,
}

fn certificates(path: &Path) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_file_iter(path)
        .with_context(|| format!("reading {}", path.display()))?
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("parsing {}", path.display()))?;
    anyhow::ensure!(!certs.is_empty(), "{} holds no PEM certificate", path.display());
    Ok(certs)
}

fn load(files: &TlsFiles) -> anyhow::Result<Configs> {
    let certs = certificates(&files.cert)?;
    let key = PrivateKeyDer::from_pem_file(&files.key)
        .with_context(|| format!("reading the private key {}", files.key.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = || ServerConfig::builder_with_provider(provider.clone()).with_safe_default_protocol_versions();
    let grpc = match &files.client_ca {
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            for cert in certificates(ca)? {
                roots.add(cert).with_context(|| format!("a CA of {}", ca.display()))?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                .build()
                .with_context(|| format!("the client CAs of {}", ca.display()))?;
            builder()?.with_client_cert_verifier(verifier)
        }
        None => builder()?.with_no_client_auth(),
    };
    let mut grpc = grpc.with_single_cert(certs.clone(), key.clone_key()).context("the TLS certificate and key")?;
    grpc.alpn_protocols = vec![b"h2".to_vec()];
    let mut http =
        builder()?.with_no_client_auth().with_single_cert(certs, key).context("the TLS certificate and key")?;
    http.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Configs { grpc: Arc::new(grpc), http: Arc::new(http) })
}

impl ServerTls {
    pub fn load(files: TlsFiles) -> anyhow::Result<Self> {
        let configs = load(&files)?;
        Ok(Self { files, configs: RwLock::new(configs) })
    }

    /// Reads the files again; on failure the current certificates stay.
    pub fn reload(&self) -> anyhow::Result<()> {
        let fresh = load(&self.files)?;
        *self.configs.write().unwrap_or_else(|p| p.into_inner()) = fresh;
        Ok(())
    }

    /// An acceptor with the certificates in force now.
    pub fn acceptor(&self, port: Port) -> TlsAcceptor {
        let configs = self.configs.read().unwrap_or_else(|p| p.into_inner());
        TlsAcceptor::from(match port {
            Port::Grpc => configs.grpc.clone(),
            Port::Http => configs.http.clone(),
        })
    }
}

/// Reloads `tls` on every SIGHUP until aborted.
pub fn reload_on_sighup(tls: Arc<ServerTls>) -> anyhow::Result<tokio::task::AbortHandle> {
    let mut hangups =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).context("listening for SIGHUP")?;
    Ok(tokio::spawn(async move {
        while hangups.recv().await.is_some() {
            match tls.reload() {
                Ok(()) => tracing::info!("SIGHUP: TLS certificates reloaded"),
                Err(error) => tracing::error!(
                    error = format!("{error:#}"),
                    "SIGHUP: TLS reload failed; keeping the current certificates"
                ),
            }
        }
    })
    .abort_handle())
}
