//! The REST API's OpenAPI 3 document, generated from the handlers'
//! annotations and the answer types of `stockyard_api`, served at
//! `/api/openapi.json`. Every path may answer 401 when the scheduler has
//! a token.

use utoipa::openapi::security::{ApiKey, ApiKeyValue, Http, HttpAuthScheme, SecurityScheme};
use utoipa::openapi::{RefOr, ResponseBuilder};
use utoipa::{Modify, OpenApi};

use stockyard_api::views::{
    BallistaJob, Cancelling, ErrorAnswer, Executor, RunDetail, RunStarted, ScheduleChanged, ScheduleView, StartRun,
};
use stockyard_api::{Job, Run, RunStatus, Trigger};

#[derive(OpenApi)]
#[openapi(
    info(title = "Stockyard scheduler", description = "Runs, schedules, streams, KPIs and the cluster's state."),
    paths(
        crate::api::overview,
        crate::api::executors,
        crate::api::jobs,
        crate::api::job,
        crate::api::runs,
        crate::api::start_run,
        crate::api::run,
        crate::api::cancel_run,
        crate::api::schedules,
        crate::api::change_schedule,
        crate::api::kpis,
        crate::api::archives,
        crate::streams::all,
        crate::streams::create,
        crate::streams::one,
        crate::streams::results,
        crate::streams::control,
        crate::services::services,
    ),
    components(schemas(
        Run, RunDetail, RunStatus, Job, Trigger, Executor, BallistaJob, ScheduleView, ScheduleChanged, StartRun,
        RunStarted, Cancelling, ErrorAnswer, stockyard_api::ScheduleAction, crate::streams::NewStream
    )),
    modifiers(&TokenAuth),
    security(("bearer" = []), ("session" = []))
)]
struct Doc;

/// The token schemes, and a 401 on every operation.
struct TokenAuth;

impl Modify for TokenAuth {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme("bearer", SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)));
        components.add_security_scheme(
            "session",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::new("stockyard_session"))),
        );
        let refused = ResponseBuilder::new()
            .description("the scheduler has a token and the request's is missing or wrong")
            .content(
                "application/json",
                utoipa::openapi::ContentBuilder::new()
                    .schema(Some(RefOr::Ref(utoipa::openapi::Ref::from_schema_name("ErrorAnswer"))))
                    .build(),
            )
            .build();
        for item in doc.paths.paths.values_mut() {
            for op in [&mut item.get, &mut item.post].into_iter().flatten() {
                op.responses.responses.insert("401".into(), RefOr::T(refused.clone()));
            }
        }
    }
}

/// The document, as JSON.
pub(crate) fn document() -> utoipa::openapi::OpenApi {
    Doc::openapi()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_api_route_is_in_the_document() {
        let doc = document();
        let routes = include_str!("http.rs");
        for line in routes.lines().filter_map(|l| l.trim().strip_prefix(".route(\"/api/")) {
            let path = format!("/api/{}", line.split('"').next().unwrap());
            if path.contains('*') || path == "/api/openapi.json" {
                continue;
            }
            assert!(doc.paths.paths.contains_key(&path), "{path} is served but not in the OpenAPI document");
        }
        let run = serde_json::to_value(doc.components.as_ref().unwrap().schemas.get("Run").unwrap()).unwrap();
        for field in ["run_id", "job", "status", "trigger", "started_at_ms", "summary"] {
            assert!(run["properties"].get(field).is_some(), "Run has no {field}: {run}");
        }
    }
}
