//! HTTP on the WebSocket's port: `/healthz`, `/metrics`, the WebSocket
//! upgrade at `/v1/ws`, media upload/download, and the push API.

use crate::auth::Authenticator;
use crate::clock::now_ms;
use crate::ops::messages::{Sender, store_and_deliver};
use crate::session;
use crate::state::AppState;
use crate::store::MediaMeta;
use axum::Router;
use axum::body::Body;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
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
        .with_state(st)
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
async fn healthz(State(st): State<Arc<AppState>>, Query(q): Query<HashMap<String, String>>) -> Response {
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
    if ok && !q.contains_key("detail") {
        return json_ok(StatusCode::OK, &serde_json::json!({"ok": true}));
    }
    let body = serde_json::json!({"ok": ok, "node": bus.node_id(), "failing": failing, "engines": engines});
    json_ok(if ok { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE }, &body)
}

async fn metrics(State(st): State<Arc<AppState>>) -> Response {
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
    ws.protocols([SUBPROTOCOL])
        .read_buffer_size(c.ws_read_buffer)
        .write_buffer_size(c.ws_write_buffer)
        .max_write_buffer_size(c.ws_write_buffer + MAX_REPLY_BYTES)
        .max_message_size(max)
        .max_frame_size(max)
        // The session gets a task of its own: axum's upgrade task would
        // keep its own state (about 130 bytes) beside every session's.
        .on_upgrade(move |socket| {
            tokio::spawn(session::run(socket, st2));
            std::future::ready(())
        })
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers.get(header::AUTHORIZATION)?.to_str().ok()?.strip_prefix("Bearer ").map(str::trim)
}

async fn upload(State(st): State<Arc<AppState>>, headers: HeaderMap, body: Body) -> Response {
    let user = match bearer(&headers).map(|t| st.auth.verify(t)) {
        Some(Ok(id)) => id.user,
        _ => {
            return json_err(
                StatusCode::UNAUTHORIZED,
                ErrorCode::Unauthenticated,
                "a valid bearer token is required",
            );
        }
    };
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
    if let Err(e) = st.store.put_media(&meta, bytes.to_vec()).await {
        tracing::error!(error = %e, "media upload failed");
        return json_err(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::Internal,
            "storage is unavailable; retry shortly",
        );
    }
    json_ok(
        StatusCode::CREATED,
        &serde_json::json!({"media": meta.id, "mime": meta.mime, "size": meta.size, "sha256": meta.sha256}),
    )
}

async fn download(
    State(st): State<Arc<AppState>>,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let token = bearer(&headers).or(q.get("token").map(String::as_str));
    if !matches!(token.map(|t| st.auth.verify(t)), Some(Ok(_))) {
        return json_err(StatusCode::UNAUTHORIZED, ErrorCode::Unauthenticated, "a valid token is required");
    }
    match st.store.media(&id).await {
        Ok(Some((meta, bytes))) => {
            let mut resp = Response::new(Body::from(bytes));
            let h = resp.headers_mut();
            h.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_str(&meta.mime)
                    .unwrap_or(HeaderValue::from_static("application/octet-stream")),
            );
            h.insert(header::CACHE_CONTROL, HeaderValue::from_static("private, max-age=31536000, immutable"));
            h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
            if let Ok(v) = HeaderValue::from_str(&format!("\"{}\"", meta.sha256)) {
                h.insert(header::ETAG, v);
            }
            resp
        }
        Ok(None) => json_err(StatusCode::NOT_FOUND, ErrorCode::NotFound, "no such media"),
        Err(e) => {
            tracing::error!(error = %e, "media read failed");
            json_err(
                StatusCode::SERVICE_UNAVAILABLE,
                ErrorCode::Internal,
                "storage is unavailable; retry shortly",
            )
        }
    }
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
            let status = match err.code {
                ErrorCode::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
                ErrorCode::Internal => StatusCode::SERVICE_UNAVAILABLE,
                ErrorCode::NotFound => StatusCode::NOT_FOUND,
                _ => StatusCode::BAD_REQUEST,
            };
            (status, [(header::CONTENT_TYPE, "application/json")], Reply::err_json(None, &err))
                .into_response()
        }
    }
}
