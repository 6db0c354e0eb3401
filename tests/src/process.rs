//! Child processes that die with their handle (and with the test process).

use std::fs::File;
use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The repository root (the workspace directory).
pub fn repo_root() -> PathBuf {
    // At run time first: cargo keeps a built test binary when the clone
    // moves, and the compile-time path would then point at the old place.
    let manifest = std::env::var_os("CARGO_MANIFEST_DIR").map(PathBuf::from);
    let manifest = manifest.unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")));
    manifest.parent().expect("tests/ has a parent").to_path_buf()
}

/// The built `stockyard` binary: `STOCKYARD_BIN`, or the one next to this
/// test's target directory (`cargo build --bin stockyard` builds it).
pub fn stockyard_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("STOCKYARD_BIN") {
        return PathBuf::from(p);
    }
    // target/<profile>/deps/e2e-<hash> -> target/<profile>/stockyard
    let exe = std::env::current_exe().expect("test executable path");
    let bin = exe.parent().and_then(Path::parent).map(|d| d.join("stockyard")).expect("target dir");
    assert!(bin.exists(), "{} is missing: run `cargo build --bin stockyard` first", bin.display());
    bin
}

/// Ports handed out: below Linux's ephemeral range (32768–60999), so no
/// outgoing connection of any process (to MongoDB, etcd, a peer) can take
/// one between our check and the server's bind, as a port the kernel gave
/// for `:0` could be.
const PORTS: std::ops::Range<u32> = 20000..32000;

/// A loopback port nobody listens on right now, different from every one
/// this process handed out before; where in [`PORTS`] it starts is random
/// per process, so parallel tests seldom try the same ones.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(u32::MAX);
    let span = PORTS.end - PORTS.start;
    if NEXT.load(Ordering::Relaxed) == u32::MAX {
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
        let seed = (std::process::id().wrapping_mul(2654435761) ^ nanos) % span;
        let _ = NEXT.compare_exchange(u32::MAX, seed, Ordering::Relaxed, Ordering::Relaxed);
    }
    for _ in 0..span {
        let port = (PORTS.start + NEXT.fetch_add(1, Ordering::Relaxed) % span) as u16;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free port").port()
}

/// Waits until something accepts TCP connections on `port`.
pub fn wait_for_port(port: u16, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_millis(200)).is_ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

/// A running child process, killed (SIGKILL) and reaped on drop. Its stdout
/// and stderr go to `log`.
pub struct Proc {
    /// A name for messages.
    pub name: String,
    child: Option<Child>,
    /// Where its output goes.
    pub log: PathBuf,
}

impl Proc {
    /// Starts `cmd` with output to `log`. The child also gets SIGKILL if the
    /// test process dies first, so nothing outlives a run.
    pub fn spawn(name: &str, mut cmd: Command, log: PathBuf) -> Proc {
        let out = File::create(&log).expect("create log file");
        let err = out.try_clone().expect("clone log file");
        cmd.stdin(Stdio::null()).stdout(out).stderr(err);
        // SAFETY: prctl is async-signal-safe; it runs in the child before exec.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let child = cmd.spawn().unwrap_or_else(|e| panic!("cannot start {name} ({cmd:?}): {e}"));
        Proc { name: name.to_string(), child: Some(child), log }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(|c| c.id()).unwrap_or(0)
    }

    /// Sends `signal` (e.g. `libc::SIGTERM`) without waiting.
    pub fn signal(&self, signal: i32) {
        if let Some(c) = &self.child {
            // SAFETY: plain kill(2) on our own child's pid.
            unsafe { libc::kill(c.id() as i32, signal) };
        }
    }

    /// Kills the process with SIGKILL and reaps it.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Asks the process to stop (SIGTERM), and kills it if it has not
    /// within `grace`.
    pub fn stop(&mut self, grace: Duration) {
        self.signal(libc::SIGTERM);
        if self.wait_exit(grace).is_none() {
            self.kill();
        }
    }

    /// Waits up to `timeout` for the process to exit by itself.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Some(c) = self.child.as_mut()
                && let Ok(Some(status)) = c.try_wait()
            {
                self.child = None;
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }

    /// Whether it is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.as_mut().map(|c| c.try_wait()), Some(Ok(None)))
    }

    /// Everything it printed so far.
    pub fn output(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A plain HTTP GET on loopback: the status code and the body.
pub fn http_get(port: u16, path: &str) -> (u16, String) {
    http(port, "GET", path, None)
}

/// A plain HTTP/1.1 request on loopback (one per connection), with an
/// optional JSON body: the status code and the body.
pub fn http(port: u16, method: &str, path: &str, json: Option<&str>) -> (u16, String) {
    let answer = http_with(port, method, path, &[], json);
    (answer.status, answer.body)
}

/// [`http`] with extra headers; the status, the response's headers and the body.
pub fn http_with(port: u16, method: &str, path: &str, headers: &[(&str, &str)], json: Option<&str>) -> HttpAnswer {
    send(port, method, path, headers, json.map(|j| ("application/json", j)))
}

/// A form POST, as a browser sends a login form: the whole answer.
pub fn http_form(port: u16, path: &str, form: &str) -> HttpAnswer {
    send(port, "POST", path, &[], Some(("application/x-www-form-urlencoded", form)))
}

fn send(port: u16, method: &str, path: &str, headers: &[(&str, &str)], content: Option<(&str, &str)>) -> HttpAnswer {
    use std::io::{Read, Write};
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap_or_else(|e| panic!("connect to {port}: {e}"));
    s.set_read_timeout(Some(Duration::from_secs(60))).ok();
    let body = content.map_or("", |(_, b)| b);
    let kind = content.map(|(k, _)| format!("Content-Type: {k}\r\n")).unwrap_or_default();
    let extra: String = headers.iter().map(|(k, v)| format!("{k}: {v}\r\n")).collect();
    // A test may name another host; otherwise the one it connects to.
    let named = headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host"));
    let asked =
        headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("authorization") || k.eq_ignore_ascii_case("cookie"));
    let extra = match crate::token::for_port(port) {
        Some(token) if !asked => format!("{extra}Authorization: Bearer {token}\r\n"),
        _ => extra,
    };
    let host = if named { String::new() } else { format!("Host: 127.0.0.1:{port}\r\n") };
    write!(
        s,
        "{method} {path} HTTP/1.1\r\n{host}Connection: close\r\n{extra}{kind}Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .expect("send request");
    // Read by Content-Length: some servers (chromedriver) keep the
    // connection open despite `Connection: close`.
    let mut raw = Vec::new();
    let mut buf = [0u8; 65536];
    loop {
        let n = s.read(&mut buf).unwrap_or(0);
        raw.extend_from_slice(&buf[..n]);
        if n == 0 || response_complete(&raw) {
            break;
        }
    }
    let raw = String::from_utf8_lossy(&raw);
    let status = raw.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
    let chunked = header(head, "transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked"));
    HttpAnswer { status, head: head.to_string(), body: if chunked { dechunk(body) } else { body.to_string() } }
}

/// An HTTP answer.
#[derive(Debug)]
pub struct HttpAnswer {
    /// The status code.
    pub status: u16,
    /// The status line and headers.
    pub head: String,
    /// The body.
    pub body: String,
}

impl HttpAnswer {
    /// A response header's value.
    pub fn header(&self, name: &str) -> Option<String> {
        header(&self.head, name).map(str::to_string)
    }
}

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines()
        .find_map(|l| l.split_once(':').filter(|(k, _)| k.trim().eq_ignore_ascii_case(name)).map(|(_, v)| v.trim()))
}

fn response_complete(raw: &[u8]) -> bool {
    let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") else { return false };
    let head = String::from_utf8_lossy(&raw[..end]);
    let body = &raw[end + 4..];
    if let Some(len) = header(&head, "content-length").and_then(|v| v.parse::<usize>().ok()) {
        return body.len() >= len;
    }
    if header(&head, "transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        return body.ends_with(b"0\r\n\r\n");
    }
    false
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        body = rest[n..].trim_start_matches("\r\n");
    }
    out
}

/// Whether `done` came true within `timeout`, asked every 200 ms.
pub fn within(timeout: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while !done() {
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    true
}

/// The last lines of every `*.log` in `dir`, each under its path.
pub fn log_tails(dir: &Path) -> String {
    let mut paths: Vec<PathBuf> =
        std::fs::read_dir(dir).map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect()).unwrap_or_default();
    paths.retain(|p| p.extension().is_some_and(|e| e == "log"));
    paths.sort();
    let mut out = String::new();
    for path in paths {
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        out += &format!("--- {}\n{}\n", path.display(), lines[lines.len().saturating_sub(30)..].join("\n"));
    }
    out
}

/// Prints [`log_tails`] of a directory if the test still runs after a
/// limit. nextest kills a test that outlives its own limit without a word
/// from the processes it started; this says where they stood.
pub struct Watchdog(#[allow(dead_code)] std::sync::mpsc::Sender<()>);

/// Starts a [`Watchdog`] on `dir`; dropping it (the test ending) stops it.
pub fn watchdog(limit: Duration, dir: &Path) -> Watchdog {
    let (stop, stopped) = std::sync::mpsc::channel::<()>();
    let dir = dir.to_path_buf();
    std::thread::spawn(move || {
        if let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(limit) {
            eprintln!("[test harness] still running after {limit:?}; the processes' logs:\n{}", log_tails(&dir));
        }
    });
    Watchdog(stop)
}
