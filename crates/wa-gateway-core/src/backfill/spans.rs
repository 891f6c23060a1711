//! A backfill's spans: the run's, parented on the call that queued it
//! through a [`TraceHandoff`], and one per host stream. The exporter that
//! reads them lives with the binary (`telemetry/traces.rs`).

/// Carries a trace from the call that queued a job to the task that runs
/// it, on this replica.
pub trait TraceHandoff: Send + Sync + 'static {
    /// Keeps the current span's trace for job `job`.
    fn leave(&self, job: &str);
    /// Parents `run` on the trace left for `job`, if any.
    fn resume(&self, job: &str, run: &tracing::Span);
}

/// No tracing: nothing is kept and nothing is parented.
pub struct NoHandoff;

impl TraceHandoff for NoHandoff {
    fn leave(&self, _job: &str) {}
    fn resume(&self, _job: &str, _run: &tracing::Span) {}
}

/// The span of one stream from a session host (`method` as in the proto).
pub fn host_stream_span(method: &'static str, gateway: &str, attempt: u32) -> tracing::Span {
    tracing::debug_span!(
        "host.stream",
        otel.name = %format_args!("wa.gateway.host.v1.SessionHostService/{method}"),
        otel.kind = "client",
        otel.status_code = tracing::field::Empty,
        rpc.system = "grpc",
        rpc.service = "wa.gateway.host.v1.SessionHostService",
        rpc.method = method,
        gateway,
        attempt,
        error.message = tracing::field::Empty,
    )
}

/// Marks `span` failed with `error` (which must hold no secret).
pub fn record_error(span: &tracing::Span, error: &dyn std::fmt::Display) {
    if !span.is_disabled() {
        span.record("otel.status_code", "error");
        span.record("error.message", tracing::field::display(error));
    }
}
