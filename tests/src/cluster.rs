//! A real cluster: the `stockyard` binary as one scheduler and N executors.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::process::{Proc, free_port, stockyard_bin, wait_for_port};

/// What a finished `stockyard` command did.
#[derive(Debug)]
pub struct Run {
    /// Exit status (-1 when killed by a signal, -2 when killed for taking
    /// longer than its limit).
    pub code: i32,
    /// Everything the command wrote to stdout.
    pub stdout: String,
    /// Everything the command wrote to stderr, plus a note if it ran too long.
    pub stderr: String,
}

impl Run {
    /// Panics with the command's output unless it exited 0.
    pub fn ok(self) -> Run {
        assert_eq!(self.code, 0, "command failed:\nstdout: {}\nstderr: {}", self.stdout, self.stderr);
        self
    }
}

/// A scheduler and its executors, stopped on drop.
pub struct Cluster {
    /// Temporary directory with the logs, the state store and the executors'
    /// work directories; removed on drop.
    pub dir: TempDir,
    /// The scheduler process.
    pub scheduler: Proc,
    /// Executor processes, in the order they were started.
    pub executors: Vec<Proc>,
    /// Scheduler gRPC port.
    pub port: u16,
    /// Scheduler HTTP port.
    pub http_port: u16,
    /// Environment passed to every process and command.
    pub env: Vec<(String, String)>,
    /// Scheduler restarts so far (each gets its own log).
    pub restarts: usize,
    /// Each executor's own extra environment, to start it again.
    executor_env: Vec<Vec<(String, String)>>,
}

fn spawn_scheduler(dir: &TempDir, env: &[(String, String)], port: u16, http_port: u16, n: usize) -> Proc {
    let mut cmd = base_command(env);
    cmd.args(["scheduler", "--port", &port.to_string(), "--http-port", &http_port.to_string()])
        // Dead executors are noticed quickly in tests.
        .args(["--executor-timeout", "6s"]);
    let log = if n == 0 { "scheduler.log".to_string() } else { format!("scheduler-{n}.log") };
    let scheduler = Proc::spawn("scheduler", cmd, dir.path().join(log));
    assert!(
        wait_for_port(port, Duration::from_secs(30)),
        "scheduler did not listen on {port}:\n{}",
        scheduler.output()
    );
    scheduler
}

impl Cluster {
    /// A scheduler and `executors` executors with two task slots each,
    /// ready to run queries.
    pub fn start(executors: usize) -> Cluster {
        Self::start_with_env(executors, Vec::new())
    }

    /// Like [`Cluster::start`], with extra environment for every process.
    pub fn start_with_env(executors: usize, env: Vec<(String, String)>) -> Cluster {
        let dir = tempfile::tempdir().expect("temp dir");
        let port = free_port();
        let http_port = free_port();
        // State in the test's directory, no default schedules (a stray KPI
        // run would change Redis) and local files allowed, unless the test
        // says otherwise.
        let mut env_with_defaults = vec![
            ("STOCKYARD_STATE".to_string(), format!("file:{}", dir.path().join("state").display())),
            ("STOCKYARD_DEFAULT_SCHEDULES".to_string(), "false".to_string()),
            // Tests read the Parquet files they write.
            ("STOCKYARD_ALLOW_LOCAL_FILES".to_string(), "true".to_string()),
        ];
        if env.iter().any(|(k, _)| k == "STOCKYARD_TOKEN") {
            crate::token::mark_own_token(http_port);
        }
        env_with_defaults.extend(env);
        let env = env_with_defaults;
        let scheduler = spawn_scheduler(&dir, &env, port, http_port, 0);
        let mut cluster = Cluster {
            dir,
            scheduler,
            executors: Vec::new(),
            port,
            http_port,
            env,
            restarts: 0,
            executor_env: Vec::new(),
        };
        for _ in 0..executors {
            cluster.add_executor();
        }
        cluster.wait_for_executors(executors);
        cluster
    }

    /// Stops the scheduler (SIGTERM, then SIGKILL) and starts it again on
    /// the same ports with the same environment.
    pub fn restart_scheduler(&mut self) {
        self.scheduler.stop(Duration::from_secs(10));
        self.restarts += 1;
        self.scheduler = spawn_scheduler(&self.dir, &self.env, self.port, self.http_port, self.restarts);
    }

    /// Starts one more executor (not waiting for it to register).
    pub fn add_executor(&mut self) {
        self.add_executor_with_env(&[]);
    }

    /// Starts one more executor with `extra` environment.
    pub fn add_executor_with_env(&mut self, extra: &[(&str, &str)]) {
        let extra: Vec<(String, String)> = extra.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let executor = self.spawn_executor(self.executors.len(), &extra);
        self.executors.push(executor);
        self.executor_env.push(extra);
    }

    fn spawn_executor(&self, i: usize, extra: &[(String, String)]) -> Proc {
        let work = self.dir.path().join(format!("executor-{i}"));
        std::fs::create_dir_all(&work).expect("work dir");
        let mut cmd = base_command(&self.env);
        cmd.envs(extra.iter().map(|(k, v)| (k, v)));
        cmd.args(["executor", "--scheduler", &self.scheduler_addr()])
            .args(["--port", &free_port().to_string(), "--grpc-port", &free_port().to_string()])
            .args(["--concurrent-tasks", "2", "--heartbeat-interval", "1s"])
            .arg("--work-dir")
            .arg(&work);
        let n = self.executor_env.get(i).map(|_| "-again").unwrap_or_default();
        let log = self.dir.path().join(format!("executor-{i}{n}.log"));
        Proc::spawn(&format!("executor-{i}"), cmd, log)
    }

    /// `127.0.0.1:<grpc port>`.
    pub fn scheduler_addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Waits until the scheduler lists `n` active executors. An executor
    /// that exited on the way (a free port taken by another test between
    /// choosing and binding it) is started again on other ports.
    pub fn wait_for_executors(&mut self, n: usize) {
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut restarts = 0;
        loop {
            for i in 0..self.executors.len() {
                if restarts < 3 && !self.executors[i].is_running() {
                    eprintln!("executor-{i} exited while starting, starting it again:\n{}", self.executors[i].output());
                    restarts += 1;
                    let extra = self.executor_env[i].clone();
                    self.executors[i] = self.spawn_executor(i, &extra);
                }
            }
            let run = self.stockyard(&["executors", "--format", "json"]);
            let active = run.stdout.lines().filter(|l| l.contains("\"state\":\"active\"")).count();
            if run.code == 0 && active >= n {
                return;
            }
            assert!(Instant::now() < deadline, "{n} executors did not register:\n{}\n{}", run.stderr, self.logs());
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Runs `stockyard ARGS` against this cluster and waits for it.
    pub fn stockyard(&self, args: &[&str]) -> Run {
        run(self.command(args))
    }

    /// A `stockyard ARGS` command pointed at this cluster.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = base_command(&self.env);
        cmd.env("STOCKYARD_SCHEDULER", self.scheduler_addr()).args(args);
        cmd
    }

    /// `stockyard sql --format csv SQL`, which must succeed; its stdout.
    pub fn sql_csv(&self, sql: &str) -> String {
        self.stockyard(&["sql", "--format", "csv", sql]).ok().stdout
    }

    /// All process logs, for failure messages.
    pub fn logs(&self) -> String {
        let mut s = format!("--- scheduler\n{}", tail(&self.scheduler.output()));
        for e in &self.executors {
            s += &format!("--- {}\n{}", e.name, tail(&e.output()));
        }
        s
    }
}

fn tail(s: &str) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n") + "\n"
}

/// `stockyard` with a quiet environment plus `env`.
pub fn base_command(env: &[(String, String)]) -> Command {
    let mut cmd = Command::new(stockyard_bin());
    for k in ["STOCKYARD_SCHEDULER", "STOCKYARD_PORT", "STOCKYARD_HTTP_PORT", "RUST_LOG", "STOCKYARD_LOG"] {
        cmd.env_remove(k);
    }
    // Tests archive into their own temporary directories.
    cmd.env("STOCKYARD_ARCHIVE_DESTS", std::env::temp_dir());
    if let Some(token) = crate::token::test_token() {
        cmd.env("STOCKYARD_TOKEN", token);
    }
    cmd.envs(env.iter().map(|(k, v)| (k, v)));
    cmd
}

/// How long any one `stockyard` command may take in a test: far more than
/// any needs, so that a hang fails naming the command rather than running
/// into nextest's limit with nothing said.
pub const COMMAND_LIMIT: Duration = Duration::from_secs(120);

/// Runs `cmd` to completion, capturing its output; a command still running
/// after [`COMMAND_LIMIT`] is killed and reported as exit code -2.
pub fn run(cmd: Command) -> Run {
    run_within(cmd, COMMAND_LIMIT)
}

/// [`run`] with its own limit.
pub fn run_within(mut cmd: Command, limit: Duration) -> Run {
    use std::io::Read;
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    let drain = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = pipe.read_to_end(&mut buf);
            String::from_utf8_lossy(&buf).into_owned()
        })
    };
    let stdout = drain(Box::new(child.stdout.take().unwrap()));
    let stderr = drain(Box::new(child.stderr.take().unwrap()));
    let deadline = Instant::now() + limit;
    let code = loop {
        if let Some(status) = child.try_wait().expect("wait for the command") {
            break status.code().unwrap_or(-1);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break -2;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stderr = stderr.join().unwrap_or_default();
    if code == -2 {
        stderr += &format!("\n[test harness] {cmd:?} was still running after {limit:?} and was killed\n");
    }
    Run { code, stdout: stdout.join().unwrap_or_default(), stderr }
}

/// `stockyard run archive` arguments that archive every fact older than
/// `older_than` before `now`, whatever the data's size, to `dest`.
pub fn archive_all<'a>(now: &'a str, older_than: &'a str, dest: &'a str) -> [&'a str; 10] {
    ["run", "archive", "--now", now, "--threshold-mb", "0", "--older-than", older_than, "--dest", dest]
}

/// `path` as a SQL string literal.
pub fn sql_path(path: &Path) -> String {
    format!("'{}'", path.display().to_string().replace('\'', "''"))
}
