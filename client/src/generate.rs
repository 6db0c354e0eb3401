//! `stockyard generate`: writes supply-chain data to MongoDB, or the seed
//! event streams to Kafka, with a progress bar on stderr, then prints a
//! one-line JSON summary.

use std::time::{Duration, Instant, SystemTime};

use clap::error::ErrorKind;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;
use stockyard_generator::events::{Disorder, EventKind};
use stockyard_generator::kafka::EventOptions;
use stockyard_generator::{GenerateOptions, Mode};
use stockyard_mongo::MongoSource;

use crate::Failure;
use crate::cli::GenerateArgs;

/// Facts a run without --docs or --rate writes, over the hour before now.
const DEFAULT_DOCS: u64 = 10_000;

/// Runs the generator as `args` say.
pub async fn run(args: GenerateArgs) -> Result<(), Failure> {
    if args.kafka.is_some() {
        return events(args).await;
    }
    // A bad combination is a command-line error: exit 2, like clap's own.
    let opts = options(&args).unwrap_or_else(|e| e.exit());
    let source = MongoSource::new(args.mongo.mongo_uri.clone(), args.mongo.mongo_db.clone())
        .with_round_trip(args.mongo.mongo_timeout);
    let db = source.database().await.map_err(Failure::from_error)?;

    let bar = bar(opts.total_facts(), "facts", format!("into {}", args.mongo.mongo_db));
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
    mode_fields(&mut out, &opts.mode);
    if let serde_json::Value::Object(fields) = summary.to_json() {
        for (k, v) in fields {
            out[k] = v;
        }
    }
    out["duration_ms"] = json!(started.elapsed().as_millis() as u64);
    println!("{out}");
    Ok(())
}

fn bar(total: u64, what: &str, target: String) -> ProgressBar {
    let bar = ProgressBar::new(total);
    bar.set_style(
        ProgressStyle::with_template(&format!("{{spinner}} {{elapsed}} [{{bar:30}}] {{pos}}/{{len}} {what} {{msg}}"))
            .expect("valid template")
            .progress_chars("=> "),
    );
    bar.enable_steady_tick(Duration::from_millis(120));
    bar.set_message(target);
    bar
}

/// `--kafka`: the seed event streams into their topics.
async fn events(args: GenerateArgs) -> Result<(), Failure> {
    let opts = event_options(&args).unwrap_or_else(|e| e.exit());
    let bar = bar(opts.total(), "records", format!("into kafka://{}", opts.brokers));
    if matches!(opts.mode, Mode::Live { duration: Duration::MAX, .. }) {
        bar.set_length(0);
    }
    let started = Instant::now();
    let result = stockyard_generator::kafka::produce(&opts, |written, _| bar.set_position(written)).await;
    bar.finish_and_clear();
    let summaries = result.map_err(|e| Failure::new(format!("cannot generate into kafka://{}: {e}", opts.brokers)))?;
    let mut out = json!({"status": "succeeded", "kafka": format!("kafka://{}", opts.brokers), "seed": opts.seed});
    mode_fields(&mut out, &opts.mode);
    out["streams"] = summaries.iter().map(|s| (s.topic.clone(), json!(s))).collect::<serde_json::Map<_, _>>().into();
    out["records"] = json!(summaries.iter().map(|s| s.records).sum::<u64>());
    out["duration_ms"] = json!(started.elapsed().as_millis() as u64);
    println!("{out}");
    Ok(())
}

fn mode_fields(out: &mut serde_json::Value, mode: &Mode) {
    match mode {
        Mode::Backfill { start, end, .. } => {
            out["mode"] = json!("backfill");
            out["start"] = json!(start.to_rfc3339());
            out["end"] = json!(end.to_rfc3339());
        }
        Mode::Live { rate, duration } => {
            out["mode"] = json!("live");
            out["rate"] = json!(rate);
            if *duration != Duration::MAX {
                out["duration"] = json!(humantime::format_duration(*duration).to_string());
            }
        }
    }
}

/// The event generator's options, or a command-line error naming the bad value.
fn event_options(a: &GenerateArgs) -> Result<EventOptions, clap::Error> {
    let bad = |m: String| clap::Error::raw(ErrorKind::ValueValidation, format!("{m}\n"));
    let mode = match (a.rate, a.duration) {
        (Some(rate), duration) => Mode::Live { rate: rate as u64, duration: duration.unwrap_or(Duration::MAX) },
        (None, _) => mode(a)?,
    };
    let mut streams: Vec<EventKind> = a.stream.iter().flat_map(|s| s.0.iter().copied()).collect();
    streams.sort();
    streams.dedup();
    let count = |flag: &str, n: usize| u32::try_from(n).map_err(|_| bad(format!("'{n}' for --{flag} is too large")));
    let opts = EventOptions {
        seed: a.seed,
        brokers: a.kafka.clone().unwrap_or_default(),
        streams,
        mode,
        skus: count("skus", a.skus)?,
        stores: count("stores", a.stores)?,
        partitions: i32::try_from(a.partitions)
            .map_err(|_| bad(format!("'{}' partitions is too many", a.partitions)))?,
        disorder: Disorder {
            dirty_share: a.dirty_share,
            out_of_order_share: a.out_of_order_share,
            late_share: a.late_share,
        },
    };
    opts.validate().map_err(|e| bad(e.to_string()))?;
    Ok(opts)
}

/// A backfill (`--docs --start --end`), or the default one over the last hour.
fn mode(a: &GenerateArgs) -> Result<Mode, clap::Error> {
    let bad = |m: String| clap::Error::raw(ErrorKind::ValueValidation, format!("{m}\n"));
    Ok(match (a.docs, a.start, a.end) {
        (Some(docs), Some(start), Some(end)) => {
            if start >= end {
                return Err(bad(format!("--start '{}' is not before --end '{}'", time(start), time(end))));
            }
            Mode::Backfill { docs: docs as u64, start: start.into(), end: end.into() }
        }
        _ => {
            let end = SystemTime::now();
            let start = end - Duration::from_secs(3600);
            Mode::Backfill { docs: DEFAULT_DOCS, start: start.into(), end: end.into() }
        }
    })
}

/// The generator's options, or a command-line error naming the bad value.
fn options(a: &GenerateArgs) -> Result<GenerateOptions, clap::Error> {
    let bad = |m: String| clap::Error::raw(ErrorKind::ValueValidation, format!("{m}\n"));
    let count = |flag: &str, n: usize| u32::try_from(n).map_err(|_| bad(format!("'{n}' for --{flag} is too large")));
    let mode = match (a.rate, a.duration) {
        (Some(rate), Some(duration)) => Mode::Live { rate: rate as u64, duration },
        (Some(_), None) => return Err(bad("--rate into MongoDB needs --duration".into())),
        (None, _) => mode(a)?,
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
