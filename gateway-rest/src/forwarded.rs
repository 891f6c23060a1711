//! The headers an RPC carries from a REST request: credentials, the request
//! id, the client address (set by `request_context`) and W3C trace context
//! (a REST layer in front of a remote server passes the caller's trace on
//! as it is).

use axum::http::HeaderMap;

const FORWARDED_COUNT: usize = 6;
// Each name's slot in [`Forwarded`], as ordered in [`FORWARDED`].
const AUTHORIZATION: usize = 0;
const X_API_KEY: usize = 1;
const REQUEST_ID: usize = 2;
const X_FORWARDED_FOR: usize = 3;
const FORWARDED: [http::HeaderName; FORWARDED_COUNT] = [
    http::header::AUTHORIZATION,
    http::HeaderName::from_static("x-api-key"),
    crate::request_context::REQUEST_ID,
    http::HeaderName::from_static("x-forwarded-for"),
    http::HeaderName::from_static("traceparent"),
    http::HeaderName::from_static("tracestate"),
];

/// The RPC request carrying `message` and the forwarded `headers`.
pub(crate) fn rpc_request<T>(headers: &HeaderMap, message: T) -> tonic::Request<T> {
    Forwarded::of(headers).request(message)
}

/// The headers an RPC carries, kept (cheaply: header values share the
/// request's buffer) for a call made after the request is gone.
///
/// A backend finds them as a typed extension of the `tonic::Request`, not
/// as its metadata: the service in this process reads them there without a
/// lookup per name, and [`crate::backend::remote`] sends them as metadata.
#[derive(Clone)]
pub struct Forwarded([Option<http::HeaderValue>; FORWARDED_COUNT]);

impl Forwarded {
    /// The first value of each, found in one pass over the request's few
    /// headers (a hashed lookup per name costs more than the whole pass).
    pub fn of(headers: &HeaderMap) -> Self {
        let mut found: [Option<http::HeaderValue>; FORWARDED_COUNT] = Default::default();
        for (name, value) in headers {
            if let Some(slot) = FORWARDED.iter().position(|f| f == name).map(|i| &mut found[i]) {
                slot.get_or_insert_with(|| value.clone());
            }
        }
        Self(found)
    }

    /// The RPC request carrying `message`, with these headers attached.
    pub(crate) fn request<T>(self, message: T) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        request.extensions_mut().insert(self);
        request
    }

    /// The headers as gRPC metadata, for a backend across the network. The
    /// values are shared, not copied. Each is already a valid metadata
    /// value: a `HeaderValue` holds no control character but tab, whichever
    /// parser (hyper's, h2's) or constructor made it.
    pub(crate) fn into_metadata(self) -> tonic::metadata::MetadataMap {
        let mut metadata = HeaderMap::with_capacity(FORWARDED.len());
        for (name, value) in FORWARDED.iter().zip(self.0) {
            if let Some(value) = value {
                metadata.insert(name.clone(), value);
            }
        }
        tonic::metadata::MetadataMap::from_headers(metadata)
    }

    fn text(&self, slot: usize) -> Option<&str> {
        self.0[slot].as_ref().and_then(|v| v.to_str().ok())
    }

    /// `Authorization`, as sent.
    pub fn authorization(&self) -> Option<&str> {
        self.text(AUTHORIZATION)
    }

    /// `X-Api-Key`, as sent.
    pub fn x_api_key(&self) -> Option<&str> {
        self.text(X_API_KEY)
    }

    /// `X-Request-Id`: the caller's if acceptable, else the one the REST
    /// layer generated.
    pub fn request_id(&self) -> Option<&http::HeaderValue> {
        self.0[REQUEST_ID].as_ref()
    }

    /// `X-Forwarded-For`: the client address the REST layer resolved.
    pub fn client(&self) -> Option<&str> {
        self.text(X_FORWARDED_FOR)
    }
}

/// Handlers take only the forwarded headers, not a copy of the whole map.
impl<S: Send + Sync> axum::extract::FromRequestParts<S> for Forwarded {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut http::request::Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Self::of(&parts.headers))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_accessor_reads_its_own_header() {
        let mut headers = HeaderMap::new();
        for (name, value) in [
            ("authorization", "Bearer t"),
            ("x-api-key", "wa_k"),
            ("x-request-id", "req-1"),
            ("x-forwarded-for", "192.0.2.7"),
            ("x-request-id", "second, ignored"),
        ] {
            headers.append(name, value.parse().unwrap());
        }
        let forwarded = Forwarded::of(&headers);
        assert_eq!(forwarded.authorization(), Some("Bearer t"));
        assert_eq!(forwarded.x_api_key(), Some("wa_k"));
        assert_eq!(forwarded.request_id().map(|v| v.to_str().unwrap()), Some("req-1"));
        assert_eq!(forwarded.client(), Some("192.0.2.7"));
        let metadata = forwarded.into_metadata();
        assert_eq!(metadata.len(), 4);
        assert_eq!(metadata.get("x-request-id").unwrap(), "req-1");
    }
}
