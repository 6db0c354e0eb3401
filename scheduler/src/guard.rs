//! What every HTTP answer and every state-changing request must satisfy,
//! with or without a token: the web layer's defence against other sites.
//!
//! - **Host.** A name that is not this scheduler's (DNS rebinding: an
//!   attacker's domain pointed at our address) is refused. IP literals,
//!   loopback names, the external host and the configured names pass, so
//!   probes and Prometheus, which use pod IPs, keep working.
//! - **Same origin.** A POST must not come from another site: a browser
//!   says where a request comes from in `Sec-Fetch-Site` or `Origin`; one
//!   that names another site is refused. Clients that are not browsers send
//!   neither and pass (with a token, they must still give it).
//! - **No framing.** `X-Frame-Options: DENY` and `frame-ancestors 'none'`.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// The host names this scheduler answers to besides IP literals and
/// loopback names.
#[derive(Debug, Clone, Default)]
pub struct AllowedHosts(pub Arc<Vec<String>>);

impl AllowedHosts {
    /// `external` and `more`, lower-cased.
    pub fn new(external: &str, more: &[String]) -> Self {
        let mut names: Vec<String> =
            std::iter::once(external).chain(more.iter().map(String::as_str)).map(str::to_ascii_lowercase).collect();
        names.retain(|n| !n.is_empty());
        Self(Arc::new(names))
    }

    /// Whether a request's `Host` (with or without a port) names us.
    pub fn allows(&self, host: &str) -> bool {
        let name = host_name(host).to_ascii_lowercase();
        name.parse::<std::net::IpAddr>().is_ok()
            || name == "localhost"
            || name.ends_with(".localhost")
            || self.0.contains(&name)
    }
}

/// `host` without its port; `[::1]:8080` is `::1`.
fn host_name(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match host.rsplit_once(':') {
        Some((name, port)) if port.chars().all(|c| c.is_ascii_digit()) => name,
        _ => host,
    }
}

/// Whether a state-changing request comes from this scheduler's own pages
/// (or from no browser at all).
fn same_origin(request: &Request) -> bool {
    let headers = request.headers();
    if let Some(site) = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()) {
        return matches!(site, "same-origin" | "none");
    }
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else { return true };
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok()).unwrap_or("");
    let origin_host = origin.split_once("://").map(|(_, rest)| rest).unwrap_or("");
    !host.is_empty() && origin_host.eq_ignore_ascii_case(host)
}

/// The middleware; see the module docs.
pub(crate) async fn guard(State(hosts): State<AllowedHosts>, request: Request, next: Next) -> Response {
    let host = request.headers().get(header::HOST).and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    let host =
        if host.is_empty() { request.uri().authority().map(|a| a.to_string()).unwrap_or_default() } else { host };
    let mut response = if !hosts.allows(&host) {
        let message = format!("this scheduler does not answer to the host '{host}' (see --allowed-hosts)");
        (StatusCode::MISDIRECTED_REQUEST, axum::Json(serde_json::json!({ "error": message }))).into_response()
    } else if !matches!(*request.method(), Method::GET | Method::HEAD | Method::OPTIONS) && !same_origin(&request) {
        let message = "refused: this request comes from another site";
        (StatusCode::FORBIDDEN, axum::Json(serde_json::json!({ "error": message }))).into_response()
    } else {
        next.run(request).await
    };
    let headers = response.headers_mut();
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static("frame-ancestors 'none'"));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_our_names_pass() {
        let hosts = AllowedHosts::new("stockyard.internal", &["ui.example.com".into()]);
        for ok in [
            "127.0.0.1:8080",
            "10.1.2.3:8080",
            "[::1]:8080",
            "localhost:8080",
            "stockyard.internal",
            "UI.example.com:443",
        ] {
            assert!(hosts.allows(ok), "{ok}");
        }
        for bad in ["evil.example:8080", "stockyard.internal.evil.example", "", "127.0.0.1.nip.io:8080"] {
            assert!(!hosts.allows(bad), "{bad}");
        }
    }
}
