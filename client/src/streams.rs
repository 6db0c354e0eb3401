//! `stockyard streams`: list streams, or create, pause, resume, stop or
//! drop one, on the leading scheduler.

use serde_json::{Value, json};
use stockyard_proto::{ChangeStreamRequest, ListStreamsRequest, StreamInfo};

use crate::Failure;
use crate::cli::{StreamAction, StreamsArgs};
use crate::list::{connect, failed, print};

/// Runs the command.
pub async fn run(args: StreamsArgs) -> Result<(), Failure> {
    let remote = args.list.remote()?;
    let Some(action) = args.action else {
        let mut client = connect(&remote).await?;
        let list = client
            .list_streams(ListStreamsRequest { name: String::new() })
            .await
            .map_err(|e| failed(&remote, e))?
            .into_inner()
            .streams;
        let header = [
            "name",
            "state",
            "sources",
            "lag",
            "watermark",
            "batches",
            "rows in",
            "rows out",
            "late",
            "rejected",
            "last batch",
            "error",
        ];
        let rows = list
            .iter()
            .map(|s| {
                vec![
                    s.name.clone(),
                    s.state.clone(),
                    s.sources.join(" "),
                    s.lag.to_string(),
                    s.watermark.clone(),
                    s.batches.to_string(),
                    s.rows_in.to_string(),
                    s.rows_out.to_string(),
                    s.late_rows.to_string(),
                    s.rejected_rows.to_string(),
                    format!("{} ms", s.last_batch_ms),
                    s.error.clone(),
                ]
            })
            .collect();
        print(args.list.format, &header, rows, list.iter().map(stream_json).collect());
        return Ok(());
    };
    let (name, verb, sql, trigger) = match action {
        StreamAction::Create(c) => {
            let sql = match (c.sql, c.file) {
                (Some(sql), _) => sql,
                (None, Some(path)) => std::fs::read_to_string(&path)
                    .map_err(|e| Failure::usage(format!("cannot read {}: {e}", path.display())))?,
                (None, None) => return Err(Failure::usage("give the stream's SQL with --file or --sql")),
            };
            let sql = substitute(&sql, &c.set).map_err(Failure::usage)?;
            (c.name, "create", sql, humantime::format_duration(c.trigger).to_string())
        }
        StreamAction::Pause(n) => (n.name, "pause", String::new(), String::new()),
        StreamAction::Resume(n) => (n.name, "resume", String::new(), String::new()),
        StreamAction::Stop(n) => (n.name, "stop", String::new(), String::new()),
        StreamAction::Drop(n) => (n.name, "drop", String::new(), String::new()),
    };
    let mut client = connect(&remote).await?;
    let request = ChangeStreamRequest { name: name.clone(), action: verb.into(), sql, trigger };
    let answer = client.change_stream(request).await.map_err(|e| {
        let message = format!("cannot {verb} stream {name}: {}", e.message());
        match e.code() {
            tonic::Code::InvalidArgument | tonic::Code::NotFound | tonic::Code::AlreadyExists => {
                Failure::usage(message)
            }
            _ => Failure::new(message),
        }
    })?;
    let out = match answer.into_inner().stream {
        Some(s) => stream_json(&s),
        None => json!({ "name": name, "dropped": true }),
    };
    println!("{out}");
    Ok(())
}

/// `sql` with every `${NAME}` replaced by its `--set` value.
fn substitute(sql: &str, set: &[(String, String)]) -> Result<String, String> {
    let mut out = String::with_capacity(sql.len());
    let mut rest = sql;
    while let Some(at) = rest.find("${") {
        out.push_str(&rest[..at]);
        let tail = &rest[at + 2..];
        let end = tail.find('}').ok_or_else(|| format!("'${{' without a closing '}}' in: {}", &rest[at..]))?;
        let name = &tail[..end];
        let (_, value) = set
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .ok_or_else(|| format!("the SQL uses ${{{name}}}: give it with --set {name}=…"))?;
        out.push_str(value);
        rest = &tail[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

fn stream_json(s: &StreamInfo) -> Value {
    json!({
        "name": s.name, "state": s.state, "error": (!s.error.is_empty()).then_some(&s.error),
        "sources": s.sources, "sink": s.sink, "trigger_ms": s.trigger_ms, "lag": s.lag,
        "watermark": (!s.watermark.is_empty()).then_some(&s.watermark), "batches": s.batches,
        "records": s.records, "rows_in": s.rows_in, "rows_out": s.rows_out, "late_rows": s.late_rows,
        "rejected_rows": s.rejected_rows,
        "rejected": {
            "not_json": s.rejected_not_json, "not_an_object": s.rejected_not_an_object,
            "bad_event_time": s.rejected_bad_event_time,
        },
        "unreadable_values": s.unreadable_values, "last_batch_ms": s.last_batch_ms,
    })
}

#[cfg(test)]
mod tests {
    use super::substitute;

    #[test]
    fn settings_fill_the_file() {
        let set = vec![("KAFKA".to_string(), "h:1".to_string()), ("OUT".to_string(), "/o".to_string())];
        assert_eq!(substitute("'kafka://${KAFKA}/t' '${OUT}/x/' ${OUT}", &set).unwrap(), "'kafka://h:1/t' '/o/x/' /o");
        assert_eq!(substitute("no variables", &[]).unwrap(), "no variables");
        assert_eq!(substitute("'${REDIS}'", &set).unwrap_err(), "the SQL uses ${REDIS}: give it with --set REDIS=…");
        assert!(substitute("${OUT", &set).unwrap_err().contains("without a closing"));
    }
}
