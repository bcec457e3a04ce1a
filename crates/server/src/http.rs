//! HTTP on the WebSocket's port: `/healthz`, `/metrics`, the WebSocket
//! upgrade at `/v1/ws`, media upload/download, and the push API.
//!
//! Every route but a plain `/healthz` sits behind [`edge_checks`]: a
//! request whose `Origin` is not in `allowed_origins` gets 403 (web pages
//! may not drive the API; native clients send no `Origin`), and on a
//! loopback listener so does one whose `Host` is not a loopback name or
//! address (DNS rebinding: a page whose name resolves to 127.0.0.1 is
//! otherwise "same origin" with the server). `/metrics` and
//! `/healthz?detail` need the admin secret, or the separate
//! `metrics_listen` address ([`metrics_router`]).

use crate::auth::Authenticator;
use crate::clock::now_ms;
use crate::listener::ConnInfo;
use crate::ops::messages::{Sender, store_and_deliver};
use crate::ratelimit::Verdict;
use crate::session;
use crate::state::AppState;
use crate::store::{MediaMeta, UploadQuota};
use axum::Router;
use axum::body::Body;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{Extension, Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Version, header};
use axum::middleware::{Next, from_fn_with_state};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use courier_proto::ids::is_valid_user;
use courier_proto::{ErrBody, ErrorCode, Reply, SUBPROTOCOL, SendReq};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::Arc;

/// The server's routes.
pub fn router(st: Arc<AppState>) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .route(courier_proto::WS_PATH, get(ws_upgrade))
        .route("/v1/media", post(upload))
        .route("/v1/media/{id}", get(download))
        .route("/v1/push", post(push))
        .route("/v1/local/proof", get(local_proof))
        .layer(from_fn_with_state(st.clone(), edge_checks))
        .with_state(st)
}

#[derive(Deserialize)]
struct ProofQuery {
    nonce: String,
}

/// `GET /v1/local/proof?nonce=…`: with `local_proof` on (an embedded
/// server), proves this server holds the auth secret
/// ([`crate::auth::local_proof`]); 404 otherwise.
async fn local_proof(State(st): State<Arc<AppState>>, Query(q): Query<ProofQuery>) -> Response {
    let secret = st.config.auth_secret.as_deref().filter(|_| st.config.local_proof);
    let Some(secret) = secret else {
        return json_err(StatusCode::NOT_FOUND, ErrorCode::NotFound, "no such endpoint");
    };
    match crate::auth::local_proof(secret, &q.nonce) {
        Some(proof) => (StatusCode::OK, [(header::CONTENT_TYPE, "text/plain")], proof).into_response(),
        None => json_err(StatusCode::BAD_REQUEST, ErrorCode::BadRequest, "nonce: 32-128 letters and digits"),
    }
}

/// The routes of the `metrics_listen` address: `/metrics` and
/// `/healthz` (with `?detail`) without the admin secret.
pub fn metrics_router(st: Arc<AppState>) -> Router {
    Router::new()
        .route("/healthz", get(healthz_open))
        .route("/metrics", get(metrics_open))
        .layer(from_fn_with_state(st.clone(), edge_checks))
        .with_state(st)
}

/// The `Host` and `Origin` checks (module docs). A plain `/healthz` is
/// exempt: load balancers probe it by any name, and it tells nothing.
async fn edge_checks(State(st): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    // Every media response is inert (§9), also one refused here or by the
    // router (a wrong method).
    if req.uri().path().starts_with("/v1/media") {
        return media_response(edge_checked(&st, req, next).await);
    }
    edge_checked(&st, req, next).await
}

async fn edge_checked(st: &AppState, req: Request, next: Next) -> Response {
    if req.uri().path() == "/healthz" && req.uri().query().is_none() {
        return next.run(req).await;
    }
    let loopback = req.extensions().get::<ConnInfo>().is_some_and(|c| c.local.ip().is_loopback());
    if loopback && let Err(why) = loopback_host(&req) {
        return json_err(StatusCode::FORBIDDEN, ErrorCode::Forbidden, why);
    }
    if let Some(origin) = req.headers().get(header::ORIGIN) {
        let origin = origin.to_str().unwrap_or("");
        if !st.config.origin_allowed(origin) {
            return json_err(
                StatusCode::FORBIDDEN,
                ErrorCode::Forbidden,
                format!(
                    "origin {origin:?} is not allowed; the server's operator can list it with --allowed-origin"
                ),
            );
        }
    }
    next.run(req).await
}

/// On a loopback listener: the request must name the server by a loopback
/// name or address (`Host`, and the authority of an absolute URI).
fn loopback_host(req: &Request) -> Result<(), &'static str> {
    let host = req.headers().get(header::HOST).map(|h| h.to_str().unwrap_or(""));
    match host {
        Some(h) if !is_loopback_host(h) => return Err("this server only answers to a loopback Host"),
        None if req.version() >= Version::HTTP_11 => return Err("a Host header is required"),
        _ => {}
    }
    match req.uri().authority() {
        Some(a) if !is_loopback_host(a.as_str()) => Err("this server only answers to a loopback Host"),
        _ => Ok(()),
    }
}

/// `localhost`, `127.x.x.x` or `[::1]`, each with an optional port.
pub fn is_loopback_host(host: &str) -> bool {
    let (name, port) = if let Some(rest) = host.strip_prefix('[') {
        match rest.split_once(']') {
            Some((ip, port)) => (&host[..ip.len() + 2], port),
            None => return false,
        }
    } else {
        match host.rsplit_once(':') {
            Some((name, _)) => (name, &host[name.len()..]),
            None => (host, ""),
        }
    };
    let port_ok = match port.strip_prefix(':') {
        Some(p) => !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()),
        None => port.is_empty(),
    };
    let name_ok = name.eq_ignore_ascii_case("localhost")
        || name == "[::1]"
        || name.parse::<std::net::Ipv4Addr>().is_ok_and(|ip| ip.is_loopback());
    port_ok && name_ok
}

fn json_err(status: StatusCode, code: ErrorCode, message: impl Into<String>) -> Response {
    let body = Reply::err_json(None, &ErrBody::new(code, message));
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

fn json_ok(status: StatusCode, value: &impl serde::Serialize) -> Response {
    let body = serde_json::to_string(value).expect("serializes");
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// Longest `/healthz` waits for an engine before calling it unreachable.
const HEALTH_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(1);

/// `{"ok":true}`. A cluster node first checks both engines and, when one
/// fails, answers 503 naming it, so a load balancer drains the node:
/// `{"ok":false,"node":"…","failing":["redis"],"engines":{…}}`.
/// `?detail=1` shows the engines' figures when healthy too.
async fn healthz(
    State(st): State<Arc<AppState>>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    if q.contains_key("detail") && !admin(&st, &headers) {
        return admin_required();
    }
    health(&st, &q).await
}

async fn healthz_open(State(st): State<Arc<AppState>>, Query(q): Query<HashMap<String, String>>) -> Response {
    health(&st, &q).await
}

/// Whether the request carries the admin secret.
fn admin(st: &AppState, headers: &HeaderMap) -> bool {
    Authenticator::admin_ok(st.config.admin_secret.as_deref(), bearer(headers))
}

fn admin_required() -> Response {
    json_err(
        StatusCode::UNAUTHORIZED,
        ErrorCode::Unauthenticated,
        "the admin secret is required (Authorization: Bearer <admin secret>); \
         or serve metrics on a private address with --metrics-listen",
    )
}

async fn health(st: &AppState, q: &HashMap<String, String>) -> Response {
    let Some(bus) = &st.bus else {
        return json_ok(StatusCode::OK, &serde_json::json!({"ok": true}));
    };
    let started = std::time::Instant::now();
    let pg = match tokio::time::timeout(HEALTH_TIMEOUT, st.store.ping()).await {
        Ok(Ok(())) => {
            let took = started.elapsed();
            st.metrics.engine_latency.with_label_values(&["postgres"]).observe(took.as_secs_f64());
            Ok(took)
        }
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("no answer within {HEALTH_TIMEOUT:?}")),
    };
    let redis = match tokio::time::timeout(HEALTH_TIMEOUT, bus.ping()).await {
        Ok(Ok(took)) => Ok(took),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("no answer within {HEALTH_TIMEOUT:?}")),
    };
    let mut failing = Vec::new();
    let mut engines = serde_json::Map::new();
    for (name, r) in [("postgres", pg), ("redis", redis)] {
        st.metrics.engine_up.with_label_values(&[name]).set(i64::from(r.is_ok()));
        let v = match r {
            Ok(took) => serde_json::json!({"ok": true, "latency_ms": took.as_secs_f64() * 1000.0}),
            Err(e) => {
                tracing::warn!(engine = name, error = %e, "health check failed");
                failing.push(name);
                serde_json::json!({"ok": false, "error": e})
            }
        };
        engines.insert(name.into(), v);
    }
    let ok = failing.is_empty();
    if !q.contains_key("detail") {
        // The public answer names the failing engine, not its error text
        // (which may show internal addresses).
        return match ok {
            true => json_ok(StatusCode::OK, &serde_json::json!({"ok": true})),
            false => json_ok(
                StatusCode::SERVICE_UNAVAILABLE,
                &serde_json::json!({"ok": false, "node": bus.node_id(), "failing": failing}),
            ),
        };
    }
    let body = serde_json::json!({"ok": ok, "node": bus.node_id(), "failing": failing, "engines": engines});
    json_ok(if ok { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE }, &body)
}

async fn metrics(State(st): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    if !admin(&st, &headers) {
        return admin_required();
    }
    metrics_open(State(st)).await
}

async fn metrics_open(State(st): State<Arc<AppState>>) -> Response {
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], st.metrics.render()).into_response()
}

fn offers_subprotocol(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|p| p.trim() == SUBPROTOCOL)
}

/// The largest frame a session writes. `max_frame_bytes` limits what
/// clients send; a reply can be far larger (a `history` page of 200 bodies
/// near `max_body_bytes`, or with many reactions), and tungstenite fails a
/// write bigger than its write buffer's cap, ending the session. 16 MiB is
/// what the client core accepts. Memory is still bounded per session: the
/// buffer only holds what one write batch produces.
const MAX_REPLY_BYTES: usize = 16 << 20;

async fn ws_upgrade(
    State(st): State<Arc<AppState>>,
    conn: Option<Extension<ConnInfo>>,
    headers: HeaderMap,
    ws: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> Response {
    if !offers_subprotocol(&headers) {
        return json_err(StatusCode::BAD_REQUEST, ErrorCode::BadRequest, "offer the courier.v1 subprotocol");
    }
    let ws = match ws {
        Ok(ws) => ws,
        Err(rejection) => return rejection.into_response(),
    };
    let c = &st.config;
    let max = c.limits.max_frame_bytes;
    let st2 = st.clone();
    let conn = conn.map(|Extension(c)| (c.pre_hello, c.wire));
    ws.protocols([SUBPROTOCOL])
        .read_buffer_size(c.ws_read_buffer)
        .write_buffer_size(c.ws_write_buffer)
        .max_write_buffer_size(c.ws_write_buffer + MAX_REPLY_BYTES)
        .max_message_size(max)
        .max_frame_size(max)
        // The session gets a task of its own: axum's upgrade task would
        // keep its own state (about 130 bytes) beside every session's.
        .on_upgrade(move |socket| {
            tokio::spawn(session::run(socket, st2, conn));
            std::future::ready(())
        })
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers.get(header::AUTHORIZATION)?.to_str().ok()?.strip_prefix("Bearer ").map(str::trim)
}

/// The headers every media response carries (protocol §9 v1.2): no type
/// sniffing, and no script, style or plugin may run even if a browser
/// renders the bytes as a page of this origin.
fn media_response(mut resp: Response) -> Response {
    let h = resp.headers_mut();
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static("default-src 'none'; sandbox"));
    resp
}

/// Raster image types, the only ones served inline.
const INLINE_TYPES: [&str; 4] = ["image/png", "image/jpeg", "image/gif", "image/webp"];

/// Whether a stored content type is served inline (a raster image).
pub fn is_inline_type(mime: &str) -> bool {
    let essence = mime.split(';').next().unwrap_or("").trim();
    INLINE_TYPES.iter().any(|t| t.eq_ignore_ascii_case(essence))
}

/// The start of the current UTC day, in ms since the epoch.
fn utc_day_start(now: i64) -> i64 {
    now - now.rem_euclid(86_400_000)
}

async fn upload(
    State(st): State<Arc<AppState>>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    if let Some(refused) = token_in_url(&q) {
        return refused;
    }
    upload_inner(&st, &headers, body).await
}

/// The answer to a request carrying a token in its URL (§9: URLs end up in
/// logs and histories, so only the header authenticates), if it does.
fn token_in_url(q: &HashMap<String, String>) -> Option<Response> {
    q.contains_key("token").then(|| {
        json_err(
            StatusCode::UNAUTHORIZED,
            ErrorCode::Unauthenticated,
            "tokens in URLs are not accepted; send Authorization: Bearer <token>",
        )
    })
}

async fn upload_inner(st: &AppState, headers: &HeaderMap, body: Body) -> Response {
    let user = match bearer(headers).map(|t| st.auth.verify(t)) {
        Some(Ok(id)) => id.user,
        _ => {
            return json_err(
                StatusCode::UNAUTHORIZED,
                ErrorCode::Unauthenticated,
                "a valid bearer token is required",
            );
        }
    };
    // Metered by the user's bucket, before anything else (protocol §8).
    if let Verdict::Limited(wait) = st.meter(&user).await {
        let ms = wait.as_millis().max(1) as u64;
        let mut err = ErrBody::new(ErrorCode::RateLimited, "too many requests; slow down");
        err.retry_after_ms = Some(ms);
        st.metrics.error(ErrorCode::RateLimited);
        let secs = ms.div_ceil(1000).to_string();
        return (
            StatusCode::TOO_MANY_REQUESTS,
            [(header::CONTENT_TYPE, "application/json".to_owned()), (header::RETRY_AFTER, secs)],
            Reply::err_json(None, &err),
        )
            .into_response();
    }
    let max = st.config.max_media_bytes;
    let too_large = || {
        json_err(
            StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::TooLarge,
            format!("uploads are limited to {max} bytes"),
        )
    };
    let declared =
        headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > max as u64) {
        return too_large();
    }
    let quota = st.config.limits.upload_bytes_day.unwrap_or(courier_proto::event::DEFAULT_UPLOAD_BYTES_DAY);
    // A first check before reading the body (when its size is declared).
    let day = utc_day_start(now_ms());
    let used = match st.store.media_bytes_since(&user, day).await {
        Ok(n) => n,
        Err(e) => {
            tracing::error!(error = %e, "reading the upload quota failed");
            return unavailable();
        }
    };
    let over_quota = |used: u64, size: u64| {
        st.metrics.error(ErrorCode::LimitReached);
        let err = ErrBody::limit(
            "upload_bytes_day",
            format!(
                "uploads are limited to {quota} bytes per user per UTC day; {used} used today, \
                 this one is {size}"
            ),
        );
        (
            StatusCode::TOO_MANY_REQUESTS,
            [(header::CONTENT_TYPE, "application/json")],
            Reply::err_json(None, &err),
        )
            .into_response()
    };
    if let Some(n) = declared
        && used.saturating_add(n) > quota
    {
        return over_quota(used, n);
    }
    let mime = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .filter(|m| !m.is_empty() && m.len() <= 128 && m.bytes().all(|b| (0x20..0x7f).contains(&b)))
        .unwrap_or("application/octet-stream")
        .to_owned();
    let bytes = match axum::body::to_bytes(body, max).await {
        Ok(b) => b,
        Err(_) => return too_large(),
    };
    if bytes.is_empty() {
        return json_err(StatusCode::BAD_REQUEST, ErrorCode::BadRequest, "empty upload");
    }
    let meta = MediaMeta {
        id: format!("m_{}", ulid::Ulid::new()),
        owner: user,
        mime,
        size: bytes.len() as u64,
        sha256: hex::encode(Sha256::digest(&bytes)),
        created: now_ms(),
    };
    // Checked again where it is stored, atomically: concurrent uploads
    // cannot pass the quota together.
    match st.store.put_media_within(&meta, bytes.to_vec(), UploadQuota { since: day, bytes: quota }).await {
        Ok(None) => {}
        Ok(Some(used)) => return over_quota(used, meta.size),
        Err(e) => {
            tracing::error!(error = %e, "media upload failed");
            return unavailable();
        }
    }
    json_ok(
        StatusCode::CREATED,
        &serde_json::json!({"media": meta.id, "mime": meta.mime, "size": meta.size, "sha256": meta.sha256}),
    )
}

fn unavailable() -> Response {
    json_err(StatusCode::SERVICE_UNAVAILABLE, ErrorCode::Internal, "storage is unavailable; retry shortly")
}

async fn download(
    State(st): State<Arc<AppState>>,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    download_inner(st, id, &q, &headers).await
}

async fn download_inner(
    st: Arc<AppState>,
    id: String,
    q: &HashMap<String, String>,
    headers: &HeaderMap,
) -> Response {
    if let Some(refused) = token_in_url(q) {
        return refused;
    }
    if !matches!(bearer(headers).map(|t| st.auth.verify(t)), Some(Ok(_))) {
        return json_err(StatusCode::UNAUTHORIZED, ErrorCode::Unauthenticated, "a valid token is required");
    }
    let meta = match st.store.media_meta(&id).await {
        Ok(Some(meta)) => meta,
        Ok(None) => return json_err(StatusCode::NOT_FOUND, ErrorCode::NotFound, "no such media"),
        Err(e) => {
            tracing::error!(error = %e, "media read failed");
            return unavailable();
        }
    };
    let size = meta.size;
    // Streamed a chunk at a time from storage; a failure half way (or the
    // object recalled meanwhile) cuts the response short.
    let chunks = futures_util::stream::unfold((st, id, 0u64), move |(st, id, offset)| async move {
        if offset >= size {
            return None;
        }
        let item = match st.store.media_chunk(&id, offset, crate::store::MEDIA_CHUNK).await {
            Ok(Some(chunk)) if !chunk.is_empty() => chunk,
            Ok(_) => {
                return Some((Err(std::io::Error::other("media changed while streaming")), (st, id, size)));
            }
            Err(e) => {
                tracing::error!(error = %e, "media read failed while streaming");
                return Some((Err(std::io::Error::other(e.to_string())), (st, id, size)));
            }
        };
        let next = offset + item.len() as u64;
        Some((Ok(bytes::Bytes::from(item)), (st, id, next)))
    });
    let mut resp = Response::new(Body::from_stream(chunks));
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_str(&meta.mime).unwrap_or(HeaderValue::from_static("application/octet-stream")),
    );
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(size));
    if !is_inline_type(&meta.mime) {
        let name: String = meta
            .id
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-')
            .take(64)
            .collect();
        let name = if name.is_empty() { "media".to_owned() } else { name };
        if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{name}\"")) {
            h.insert(header::CONTENT_DISPOSITION, v);
        }
    }
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("private, max-age=31536000, immutable"));
    if let Ok(v) = HeaderValue::from_str(&format!("\"{}\"", meta.sha256)) {
        h.insert(header::ETAG, v);
    }
    resp
}

#[derive(Deserialize)]
struct PushReq {
    from: String,
    #[serde(flatten)]
    send: SendReq,
}

async fn push(State(st): State<Arc<AppState>>, headers: HeaderMap, body: Body) -> Response {
    if !Authenticator::admin_ok(st.config.admin_secret.as_deref(), bearer(&headers)) {
        return json_err(
            StatusCode::UNAUTHORIZED,
            ErrorCode::Unauthenticated,
            "the admin secret is required",
        );
    }
    let limit = st.config.limits.max_frame_bytes.max(st.config.limits.max_body_bytes * 2);
    let Ok(bytes) = axum::body::to_bytes(body, limit).await else {
        return json_err(StatusCode::PAYLOAD_TOO_LARGE, ErrorCode::TooLarge, "request too large");
    };
    let req: PushReq = match serde_json::from_slice(&bytes) {
        Ok(r) => r,
        Err(e) => {
            return json_err(
                StatusCode::BAD_REQUEST,
                ErrorCode::BadRequest,
                format!("invalid push request: {e}"),
            );
        }
    };
    if !is_valid_user(&req.from) {
        return json_err(StatusCode::BAD_REQUEST, ErrorCode::BadRequest, "`from` must be a valid user id");
    }
    if let Err(why) = req.send.validate() {
        return json_err(StatusCode::BAD_REQUEST, ErrorCode::BadRequest, why);
    }
    match store_and_deliver(&st, Sender::Push(&req.from), req.send).await {
        Ok(ok) => json_ok(StatusCode::OK, &ok),
        Err(crate::ops::OpError(err)) => {
            st.metrics.error(err.code);
            // §10: a refused request is 400 (413 when oversized), whatever
            // the code in its `err` body (`not_found` for an unknown
            // `reply_to`, `forbidden`, `conflict`…).
            let status = match err.code {
                ErrorCode::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
                ErrorCode::Internal => StatusCode::SERVICE_UNAVAILABLE,
                _ => StatusCode::BAD_REQUEST,
            };
            (status, [(header::CONTENT_TYPE, "application/json")], Reply::err_json(None, &err))
                .into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_hosts() {
        for ok in [
            "localhost",
            "LOCALHOST:7700",
            "127.0.0.1",
            "127.0.0.1:7700",
            "127.8.9.10:1",
            "[::1]",
            "[::1]:7700",
        ] {
            assert!(is_loopback_host(ok), "{ok}");
        }
        for bad in [
            "evil.com",
            "evil.com:7700",
            "localhost.evil.com",
            "127.0.0.1.evil.com",
            "10.0.0.1",
            "[::2]:7700",
            "localhost:",
            "localhost:x",
            "",
            "[::1",
            "127.0.0.1:7700:1",
            "0.0.0.0:7700",
            "[::ffff:127.0.0.1]",
        ] {
            assert!(!is_loopback_host(bad), "{bad}");
        }
    }

    #[test]
    fn only_raster_images_are_inline() {
        for t in ["image/png", "image/JPEG", "image/gif; x=1", "image/webp"] {
            assert!(is_inline_type(t), "{t}");
        }
        for t in
            ["image/svg+xml", "text/html", "application/octet-stream", "image/png+evil", "", "text/plain"]
        {
            assert!(!is_inline_type(t), "{t}");
        }
    }

    #[test]
    fn utc_days_start_at_midnight() {
        assert_eq!(utc_day_start(86_400_000 * 3 + 5), 86_400_000 * 3);
        assert_eq!(utc_day_start(86_400_000 * 3), 86_400_000 * 3);
    }
}
