//! `stockyard generate`: writes supply-chain data to MongoDB with a progress
//! bar on stderr, then prints a one-line JSON summary.

use std::time::{Duration, Instant, SystemTime};

use clap::error::ErrorKind;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;
use stockyard_generator::{GenerateOptions, Mode};
use stockyard_mongo::MongoSource;

use crate::Failure;
use crate::cli::GenerateArgs;

/// Facts a run without --docs or --rate writes, over the hour before now.
const DEFAULT_DOCS: u64 = 10_000;

/// Runs the generator as `args` say.
pub async fn run(args: GenerateArgs) -> Result<(), Failure> {
    // A bad combination is a command-line error: exit 2, like clap's own.
    let opts = options(&args).unwrap_or_else(|e| e.exit());
    let source = MongoSource::new(args.mongo.mongo_uri.clone(), args.mongo.mongo_db.clone());
    let db = source.database().await.map_err(Failure::from_error)?;

    let bar = ProgressBar::new(opts.total_facts());
    bar.set_style(
        ProgressStyle::with_template("{spinner} {elapsed} [{bar:30}] {pos}/{len} facts {msg}")
            .expect("valid template")
            .progress_chars("=> "),
    );
    bar.enable_steady_tick(Duration::from_millis(120));
    bar.set_message(format!("into {}", args.mongo.mongo_db));
    let started = Instant::now();
    let result = stockyard_generator::generate(&db, &opts, |written, total| {
        bar.set_length(total);
        bar.set_position(written);
    })
    .await;
    bar.finish_and_clear();
    let summary = result.map_err(|e| {
        // Driver messages may quote the connection string back.
        let message = e.to_string().replace(&args.mongo.mongo_uri, &source.redacted_uri());
        Failure::new(format!("cannot generate into {} at {}: {message}", args.mongo.mongo_db, source.redacted_uri()))
    })?;

    let mut out = json!({"status": "succeeded", "database": args.mongo.mongo_db, "seed": opts.seed});
    match &opts.mode {
        Mode::Backfill { start, end, .. } => {
            out["mode"] = json!("backfill");
            out["start"] = json!(start.to_rfc3339());
            out["end"] = json!(end.to_rfc3339());
        }
        Mode::Live { rate, duration } => {
            out["mode"] = json!("live");
            out["rate"] = json!(rate);
            out["duration"] = json!(humantime::format_duration(*duration).to_string());
        }
    }
    if let serde_json::Value::Object(fields) = summary.to_json() {
        for (k, v) in fields {
            out[k] = v;
        }
    }
    out["duration_ms"] = json!(started.elapsed().as_millis() as u64);
    println!("{out}");
    Ok(())
}

/// The generator's options, or a command-line error naming the bad value.
fn options(a: &GenerateArgs) -> Result<GenerateOptions, clap::Error> {
    let bad = |m: String| clap::Error::raw(ErrorKind::ValueValidation, format!("{m}\n"));
    let count = |flag: &str, n: usize| u32::try_from(n).map_err(|_| bad(format!("'{n}' for --{flag} is too large")));
    let mode = match (a.docs, a.start, a.end, a.rate, a.duration) {
        (Some(docs), Some(start), Some(end), None, None) => {
            if start >= end {
                return Err(bad(format!("--start '{}' is not before --end '{}'", time(start), time(end))));
            }
            Mode::Backfill { docs: docs as u64, start: start.into(), end: end.into() }
        }
        (None, None, None, Some(rate), Some(duration)) => Mode::Live { rate: rate as u64, duration },
        (None, None, None, None, None) => {
            let end = SystemTime::now();
            let start = end - Duration::from_secs(3600);
            Mode::Backfill { docs: DEFAULT_DOCS, start: start.into(), end: end.into() }
        }
        // Clap's requires/conflicts rule these out; kept as a plain message.
        _ => {
            return Err(bad("use --docs with --start and --end (a backfill), or --rate with --duration (live)".into()));
        }
    };
    Ok(GenerateOptions {
        seed: a.seed,
        mode,
        skus: count("skus", a.skus)?,
        dcs: count("dcs", a.dcs)?,
        suppliers: count("suppliers", a.suppliers)?,
        dirty_share: a.dirty_share,
    })
}

fn time(t: SystemTime) -> String {
    humantime::format_rfc3339(t).to_string()
}
