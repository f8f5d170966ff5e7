//! The observe server: `/metrics`, `/health/live`, `/health/ready`.
//!
//! Built on `hyper` 1 (HTTP/1 server only) and `hyper-util`'s tokio glue:
//! the HTTP implementation most of the Rust ecosystem runs on, well kept,
//! and without a router or middleware stack that three fixed paths do not
//! need (axum would bring tower and its layers for nothing here). It runs as
//! tasks on the process's one tokio runtime; a scrape encodes the registry
//! (microseconds) and never touches the pipeline.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, Result};
use cdc_engine::Telemetry;
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;

/// What Prometheus is told it gets (the encoder writes OpenMetrics text).
const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// A client that sends no request within this is dropped.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// Bind `listen` and serve until the process ends; returns the bound
/// address (a port 0 picks a free one).
pub async fn start(listen: &str, telemetry: Telemetry) -> Result<SocketAddr> {
    let listener = TcpListener::bind(listen)
        .await
        .with_context(|| format!("observe.listen: cannot listen on {listen}"))?;
    let addr = listener
        .local_addr()
        .context("observe.listen: bound address")?;
    tracing::info!(%addr, "observe server listening on {addr}: /metrics, /health/live, /health/ready");
    tokio::spawn(accept(listener, telemetry));
    Ok(addr)
}

async fn accept(listener: TcpListener, telemetry: Telemetry) {
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(err) => {
                // Out of file descriptors, mostly: wait, do not spin.
                tracing::warn!("observe server: accept failed: {err}");
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        };
        let telemetry = telemetry.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request| {
                let response = respond(&request, &telemetry);
                async move { Ok::<_, Infallible>(response) }
            });
            let served = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .serve_connection(TokioIo::new(stream), service)
                .await;
            if let Err(err) = served {
                tracing::debug!("observe server: connection ended: {err}");
            }
        });
    }
}

fn respond(request: &Request<Incoming>, telemetry: &Telemetry) -> Response<Full<Bytes>> {
    if request.method() != Method::GET && request.method() != Method::HEAD {
        return text(StatusCode::METHOD_NOT_ALLOWED, "GET only\n".into());
    }
    match request.uri().path() {
        "/metrics" => match telemetry.encode() {
            Ok(body) => {
                let mut response = Response::new(Full::new(Bytes::from(body)));
                response
                    .headers_mut()
                    .insert(CONTENT_TYPE, HeaderValue::from_static(OPENMETRICS));
                response
            }
            Err(err) => text(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("encoding the metrics failed: {err}\n"),
            ),
        },
        "/health/live" => text(StatusCode::OK, "live\n".into()),
        "/health/ready" => match telemetry.ready() {
            Ok(()) => text(StatusCode::OK, "ready\n".into()),
            // The reason may quote an error that names the server.
            Err(reason) => text(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("{}\n", crate::redact::redact(&reason)),
            ),
        },
        _ => text(
            StatusCode::NOT_FOUND,
            "not found: /metrics, /health/live, /health/ready\n".into(),
        ),
    }
}

fn text(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}
