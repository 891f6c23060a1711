//! Client-side TLS for the gRPC connections this binary makes (to session
//! hosts, to an upstream `serve`, from the operator CLI): rustls with the
//! WebPKI roots, or only the CA bundle the operator names, and an optional
//! client certificate for mTLS.

use std::path::{Path, PathBuf};
use std::time::Duration;

use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity};

#[derive(Debug, thiserror::Error)]
pub enum TlsConfigError {
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{0} holds no PEM certificate")]
    NoCertificate(PathBuf),
    #[error("a client certificate needs both a certificate and a key file")]
    HalfIdentity,
    #[error("{url:?}: {reason}")]
    BadUrl { url: String, reason: String },
}

/// Trust and identity for outgoing TLS, loaded once at start-up.
#[derive(Clone, Debug, Default)]
pub struct ClientTls {
    /// Trust only these CAs; `None` trusts the WebPKI roots.
    ca: Option<Certificate>,
    identity: Option<Identity>,
}

fn read(path: &Path) -> Result<Vec<u8>, TlsConfigError> {
    std::fs::read(path).map_err(|source| TlsConfigError::Read { path: path.to_owned(), source })
}

impl ClientTls {
    pub fn load(ca: Option<&Path>, cert: Option<&Path>, key: Option<&Path>) -> Result<Self, TlsConfigError> {
        let ca = match ca {
            None => None,
            Some(path) => {
                let pem = read(path)?;
                if !String::from_utf8_lossy(&pem).contains("-----BEGIN CERTIFICATE-----") {
                    return Err(TlsConfigError::NoCertificate(path.to_owned()));
                }
                Some(Certificate::from_pem(pem))
            }
        };
        let identity = match (cert, key) {
            (None, None) => None,
            (Some(cert), Some(key)) => Some(Identity::from_pem(read(cert)?, read(key)?)),
            _ => return Err(TlsConfigError::HalfIdentity),
        };
        Ok(Self { ca, identity })
    }

    fn config(&self) -> ClientTlsConfig {
        let mut config = ClientTlsConfig::new();
        config = match &self.ca {
            Some(ca) => config.ca_certificate(ca.clone()),
            None => config.with_webpki_roots(),
        };
        if let Some(identity) = &self.identity {
            config = config.identity(identity.clone());
        }
        config
    }

    /// An endpoint for an `http://` or `https://` URL, with TLS for the latter.
    /// The connect timeout is bounded so a dead peer never hangs a caller.
    pub fn endpoint(&self, url: &str) -> Result<Endpoint, TlsConfigError> {
        let bad = |reason: String| TlsConfigError::BadUrl { url: url.to_owned(), reason };
        let scheme = url.split_once("://").map(|(s, _)| s.to_ascii_lowercase());
        let endpoint = Endpoint::from_shared(url.to_owned())
            .map_err(|e| bad(e.to_string()))?
            .connect_timeout(Duration::from_secs(5));
        match scheme.as_deref() {
            Some("http") => Ok(endpoint),
            Some("https") => endpoint.tls_config(self.config()).map_err(|e| bad(e.to_string())),
            _ => Err(bad("the URL must start with http:// or https://".into())),
        }
    }
}
