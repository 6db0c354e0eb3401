//! A shared token, when one is configured. On the HTTP port the REST API
//! and `/metrics` want `Authorization: Bearer <token>`, the web UI a login
//! page that sets a session cookie; `/healthz` and `/readyz` stay open for
//! probes. The cookie is not the token: it is the time it was issued and
//! an HMAC of that time keyed by the token, good for [`SESSION`], so a
//! stolen cookie neither reveals the token nor works on the gRPC port.
//! Failed logins are throttled.
//! On the gRPC port every call wants the header: executors and clients
//! send it through their gateway (`stockyard-gateway`), since Ballista's
//! own clients cannot.

use std::sync::Arc;

use axum::extract::{Form, Query, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Redirect, Response};
use serde::Deserialize;

use crate::api::Api;

/// Cookie the login page sets.
const COOKIE: &str = "stockyard_session";

/// How long a session cookie is good for.
const SESSION: std::time::Duration = std::time::Duration::from_secs(12 * 3600);

/// Failed logins allowed per [`THROTTLE_WINDOW`], from anyone: then the
/// login page answers 429 until the window ends.
const MAX_FAILED_LOGINS: u32 = 10;
const THROTTLE_WINDOW: std::time::Duration = std::time::Duration::from_secs(60);

/// Failed logins in the current window, and when it started.
static FAILED_LOGINS: std::sync::Mutex<Option<(std::time::Instant, u32)>> = std::sync::Mutex::new(None);

/// Whether logins are refused for now; counts a failure when `failed`.
fn throttled(failed: bool) -> bool {
    let mut state = FAILED_LOGINS.lock().expect("login throttle lock");
    let now = std::time::Instant::now();
    let (start, count) = state.get_or_insert((now, 0));
    if now.duration_since(*start) > THROTTLE_WINDOW {
        (*start, *count) = (now, 0);
    }
    if failed {
        *count += 1;
    }
    *count >= MAX_FAILED_LOGINS
}

fn now_secs() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// The session cookie's value for a session issued at `issued`.
fn session_value(token: &str, issued: u64) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, token.as_bytes());
    let tag = ring::hmac::sign(&key, format!("stockyard-session:{issued}").as_bytes());
    let hex: String = tag.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    format!("{issued}.{hex}")
}

/// Whether `cookie` is a live session of `token`.
fn valid_session(token: &str, cookie: &str) -> bool {
    let Some(issued) = cookie.split_once('.').and_then(|(t, _)| t.parse::<u64>().ok()) else { return false };
    let now = now_secs();
    issued <= now + 60 && now.saturating_sub(issued) < SESSION.as_secs() && same(cookie, &session_value(token, issued))
}

/// Paths anyone may reach.
fn open(path: &str) -> bool {
    matches!(path, "/healthz" | "/readyz" | "/login" | "/ui/app.css")
}

use stockyard_gateway::bearer::same;

/// What a request presents: the token as a bearer, or a session cookie.
enum Presented {
    Bearer(String),
    Session(String),
}

fn presented(request: &Request) -> Option<Presented> {
    let headers = request.headers();
    if let Some(bearer) =
        headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "))
    {
        return Some(Presented::Bearer(bearer.trim().to_string()));
    }
    let cookies = headers.get_all(header::COOKIE).iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(';'));
    cookies
        .filter_map(|c| c.trim().strip_prefix(COOKIE)?.strip_prefix('=').map(|v| Presented::Session(v.to_string())))
        .next()
}

/// Lets a request through when no token is configured, the path is open, or
/// it carries the token; refuses it otherwise.
pub(crate) async fn require(State(api): State<Api>, request: Request, next: Next) -> Response {
    let Some(token) = api.token.as_deref() else { return next.run(request).await };
    let path = request.uri().path().to_string();
    if open(&path) {
        return next.run(request).await;
    }
    let given = presented(&request);
    let good = match &given {
        Some(Presented::Bearer(b)) => same(b, token),
        Some(Presented::Session(s)) => valid_session(token, s),
        None => false,
    };
    match given {
        _ if good => next.run(request).await,
        given => {
            let why = if given.is_some() { "the token is wrong" } else { "this scheduler requires a token" };
            if path.starts_with("/api/") || path == "/metrics" {
                let body = serde_json::json!({"error": format!("{why}: send Authorization: Bearer <token>")});
                (StatusCode::UNAUTHORIZED, axum::Json(body)).into_response()
            } else {
                let next = request.uri().path_and_query().map(|p| p.as_str()).unwrap_or("/");
                Redirect::to(&format!("/login?next={}", urlencode(next))).into_response()
            }
        }
    }
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Where to go after logging in.
#[derive(Debug, Deserialize)]
pub(crate) struct LoginQuery {
    next: Option<String>,
}

/// The login form.
#[derive(Debug, Deserialize)]
pub(crate) struct Login {
    token: String,
    next: Option<String>,
}

/// Only paths on this server, so the page cannot send anyone elsewhere:
/// browsers read `\` as `/`, so `/\evil.example` is another site.
fn local(next: Option<&str>) -> String {
    match next {
        Some(n)
            if n.starts_with('/') && !n.starts_with("//") && !n.contains('\\') && !n.chars().any(char::is_control) =>
        {
            n.to_string()
        }
        _ => "/".to_string(),
    }
}

fn page(next: &str, message: &str) -> Html<String> {
    let escape = |s: &str| s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;");
    Html(format!(
        r#"<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Log in · Stockyard</title>
<link rel="stylesheet" href="/ui/app.css"></head><body><main>
<h1>Stockyard</h1><p>This scheduler asks for its access token.</p>{}
<form method="post" action="/login" class="filters"><input type="hidden" name="next" value="{}">
<label>token <input type="password" name="token" id="token" autofocus></label>
<button type="submit" id="login">Log in</button></form></main></body></html>"#,
        if message.is_empty() {
            String::new()
        } else {
            format!(r#"<div class="problem" role="alert">{}</div>"#, escape(message))
        },
        escape(next)
    ))
}

/// `GET /login`.
pub(crate) async fn login_page(Query(q): Query<LoginQuery>) -> Html<String> {
    page(&local(q.next.as_deref()), "")
}

/// `POST /login`: sets the cookie when the token is right.
pub(crate) async fn login(State(api): State<Api>, Form(form): Form<Login>) -> Response {
    let next = local(form.next.as_deref());
    match api.token.as_deref() {
        Some(_) if throttled(false) => {
            (StatusCode::TOO_MANY_REQUESTS, page(&next, "Too many wrong tokens: wait a minute and try again."))
                .into_response()
        }
        Some(token) if !same(form.token.trim(), token) => {
            throttled(true);
            (StatusCode::UNAUTHORIZED, page(&next, "That token is wrong.")).into_response()
        }
        Some(token) => {
            let secure = if api.tls { "; Secure" } else { "" };
            let cookie =
                format!("{COOKIE}={}; Path=/; HttpOnly; SameSite=Strict{secure}", session_value(token, now_secs()));
            ([(header::SET_COOKIE, cookie)], Redirect::to(&next)).into_response()
        }
        None => Redirect::to(&next).into_response(),
    }
}

/// The gRPC port's check, when a token is configured: every call (from
/// executors, clients and this scheduler's own jobs) carries
/// `authorization: Bearer <token>`, or is refused as unauthenticated.
pub(crate) async fn require_grpc(State(token): State<Option<Arc<str>>>, request: Request, next: Next) -> Response {
    let Some(token) = token.as_deref() else { return next.run(request).await };
    let given = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let why = match given {
        Some(given) if same(given.trim(), token) => return next.run(request).await,
        Some(_) => "the token is wrong",
        None => "this scheduler requires a token",
    };
    let status =
        tonic::Status::unauthenticated(format!("{why}: give the cluster's token with STOCKYARD_TOKEN or --token-file"));
    status.into_http()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_stays_on_this_server() {
        assert_eq!(local(Some("/runs?x=1")), "/runs?x=1");
        for bad in ["//evil.example", "/\\evil.example", "https://evil.example", "evil", "/a\nb"] {
            assert_eq!(local(Some(bad)), "/", "{bad}");
        }
        assert_eq!(local(None), "/");
    }

    #[test]
    fn sessions_are_signed_and_expire() {
        let now = now_secs();
        let cookie = session_value("tok", now);
        assert!(!cookie.contains("tok"));
        assert!(valid_session("tok", &cookie));
        assert!(!valid_session("other", &cookie));
        assert!(!valid_session("tok", &session_value("tok", now - SESSION.as_secs() - 1)));
        assert!(!valid_session("tok", &format!("{now}.00")));
        assert!(!valid_session("tok", "tok"));
    }
}
