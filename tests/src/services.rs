//! The real services later parts of Stockyard talk to, each started on a
//! free loopback port with its data in a temporary directory.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use tempfile::TempDir;

use crate::process::{Proc, free_port, repo_root, wait_for_port};

fn ready(proc: &Proc, port: u16) {
    assert!(wait_for_port(port, Duration::from_secs(60)), "{} did not listen on {port}:\n{}", proc.name, proc.output());
}

/// A program of the tests' virtualenv (scripts/setup fills it).
pub fn venv_bin(name: &str) -> PathBuf {
    let venv = std::env::var_os("STOCKYARD_VENV").map(PathBuf::from).unwrap_or_else(|| repo_root().join(".venv"));
    let bin = venv.join("bin").join(name);
    assert!(bin.exists(), "{} is missing: run scripts/setup", bin.display());
    bin
}

/// A SecantusDB server (MongoDB wire protocol).
pub struct Mongo {
    /// The server process.
    pub proc: Proc,
    /// Port it listens on, on 127.0.0.1.
    pub port: u16,
    /// Temporary directory with its data and log, kept across restarts.
    pub dir: TempDir,
}

impl Mongo {
    /// Starts SecantusDB and waits until it accepts connections.
    pub fn start() -> Mongo {
        let dir = tempfile::tempdir().expect("temp dir");
        let port = free_port();
        let proc = Self::spawn(&dir, port, &[]);
        Mongo { proc, port, dir }
    }

    fn spawn(dir: &TempDir, port: u16, extra: &[&str]) -> Proc {
        let mut cmd = Command::new(venv_bin("secantusd-py"));
        cmd.args(["--port", &port.to_string(), "--storage-path"]).arg(dir.path().join("db")).args(extra);
        let proc = Proc::spawn("secantusdb", cmd, dir.path().join("secantusdb.log"));
        ready(&proc, port);
        proc
    }

    /// Stops the server cleanly (so its data is on disk) and starts it
    /// again on the same port and data, with `extra` arguments (`--auth`).
    pub fn restart(&mut self, extra: &[&str]) {
        self.proc.stop(Duration::from_secs(20));
        self.proc = Self::spawn(&self.dir, self.port, extra);
    }

    /// Its connection string.
    pub fn uri(&self) -> String {
        format!("mongodb://127.0.0.1:{}", self.port)
    }

    /// Runs `work` with a connected client on a runtime of its own.
    pub fn with_client<T>(&self, work: impl AsyncFnOnce(mongodb::Client) -> T) -> T {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        let uri = self.uri();
        runtime.block_on(async move {
            let client = mongodb::Client::with_uri_str(&uri).await.expect("mongodb client");
            work(client).await
        })
    }

    /// Inserts `docs` into `db.collection` (replacing the collection).
    pub fn load(&self, db: &str, collection: &str, docs: Vec<mongodb::bson::Document>) {
        self.with_client(async |client| {
            let coll = client.database(db).collection::<mongodb::bson::Document>(collection);
            coll.drop().await.expect("drop collection");
            for chunk in docs.chunks(10_000) {
                coll.insert_many(chunk.to_vec()).await.expect("insert documents");
            }
        })
    }
}

/// A Redis server without persistence.
pub struct Redis {
    /// The server process.
    pub proc: Proc,
    /// Port it listens on, on 127.0.0.1.
    pub port: u16,
    /// Temporary working directory with its log; nothing is persisted.
    pub dir: TempDir,
}

impl Redis {
    /// Starts `redis-server` and waits until it answers PING.
    pub fn start() -> Redis {
        let dir = tempfile::tempdir().expect("temp dir");
        let port = free_port();
        let proc = Self::spawn(&dir, port);
        Redis { proc, port, dir }
    }

    fn spawn(dir: &TempDir, port: u16) -> Proc {
        let mut cmd = Command::new("redis-server");
        cmd.args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(dir.path());
        let proc = Proc::spawn("redis", cmd, dir.path().join("redis.log"));
        ready(&proc, port);
        proc
    }

    /// Stops it (SIGTERM), waits `down`, and starts it again on the same
    /// port, empty.
    pub fn restart_after(&mut self, down: Duration) {
        self.proc.stop(Duration::from_secs(10));
        std::thread::sleep(down);
        self.proc = Self::spawn(&self.dir, self.port);
    }

    /// Its URL.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Sends one inline command and returns the raw reply.
    pub fn command(&self, line: &str) -> String {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).expect("connect to redis");
        s.set_read_timeout(Some(Duration::from_secs(5))).ok();
        s.write_all(format!("{line}\r\n").as_bytes()).expect("write to redis");
        // Read until the reply is whole: a bulk string says its length.
        let mut reply = Vec::new();
        let mut buf = [0u8; 65536];
        loop {
            let n = s.read(&mut buf).expect("read from redis");
            reply.extend_from_slice(&buf[..n]);
            let text = String::from_utf8_lossy(&reply);
            let whole = match (text.strip_prefix('$'), text.split_once("\r\n")) {
                (Some(_), Some((head, rest))) => match head[1..].parse::<i64>() {
                    Ok(len) if len >= 0 => rest.len() >= len as usize + 2,
                    _ => true,
                },
                _ => text.ends_with("\r\n"),
            };
            if n == 0 || whole {
                return text.into_owned();
            }
        }
    }
}

/// A single-member etcd.
pub struct Etcd {
    /// The etcd process.
    pub proc: Proc,
    /// Client port, on 127.0.0.1.
    pub port: u16,
    /// Temporary directory with its data and log, kept across restarts.
    pub dir: TempDir,
    peer: u16,
}

impl Etcd {
    /// Starts `etcd` and waits until its client port answers.
    pub fn start() -> Etcd {
        Self::start_on(free_port())
    }

    /// Starts `etcd` with its client port on `port`.
    pub fn start_on(port: u16) -> Etcd {
        let dir = tempfile::tempdir().expect("temp dir");
        let peer = free_port();
        let proc = Self::spawn(&dir, port, peer);
        Etcd { proc, port, dir, peer }
    }

    /// Stops it (SIGTERM) and starts it again on the same ports and data.
    pub fn restart_after(&mut self, down: Duration) {
        self.proc.stop(Duration::from_secs(10));
        std::thread::sleep(down);
        self.proc = Self::spawn(&self.dir, self.port, self.peer);
    }

    fn spawn(dir: &TempDir, port: u16, peer: u16) -> Proc {
        let client = format!("http://127.0.0.1:{port}");
        let peer_url = format!("http://127.0.0.1:{peer}");
        let mut cmd = Command::new("etcd");
        cmd.arg("--data-dir")
            .arg(dir.path().join("data"))
            .args(["--name", "test", "--listen-client-urls", &client, "--advertise-client-urls", &client])
            .args(["--listen-peer-urls", &peer_url, "--initial-advertise-peer-urls", &peer_url])
            .args(["--initial-cluster", &format!("test={peer_url}"), "--log-level", "warn"]);
        let proc = Proc::spawn("etcd", cmd, dir.path().join("etcd.log"));
        ready(&proc, port);
        proc
    }

    /// Its client endpoint, `127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// GET on the client port's HTTP interface; the response body.
    pub fn http_get(&self, path: &str) -> String {
        crate::process::http_get(self.port, path).1
    }
}

/// An S3 server (moto) with one bucket.
pub struct S3 {
    /// The moto process.
    pub proc: Proc,
    /// Port it listens on, on 127.0.0.1.
    pub port: u16,
    /// Temporary directory with its log (moto keeps objects in memory).
    pub dir: TempDir,
    /// The bucket created at start.
    pub bucket: String,
}

impl S3 {
    /// Starts `moto_server` and creates `bucket`.
    pub fn start(bucket: &str) -> S3 {
        let dir = tempfile::tempdir().expect("temp dir");
        let port = free_port();
        let mut cmd = Command::new(venv_bin("moto_server"));
        cmd.args(["-H", "127.0.0.1", "-p", &port.to_string()]);
        let proc = Proc::spawn("moto", cmd, dir.path().join("moto.log"));
        ready(&proc, port);
        // moto takes unsigned requests: create the bucket with a bare PUT.
        let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect to moto");
        s.set_read_timeout(Some(Duration::from_secs(10))).ok();
        write!(s, "PUT /{bucket} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            .expect("write to moto");
        let mut reply = String::new();
        s.read_to_string(&mut reply).ok();
        assert!(reply.starts_with("HTTP/1.1 200"), "creating bucket {bucket}: {reply}");
        S3 { proc, port, dir, bucket: bucket.into() }
    }

    /// Environment that points object stores at this server.
    pub fn env(&self) -> Vec<(String, String)> {
        [
            ("AWS_ENDPOINT_URL", format!("http://127.0.0.1:{}", self.port)),
            ("AWS_ALLOW_HTTP", "true".into()),
            ("AWS_ACCESS_KEY_ID", "test".into()),
            ("AWS_SECRET_ACCESS_KEY", "test".into()),
            ("AWS_REGION", "us-east-1".into()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }
}

/// A Kafka-protocol broker: Tansu, with SQLite storage in its directory so
/// records survive a restart. Built by `scripts/setup` into a cache.
pub struct Kafka {
    /// The broker process.
    pub proc: Proc,
    /// Port it listens on, on 127.0.0.1.
    pub port: u16,
    /// Working directory with its SQLite storage and log, kept across restarts.
    pub dir: TempDir,
}

fn tansu_bin() -> PathBuf {
    let tools = std::env::var_os("STOCKYARD_TOOLS").map(PathBuf::from).unwrap_or_else(|| {
        PathBuf::from(std::env::var_os("HOME").expect("HOME is set")).join(".cache/stockyard-tools")
    });
    let bin = tools.join("tansu/bin/tansu");
    assert!(bin.exists(), "{} is missing: run scripts/setup", bin.display());
    bin
}

impl Kafka {
    /// Starts Tansu and waits until it listens.
    pub fn start() -> Kafka {
        Self::start_on(free_port())
    }

    /// Starts Tansu on `port`.
    pub fn start_on(port: u16) -> Kafka {
        let dir = tempfile::tempdir().expect("temp dir");
        let proc = Self::spawn(&dir, port);
        Kafka { proc, port, dir }
    }

    fn spawn(dir: &TempDir, port: u16) -> Proc {
        let url = format!("tcp://127.0.0.1:{port}");
        let mut cmd = Command::new(tansu_bin());
        // The SQLite path is relative to the working directory.
        cmd.current_dir(dir.path())
            .args(["broker", "--listener-url", &url, "--advertised-listener-url", &url])
            .args(["--storage-engine", "sqlite://tansu.db"]);
        let proc = Proc::spawn("tansu", cmd, dir.path().join("tansu.log"));
        ready(&proc, port);
        proc
    }

    /// Stops it (SIGTERM) and starts it again on the same port and data
    /// after `down`.
    pub fn restart_after(&mut self, down: Duration) {
        self.proc.stop(Duration::from_secs(10));
        std::thread::sleep(down);
        self.proc = Self::spawn(&self.dir, self.port);
    }

    /// `kafka://127.0.0.1:PORT/topic`.
    pub fn location(&self, topic: &str) -> String {
        format!("kafka://127.0.0.1:{}/{topic}", self.port)
    }

    fn broker<T>(&self, topic: &str, work: impl AsyncFnOnce(stockyard_stream_source::Broker) -> T) -> T {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        let location: stockyard_stream_source::KafkaLocation = self.location(topic).parse().expect("location");
        runtime.block_on(async move {
            let broker = stockyard_stream_source::Broker::connect(&location).await.expect("connect to the broker");
            work(broker).await
        })
    }

    /// Creates `topic` with `partitions` partitions.
    pub fn create_topic(&self, topic: &str, partitions: i32) {
        self.broker(topic, async |b| b.create_topic(partitions).await.expect("create topic"));
    }

    /// Appends `values` to one partition with our own producer (rskafka).
    pub fn produce(&self, topic: &str, partition: i32, values: &[String]) {
        let values: Vec<Vec<u8>> = values.iter().map(|v| v.as_bytes().to_vec()).collect();
        self.broker(topic, async |b| b.produce(partition, values).await.expect("produce"));
    }

    /// Every record value of `topic`, partition by partition in offset
    /// order, read with kafka-python (a client no one here wrote): what a
    /// test computes its expected rows from.
    pub fn consume_with_kafka_python(&self, topic: &str) -> Vec<Vec<u8>> {
        let script = r#"
import sys
from kafka import KafkaConsumer, TopicPartition
port, topic = sys.argv[1], sys.argv[2]
consumer = KafkaConsumer(bootstrap_servers=f"127.0.0.1:{port}", api_version=(2, 5, 0), enable_auto_commit=False)
parts = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic))]
ends = consumer.end_offsets(parts)
for tp in parts:
    consumer.assign([tp])
    consumer.seek(tp, 0)
    while consumer.position(tp) < ends[tp]:
        for record in consumer.poll(timeout_ms=1000, max_records=5000).get(tp, []):
            sys.stdout.write((record.value or b"").hex() + "\n")
consumer.close()
"#;
        let out = Command::new(venv_bin("python"))
            .args(["-c", script, &self.port.to_string(), topic])
            .output()
            .expect("start python");
        assert!(out.status.success(), "kafka-python failed: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout)
            .expect("hex lines")
            .lines()
            .map(|l| (0..l.len()).step_by(2).map(|i| u8::from_str_radix(&l[i..i + 2], 16).expect("hex")).collect())
            .collect()
    }

    /// Appends `values` to one partition with kafka-python, a client no one
    /// here wrote.
    pub fn produce_with_kafka_python(&self, topic: &str, partition: i32, values: &[String]) {
        let script = r#"
import json, sys
from kafka import KafkaProducer
port, topic, partition = sys.argv[1], sys.argv[2], int(sys.argv[3])
producer = KafkaProducer(bootstrap_servers=f"127.0.0.1:{port}", api_version=(2, 5, 0))
for line in sys.stdin.read().splitlines():
    producer.send(topic, value=line.encode(), partition=partition)
producer.flush(30)
producer.close()
"#;
        let mut child = Command::new(venv_bin("python"))
            .args(["-c", script, &self.port.to_string(), topic, &partition.to_string()])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("start python");
        child.stdin.take().expect("stdin").write_all(values.join("\n").as_bytes()).expect("write values");
        let out = child.wait_with_output().expect("kafka-python ran");
        assert!(out.status.success(), "kafka-python failed: {}", String::from_utf8_lossy(&out.stderr));
    }
}
