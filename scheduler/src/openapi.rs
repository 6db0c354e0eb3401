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
        RunStarted, Cancelling, ErrorAnswer, stockyard_api::ScheduleAction, stockyard_api::job_view::JobDetail,
        stockyard_api::job_view::StageDetail, stockyard_api::job_view::TaskDetail, stockyard_api::job_view::Operator,
        stockyard_api::job_view::RunJob, stockyard_api::job_view::GoneJob, stockyard_stream_runtime::StreamInfo, stockyard_stream_runtime::StreamState,
        stockyard_stream_source::Rejects, crate::streams::NewStream, stockyard_api::cluster::Overview,
        stockyard_api::cluster::Leader, stockyard_api::cluster::KpiFreshness, stockyard_api::cluster::KpiCache,
        stockyard_api::cluster::Service, stockyard_stream_runtime::SinkView, stockyard_stream_runtime::WindowView
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

    /// The properties of schema `name`, through `allOf` and references.
    fn properties(doc: &serde_json::Value, name: &str) -> Vec<String> {
        fn walk(doc: &serde_json::Value, schema: &serde_json::Value, out: &mut Vec<String>) {
            if let Some(r) = schema["$ref"].as_str() {
                let name = r.rsplit('/').next().unwrap();
                return walk(doc, &doc["components"]["schemas"][name], out);
            }
            if let Some(props) = schema["properties"].as_object() {
                out.extend(props.keys().cloned());
            }
            for part in schema["allOf"].as_array().into_iter().flatten() {
                walk(doc, part, out);
            }
        }
        let mut out = Vec::new();
        walk(doc, &doc["components"]["schemas"][name], &mut out);
        assert!(!out.is_empty(), "no schema {name} with properties in the document");
        out
    }

    /// The fields read off `var` in `line`: `var.name`, not `other_var.name`.
    fn reads<'a>(line: &'a str, var: &str) -> Vec<&'a str> {
        let pattern = format!("{var}.");
        let mut out = Vec::new();
        for (at, _) in line.match_indices(&pattern) {
            let before = line[..at].chars().next_back();
            if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '.' || c == '$') {
                continue;
            }
            let rest = &line[at + pattern.len()..];
            let end = rest.find(|c: char| !(c.is_alphanumeric() || c == '_')).unwrap_or(rest.len());
            if end > 0 {
                out.push(&rest[..end]);
            }
        }
        out
    }

    #[test]
    fn the_ui_reads_only_fields_the_document_has() {
        let doc = serde_json::to_value(document()).unwrap();
        let ui = include_str!("../ui/app.js");
        let (mut region, mut checked) = (None::<Vec<(&str, &str)>>, 0);
        for (n, line) in ui.lines().enumerate() {
            let text = line.trim();
            if let Some(rest) = text.strip_prefix("// fields of ") {
                let pairs = rest.split(", ").map(|p| p.split_once(" as ").expect("// fields of SCHEMA as VAR, …"));
                region = Some(pairs.collect());
            } else if text == "// end of fields" {
                region = None;
            } else if let Some(pairs) = &region {
                for (schema, var) in pairs {
                    let known = properties(&doc, schema);
                    for field in reads(line, var) {
                        assert!(
                            known.iter().any(|k| k == field),
                            "app.js:{}: the UI reads {var}.{field}, but {schema} has no field {field} ({})",
                            n + 1,
                            known.join(", ")
                        );
                        checked += 1;
                    }
                }
            }
        }
        assert!(region.is_none(), "app.js: a `// fields of` region is not closed");
        assert!(checked >= 40, "only {checked} field reads checked: are the markers in app.js?");
        // The runs page offers every status and job the document has.
        let schemas = &doc["components"]["schemas"];
        for (schema, filter) in [("RunStatus", "select(\"status\", [\"\", "), ("Job", "select(\"job\", [\"\", ")] {
            let words: Vec<String> = schemas[schema]["enum"]
                .as_array()
                .unwrap()
                .iter()
                .map(|w| format!("\"{}\"", w.as_str().unwrap()))
                .collect();
            let offered = format!("{filter}{}])", words.join(", "));
            assert!(ui.contains(&offered), "the runs page's {schema} filter is not {offered}");
        }
    }
}
