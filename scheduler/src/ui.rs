//! The web UI: one page application embedded in the binary (no CDN, so it
//! works on a cluster without internet). Every page has its own URL, all
//! served by the same HTML; the script reads the REST API and polls it.

use axum::Router;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;

const INDEX: &str = include_str!("../ui/index.html");
const SCRIPT: &str = include_str!("../ui/app.js");
const STYLE: &str = include_str!("../ui/app.css");

/// The pages, each a stable URL.
pub const PAGES: [&str; 10] =
    ["/", "/runs", "/runs/{id}", "/jobs/{id}", "/schedules", "/streams", "/live", "/kpis", "/archives", "/sql"];

pub(crate) fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    let mut router = Router::new()
        .route("/ui/app.js", get(|| async { ([(header::CONTENT_TYPE, "text/javascript; charset=utf-8")], SCRIPT) }))
        .route("/ui/app.css", get(|| async { ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], STYLE) }));
    for page in PAGES {
        router = router.route(page, get(index));
    }
    router
}

async fn index() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/html; charset=utf-8"), (header::CACHE_CONTROL, "no-cache")], INDEX)
}
