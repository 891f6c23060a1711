//! Prometheus metrics (through the `metrics` facade) and the audit trail.
//!
//! Metric names, all prefixed `wa_gateway_`:
//! - `requests_total{transport,method,code}` and
//!   `request_duration_seconds{transport,method}`: every gRPC call (method =
//!   RPC path) and REST request (method = HTTP method + route template).
//!
//! Every label comes from a closed set (the RPCs this server serves, the
//! standard HTTP methods, the router's route templates, `other` for anything
//! else), so no client can create series, however it calls.
//! - `backfill_jobs_total{status}`: jobs started (`queued`) and finished.
//! - `backfill_rows_total{kind}`: contacts, groups and group members stored.
//! - `jwks_fetches_total{outcome}`: JWKS fetches that succeeded or failed.
//! - `auth_rejections_total{credential,reason}`: refused credentials.
//! - `backfill_timeouts_total`: jobs failed by `--backfill-timeout-secs`;
//!   `backfill_running`, `backfill_oldest_running_start_time_seconds` (0
//!   when none) and `backfill_timeout_seconds`: this replica's running jobs.
//! - `jwks_last_success_timestamp_seconds`: when signing keys were last loaded.
//! - `store_busy_total{during}`: a busy store refused a request (answered
//!   503) or made a job's write wait (`backfill`).
//! - `ready`: 1 when `/readyz` would answer 200 (evaluated at each scrape).
//! - `log_lines_dropped_total`: log lines (audit events included) dropped
//!   because stderr could not keep up (see [`log_writer`]).
//! - `trace_spans_exported_total`, `trace_spans_dropped_total{reason}`:
//!   spans sent to the OTLP collector, and spans dropped (`queue_full`,
//!   `export_failed`); see [`traces`].
//!
//! Audit events are tracing events with target `audit`, one per admin RPC;
//! [`logs`] writes them.

mod log_writer;
pub mod logs;
pub mod traces;

use std::task::{Context, Poll};
use std::time::Instant;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tower::{Layer, Service};

/// How often recorded histogram samples are folded into their buckets.
const UPKEEP_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

/// Installs the process-wide recorder; later calls return a handle to the
/// same registry.
///
/// The recorder keeps every histogram sample until it is folded into its
/// buckets, which a scrape or an upkeep does: without the upkeep thread
/// started here, a server nobody scrapes would keep ~16 bytes per request
/// for ever (and grow slower as it grew).
pub fn install() -> PrometheusHandle {
    static HANDLE: std::sync::OnceLock<PrometheusHandle> = std::sync::OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets(&[0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0])
                .map(|b| b.build_recorder())
                .unwrap_or_else(|_| PrometheusBuilder::new().build_recorder());
            let handle = recorder.handle();
            if metrics::set_global_recorder(recorder).is_err() {
                tracing::warn!("a metrics recorder was already installed; /metrics may be empty");
            }
            let upkeep = handle.clone();
            let started = std::thread::Builder::new().name("wa-gateway-metrics".into()).spawn(move || {
                loop {
                    std::thread::sleep(UPKEEP_EVERY);
                    upkeep.run_upkeep();
                }
            });
            if let Err(error) = started {
                tracing::warn!(%error, "cannot start the metrics upkeep thread; histograms are folded at scrapes only");
            }
            handle
        })
        .clone()
}

/// The Prometheus text of every metric, the dropped-log-lines count included.
pub fn render(handle: &PrometheusHandle) -> String {
    metrics::counter!("wa_gateway_log_lines_dropped_total").absolute(log_writer::dropped_lines());
    handle.render()
}

/// Creates, at zero, the series alerts and dashboards compute rates and
/// ratios over, so they exist before the first event.
pub fn register_series() {
    for status in ["queued", "succeeded", "failed"] {
        metrics::counter!("wa_gateway_backfill_jobs_total", "status" => status).increment(0);
    }
    for kind in ["contacts", "groups", "group_members"] {
        metrics::counter!("wa_gateway_backfill_rows_total", "kind" => kind).increment(0);
    }
    for outcome in ["ok", "error"] {
        metrics::counter!("wa_gateway_jwks_fetches_total", "outcome" => outcome).increment(0);
    }
    for during in ["request", "backfill"] {
        metrics::counter!("wa_gateway_store_busy_total", "during" => during).increment(0);
    }
    metrics::counter!("wa_gateway_backfill_timeouts_total").increment(0);
    metrics::counter!("wa_gateway_store_full_total").increment(0);
    if traces::enabled() {
        for reason in ["queue_full", "export_failed"] {
            metrics::counter!("wa_gateway_trace_spans_dropped_total", "reason" => reason).increment(0);
        }
        metrics::counter!("wa_gateway_trace_spans_exported_total").increment(0);
    }
}

/// Every gRPC method this server serves; anything else is labelled `other`.
pub const GRPC_METHODS: &[&str] = &[
    "/wa.gateway.admin.v1.AdminService/ListSessions",
    "/wa.gateway.admin.v1.AdminService/GetSession",
    "/wa.gateway.admin.v1.AdminService/ListGateways",
    "/wa.gateway.admin.v1.AdminService/AcceptGatewaySnapshot",
    "/wa.gateway.admin.v1.AdminService/StartBackfill",
    "/wa.gateway.admin.v1.AdminService/GetBackfill",
    "/wa.gateway.admin.v1.AdminService/CancelBackfill",
    "/wa.gateway.admin.v1.AdminService/WatchBackfill",
    "/wa.gateway.admin.v1.AdminService/ListSessionContacts",
    "/wa.gateway.admin.v1.AdminService/ListSessionGroups",
    "/wa.gateway.admin.v1.AdminService/ListSessionGroupParticipants",
    "/wa.gateway.admin.v1.AdminService/ListSessionEvents",
    "/wa.gateway.admin.v1.AdminService/WatchSessionEvents",
    "/wa.gateway.admin.v1.AdminService/WhoAmI",
    "/grpc.health.v1.Health/Check",
    "/grpc.health.v1.Health/Watch",
    "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
    "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
];

fn grpc_method_label(path: &str) -> &'static str {
    GRPC_METHODS.iter().find(|m| **m == path).copied().unwrap_or("other")
}

fn http_method_label(method: &http::Method) -> &'static str {
    use http::Method;
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::PATCH => "PATCH",
        _ => "other",
    }
}

/// The handles of one request series. Every label comes from a closed set,
/// so each series is looked up in the registry once and its handles kept: a
/// request then costs a read lock and two atomic updates, nothing allocated.
struct Series {
    count: metrics::Counter,
    duration: metrics::Histogram,
}

impl Series {
    fn new(transport: &'static str, method: String, code: String) -> Self {
        Self {
            duration: metrics::histogram!("wa_gateway_request_duration_seconds", "transport" => transport, "method" => method.clone()),
            count: metrics::counter!("wa_gateway_requests_total", "transport" => transport, "method" => method, "code" => code),
        }
    }

    fn record(&self, started: Instant) {
        self.duration.record(started.elapsed().as_secs_f64());
        self.count.increment(1);
    }
}

/// Kept series by `K`, created on first use.
struct SeriesCache<K>(std::sync::RwLock<std::collections::HashMap<K, Series>>);

impl<K: std::hash::Hash + Eq> SeriesCache<K> {
    fn new() -> Self {
        Self(Default::default())
    }

    fn record(&self, key: K, started: Instant, create: impl FnOnce() -> Series) {
        if let Some(series) = self.0.read().ok().as_ref().and_then(|all| all.get(&key)) {
            return series.record(started);
        }
        let series = create();
        series.record(started);
        if let Ok(mut all) = self.0.write() {
            all.insert(key, series);
        }
    }
}

fn record_grpc(method: &'static str, code: &'static str, started: Instant) {
    static SERIES: std::sync::LazyLock<SeriesCache<(&'static str, &'static str)>> =
        std::sync::LazyLock::new(SeriesCache::new);
    SERIES.record((method, code), started, || Series::new("grpc", method.into(), code.into()));
}

/// A REST series: the route template (or `other`), then the HTTP method and
/// status; looked up by borrowed route, so a hit allocates nothing.
fn record_rest(method: &'static str, route: &str, status: http::StatusCode, started: Instant) {
    type ByRoute = std::collections::HashMap<(&'static str, u16), Series>;
    static ROUTES: std::sync::LazyLock<std::sync::RwLock<std::collections::HashMap<String, ByRoute>>> =
        std::sync::LazyLock::new(Default::default);
    let key = (method, status.as_u16());
    if let Some(series) = ROUTES.read().ok().as_ref().and_then(|all| all.get(route)?.get(&key)) {
        return series.record(started);
    }
    let series = Series::new("rest", format!("{method} {route}"), status.as_str().to_owned());
    series.record(started);
    if let Ok(mut all) = ROUTES.write() {
        all.entry(route.to_owned()).or_default().insert(key, series);
    }
}

/// Counts and times every gRPC call. The code is the `grpc-status` of the
/// response head (trailers-only answers: every error raised before or by a
/// unary handler); a response without one is a success whose status travels
/// in the trailers.
#[derive(Clone, Default)]
pub struct GrpcMetricsLayer;

impl<S> Layer<S> for GrpcMetricsLayer {
    type Service = GrpcMetrics<S>;
    fn layer(&self, inner: S) -> Self::Service {
        GrpcMetrics { inner }
    }
}

#[derive(Clone)]
pub struct GrpcMetrics<S> {
    inner: S,
}

fn grpc_code_name(code: &str) -> &'static str {
    match code.parse::<i32>().map(tonic::Code::from) {
        Ok(tonic::Code::Ok) => "OK",
        Ok(tonic::Code::InvalidArgument) => "INVALID_ARGUMENT",
        Ok(tonic::Code::Unauthenticated) => "UNAUTHENTICATED",
        Ok(tonic::Code::PermissionDenied) => "PERMISSION_DENIED",
        Ok(tonic::Code::NotFound) => "NOT_FOUND",
        Ok(tonic::Code::AlreadyExists) => "ALREADY_EXISTS",
        Ok(tonic::Code::Unimplemented) => "UNIMPLEMENTED",
        Ok(tonic::Code::Unavailable) => "UNAVAILABLE",
        Ok(tonic::Code::Internal) => "INTERNAL",
        _ => "OTHER",
    }
}

impl<S, B, R> Service<http::Request<B>> for GrpcMetrics<S>
where
    S: Service<http::Request<B>, Response = http::Response<R>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = gateway_rest::finish::Finishing<S::Future, GrpcObservation>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let observation = GrpcObservation { method: grpc_method_label(request.uri().path()), started: Instant::now() };
        gateway_rest::finish::Finishing::new(self.inner.call(request), observation)
    }
}

/// What a gRPC call's metrics need from the request.
pub struct GrpcObservation {
    method: &'static str,
    started: Instant,
}

impl<R> gateway_rest::finish::Finish<http::Response<R>> for GrpcObservation {
    fn finish(self, response: http::Response<R>) -> http::Response<R> {
        let code = response
            .headers()
            .get(crate::headers::GRPC_STATUS)
            .and_then(|v| v.to_str().ok())
            .map(grpc_code_name)
            .unwrap_or("OK");
        record_grpc(self.method, code, self.started);
        response
    }
}

/// REST requests: counted by HTTP method, route template and status, and
/// traced (a `rest.request` span continuing the caller's `traceparent`) when
/// spans are exported. Applied to each route, where the matched path is known.
#[derive(Clone, Copy, Default)]
pub struct ObserveRestLayer;

impl<S> Layer<S> for ObserveRestLayer {
    type Service = ObserveRest<S>;
    fn layer(&self, inner: S) -> ObserveRest<S> {
        ObserveRest { inner }
    }
}

/// Outermost around every REST route, so it sees the answer the client gets.
impl gateway_rest::OuterLayer for ObserveRestLayer {
    type Service<S: gateway_rest::RestService> = ObserveRest<S>;
    fn wrap<S: gateway_rest::RestService>(&self, inner: S) -> ObserveRest<S> {
        ObserveRest { inner }
    }
}

#[derive(Clone)]
pub struct ObserveRest<S> {
    inner: S,
}

type RestResponse = axum::response::Response;

impl<S> Service<axum::extract::Request> for ObserveRest<S>
where
    S: Service<axum::extract::Request, Response = RestResponse>,
{
    type Response = RestResponse;
    type Error = S::Error;
    type Future = gateway_rest::finish::Finishing<tracing::instrument::Instrumented<S::Future>, RestObservation>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: axum::extract::Request) -> Self::Future {
        use tracing::Instrument;
        let matched = request.extensions().get::<axum::extract::MatchedPath>().cloned();
        let unmatched = if matched.is_some() { "other" } else { gateway_rest::unmatched_route(request.uri().path()) };
        let route = matched.as_ref().map_or(unmatched, |p| p.as_str());
        let method = http_method_label(request.method());
        let started = Instant::now();
        let span = tracing::debug_span!(
            "rest.request",
            otel.name = %format_args!("{method} {route}"),
            otel.kind = "server",
            otel.status_code = tracing::field::Empty,
            http.request.method = method,
            http.route = route,
            http.response.status_code = tracing::field::Empty,
        );
        if !span.is_disabled() {
            traces::continue_from(&span, request.headers());
        }
        let future = self.inner.call(request).instrument(span.clone());
        gateway_rest::finish::Finishing::new(future, RestObservation { method, matched, unmatched, started, span })
    }
}

/// What a REST request's metrics and span need from the request.
pub struct RestObservation {
    method: &'static str,
    matched: Option<axum::extract::MatchedPath>,
    /// The label when the router matched no route.
    unmatched: &'static str,
    started: Instant,
    span: tracing::Span,
}

impl gateway_rest::finish::Finish<RestResponse> for RestObservation {
    fn finish(self, response: RestResponse) -> RestResponse {
        let Self { method, matched, unmatched, started, span } = self;
        // A session resource names its documented route; others, the router's.
        let template = response.extensions().get::<gateway_rest::RouteTemplate>().map(|t| t.0);
        let route = template.unwrap_or(matched.as_ref().map_or(unmatched, |p| p.as_str()));
        if !span.is_disabled() {
            if let Some(route) = template {
                traces::rename(&span, format!("{method} {route}"));
                span.record("http.route", route);
            }
            span.record("http.response.status_code", response.status().as_u16());
            if response.status().is_server_error() {
                span.record("otel.status_code", "error");
            }
        }
        record_rest(method, route, response.status(), started);
        response
    }
}

#[cfg(test)]
mod tests {
    use prost::Message;

    #[test]
    fn every_admin_rpc_has_its_own_label() {
        let set = prost_types::FileDescriptorSet::decode(crate::proto::FILE_DESCRIPTOR_SET).unwrap();
        for service in set.file.iter().flat_map(|f| &f.service).filter(|s| s.name() == "AdminService") {
            for method in &service.method {
                let path = format!("/wa.gateway.admin.v1.AdminService/{}", method.name());
                assert_eq!(super::grpc_method_label(&path), path, "add {path} to GRPC_METHODS");
            }
        }
        assert_eq!(super::grpc_method_label("/made.up/Path"), "other");
        assert_eq!(super::http_method_label(&http::Method::from_bytes(b"BREW").unwrap()), "other");
    }
}
