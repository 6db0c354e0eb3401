//! How executors and clients reach the schedulers: a gRPC forwarder on a
//! loopback port that sends every call to the scheduler that leads, with
//! the cluster's token.
//!
//! Ballista's executor and client know one scheduler address and send no
//! token. Pointed at a [`Gateway`], they follow the leader across
//! failovers (it asks any scheduler it was given which one leads, see
//! `GetLeader`) and pass the token check, without a change to Ballista.
//!
//! ```no_run
//! # async fn demo() -> Result<(), stockyard_gateway::GatewayError> {
//! let access = stockyard_gateway::Access { token: Some("s3cret".into()), tls: None };
//! let gateway = stockyard_gateway::Gateway::start(
//!     vec!["sched-a:50050".into(), "sched-b:50050".into()],
//!     access,
//! ).await?;
//! // Ballista connects here; calls go to whichever scheduler leads.
//! let local = gateway.addr();
//! # let _ = local; Ok(()) }
//! ```

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::extract::State;
use axum::serve::ListenerExt;
use axum::http::{HeaderValue, Request, Response, header::AUTHORIZATION};
use stockyard_proto::{GetLeaderRequest, GetLeaderResponse};
use stockyard_proto::stockyard_client::StockyardClient;
use tokio::sync::Notify;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};
use tower::ServiceExt;

/// How often the leader is looked up again while all is well.
const RECHECK: Duration = Duration::from_secs(1);

/// How long one scheduler gets to say who leads.
const ASK_TIMEOUT: Duration = Duration::from_secs(2);

/// What reaching the schedulers takes besides their addresses.
#[derive(Debug, Clone, Default)]
pub struct Access {
    /// The cluster's token, sent on every call.
    pub token: Option<String>,
    /// TLS to the schedulers, when they serve it.
    pub tls: Option<ClientTls>,
}

/// How to check the schedulers' certificates.
#[derive(Clone)]
pub struct ClientTls {
    /// PEM certificates of the authority that signed them.
    pub ca: Vec<u8>,
    /// The name their certificates carry; by default the host each address
    /// names.
    pub domain: Option<String>,
}

impl std::fmt::Debug for ClientTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientTls").field("ca_bytes", &self.ca.len()).field("domain", &self.domain).finish()
    }
}

/// Why a gateway could not start or find a leader.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// The local listener could not be opened.
    #[error("cannot open the scheduler gateway on 127.0.0.1: {0}")]
    Listen(std::io::Error),
    /// An address is not `HOST:PORT`.
    #[error("'{0}' is not a scheduler address (HOST:PORT)")]
    Address(String),
    /// The token cannot be sent as a header.
    #[error("the token holds characters that cannot be sent in a header")]
    Token,
    /// The TLS settings are not usable.
    #[error("TLS: {0}")]
    Tls(String),
    /// No scheduler answered.
    #[error("no scheduler answered ({0})")]
    NoLeader(String),
    /// A scheduler refused the token (or its absence): retrying won't help.
    #[error("refused by the scheduler: {0}")]
    Refused(String),
}

/// A running gateway; it serves for the life of the process.
#[derive(Clone)]
pub struct Gateway {
    addr: SocketAddr,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway").field("addr", &self.addr).field("schedulers", &self.shared.schedulers).finish()
    }
}

struct Shared {
    /// Addresses as given; asked in turn who leads.
    schedulers: Vec<String>,
    /// `Bearer <token>`, added to every call.
    token: Option<HeaderValue>,
    tls: Option<ClientTls>,
    /// The leader's address and a channel to it.
    leader: Mutex<Option<(String, Channel)>>,
    /// A channel to each scheduler asked who leads or forwarded to, kept
    /// between lookups: one connection per scheduler.
    asking: Mutex<std::collections::HashMap<String, Channel>>,
    /// Why no leader is known, for the error a caller gets meanwhile.
    problem: Mutex<String>,
    /// Set when a scheduler refused our token.
    refused: Mutex<Option<String>>,
    /// Set when a forwarded call failed: look the leader up now.
    wake: Notify,
    /// Set when a leader is first known, or a lookup failed.
    found: Notify,
    /// Lookups that found no scheduler to use.
    failed_rounds: std::sync::atomic::AtomicU64,
    /// This gateway's own address: calls that name it go to the leader.
    local: std::sync::OnceLock<String>,
}

impl Gateway {
    /// Starts a gateway to the leader among `schedulers` (`HOST:PORT`).
    pub async fn start(schedulers: Vec<String>, access: Access) -> Result<Self, GatewayError> {
        Self::open(schedulers, access, true).await
    }

    /// Starts a gateway to `scheduler` only, without asking who leads: for
    /// a scheduler's own jobs, which run where they are started.
    pub async fn fixed(scheduler: String, access: Access) -> Result<Self, GatewayError> {
        Self::open(vec![scheduler], access, false).await
    }

    async fn open(schedulers: Vec<String>, access: Access, follow: bool) -> Result<Self, GatewayError> {
        for s in &schedulers {
            endpoint(s, &access.tls)?;
        }
        let Access { token, tls } = access;
        let token = match token {
            Some(t) => Some(HeaderValue::from_str(&format!("Bearer {t}")).map_err(|_| GatewayError::Token)?),
            None => None,
        };
        let shared = Arc::new(Shared {
            leader: Mutex::new(None),
            asking: Mutex::default(),
            problem: Mutex::new("no scheduler asked yet".into()),
            refused: Mutex::new(None),
            schedulers,
            token,
            tls,
            wake: Notify::new(),
            found: Notify::new(),
            failed_rounds: Default::default(),
            local: Default::default(),
        });
        if !follow {
            let addr = shared.schedulers[0].clone();
            let channel = shared.channel_to(&addr)?;
            *shared.leader.lock().expect("leader lock") = Some((addr, channel));
        } else {
            tokio::spawn(follow_leader(shared.clone()));
        }
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.map_err(GatewayError::Listen)?;
        let addr = listener.local_addr().map_err(GatewayError::Listen)?;
        let _ = shared.local.set(addr.to_string());
        let app = axum::Router::new().fallback(forward).with_state(shared.clone());
        tokio::spawn(async move {
            // Nagle's algorithm would hold each small answer for the
            // caller's delayed ACK: 40 ms a call.
            let listener = listener.tap_io(|tcp| {
                let _ = tcp.set_nodelay(true);
            });
            if let Err(e) = axum::serve(listener, app).await {
                tracing::error!("the scheduler gateway stopped: {e}");
            }
        });
        Ok(Self { addr, shared })
    }

    /// The loopback address Ballista and our clients connect to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The leader's address, waiting up to `wait` for one to be known:
    /// for executors, which may start before any scheduler.
    pub async fn leader(&self, wait: Duration) -> Result<String, GatewayError> {
        self.resolve(wait, false).await
    }

    /// Like [`Self::leader`], but fails as soon as one lookup found no
    /// scheduler answering: for a command a person waits on.
    pub async fn leader_or_fail(&self, wait: Duration) -> Result<String, GatewayError> {
        self.resolve(wait, true).await
    }

    async fn resolve(&self, wait: Duration, fail_fast: bool) -> Result<String, GatewayError> {
        use std::sync::atomic::Ordering;
        let deadline = tokio::time::Instant::now() + wait;
        let failed_before = self.shared.failed_rounds.load(Ordering::SeqCst);
        loop {
            let found = self.shared.found.notified();
            if let Some((addr, _)) = self.shared.leader.lock().expect("leader lock").as_ref() {
                return Ok(addr.clone());
            }
            if let Some(why) = self.shared.refused.lock().expect("refused lock").clone() {
                return Err(GatewayError::Refused(why));
            }
            if fail_fast && self.shared.failed_rounds.load(Ordering::SeqCst) > failed_before {
                return Err(GatewayError::NoLeader(self.shared.problem.lock().expect("problem lock").clone()));
            }
            if tokio::time::timeout_at(deadline, found).await.is_err() {
                return Err(GatewayError::NoLeader(self.shared.problem.lock().expect("problem lock").clone()));
            }
        }
    }
}

fn endpoint(addr: &str, tls: &Option<ClientTls>) -> Result<Endpoint, GatewayError> {
    let bad = || GatewayError::Address(addr.to_string());
    let (host, port) = addr.rsplit_once(':').ok_or_else(bad)?;
    if host.is_empty() || port.parse::<u16>().map_or(true, |p| p == 0) {
        return Err(bad());
    }
    let scheme = if tls.is_some() { "https" } else { "http" };
    let endpoint = Endpoint::from_shared(format!("{scheme}://{addr}")).map_err(|_| bad())?.connect_timeout(ASK_TIMEOUT);
    let Some(tls) = tls else { return Ok(endpoint) };
    let host = host.trim_matches(['[', ']']);
    let config = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(&tls.ca))
        .domain_name(tls.domain.clone().unwrap_or_else(|| host.to_string()));
    endpoint.tls_config(config).map_err(|e| GatewayError::Tls(e.to_string()))
}

impl Shared {
    /// The kept channel to `addr`; it reconnects by itself after a failure.
    fn channel_to(&self, addr: &str) -> Result<Channel, GatewayError> {
        let mut asking = self.asking.lock().expect("asking lock");
        if let Some(c) = asking.get(addr) {
            return Ok(c.clone());
        }
        let channel = endpoint(addr, &self.tls)?.connect_lazy();
        asking.insert(addr.to_string(), channel.clone());
        Ok(channel)
    }
}

/// Keeps `shared.leader` on the scheduler that leads.
async fn follow_leader(shared: Arc<Shared>) {
    loop {
        match find_leader(&shared).await {
            Ok(addr) => {
                let mut leader = shared.leader.lock().expect("leader lock");
                if leader.as_ref().map(|(a, _)| a) != Some(&addr) {
                    match shared.channel_to(&addr) {
                        Ok(channel) => {
                            tracing::info!(leader = %addr, "following the leading scheduler");
                            *leader = Some((addr, channel));
                            shared.found.notify_waiters();
                        }
                        Err(e) => *shared.problem.lock().expect("problem lock") = e.to_string(),
                    }
                }
            }
            Err(problem) => {
                // Calls fail fast with the reason until a leader is back.
                if shared.leader.lock().expect("leader lock").take().is_some() {
                    tracing::warn!("lost the leading scheduler: {problem}");
                }
                *shared.problem.lock().expect("problem lock") = problem;
                shared.failed_rounds.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                shared.found.notify_waiters();
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(RECHECK) => {}
            _ = shared.wake.notified() => {}
        }
    }
}

/// Asks each scheduler in turn who leads. While none knows (etcd is
/// away), one that answers serves, since queries need no leader and it
/// refuses job runs itself: the one that led last, where the executors
/// are, else the first in the list. Every client given the same list
/// picks the same one, so queries and executors meet.
async fn find_leader(shared: &Shared) -> Result<String, String> {
    let mut problems = Vec::new();
    let mut answered: Vec<(String, GetLeaderResponse)> = Vec::new();
    for addr in &shared.schedulers {
        match ask(shared, addr).await {
            Ok(a) if a.is_leader => {
                *shared.refused.lock().expect("refused lock") = None;
                return Ok(addr.clone());
            }
            Ok(a) if !a.leader_grpc.is_empty() => return Ok(a.leader_grpc),
            Ok(a) => answered.push((addr.clone(), a)),
            Err(e) => problems.push(format!("{addr}: {e}")),
        }
    }
    let last = answered.iter().map(|(_, a)| &a.last_leader_grpc).find(|l| !l.is_empty());
    if let Some(last) = last {
        if answered.iter().any(|(addr, _)| addr == last) {
            return Ok(last.clone());
        }
        // Named under an address not in our list: use it if it answers.
        if !shared.schedulers.contains(last) && ask(shared, last).await.is_ok() {
            return Ok(last.clone());
        }
    }
    answered.into_iter().next().map(|(addr, _)| addr).ok_or_else(|| problems.join("; "))
}

/// Asks the scheduler at `addr` who leads.
async fn ask(shared: &Shared, addr: &str) -> Result<GetLeaderResponse, String> {
    let asked = async {
        let channel = shared.channel_to(addr).map_err(|e| e.to_string())?;
        let mut request = tonic::Request::new(GetLeaderRequest {});
        if let Some(token) = &shared.token {
            request.metadata_mut().insert("authorization", token.to_str().unwrap_or_default().parse().map_err(|_| "bad token")?);
        }
        let answer = StockyardClient::new(channel).get_leader(request).await.map_err(|s| match s.code() {
            tonic::Code::Unauthenticated => {
                *shared.refused.lock().expect("refused lock") = Some(format!("{addr}: {}", s.message()));
                shared.found.notify_waiters();
                s.message().to_string()
            }
            tonic::Code::Unavailable | tonic::Code::Unknown | tonic::Code::Internal => format!("unreachable ({})", root_cause(&s)),
            _ => s.message().to_string(),
        })?;
        Ok::<_, String>(answer.into_inner())
    };
    tokio::time::timeout(ASK_TIMEOUT * 2, asked).await.unwrap_or_else(|_| Err("no answer".into()))
}

/// The innermost cause of a failed call ("Connection refused", "invalid
/// peer certificate: …"): the layers above it repeat "transport error".
fn root_cause(status: &tonic::Status) -> String {
    let mut cause: Option<&dyn std::error::Error> = std::error::Error::source(status);
    let mut deepest = None;
    while let Some(e) = cause {
        deepest = Some(e.to_string());
        cause = e.source();
    }
    deepest.unwrap_or_else(|| status.message().to_string())
}

/// Sends one call, with the token, to the scheduler it names (its
/// `:authority`, see [`Gateway::addr`]), or to the leader when it names
/// this gateway. Ballista's executor reports a task's status to the
/// scheduler that launched it, which must hear it even if it no longer
/// leads.
async fn forward(State(shared): State<Arc<Shared>>, request: Request<Body>) -> Response<Body> {
    let named = request.uri().authority().map(|a| a.as_str().to_string()).filter(|a| Some(a) != shared.local.get());
    let target = match named {
        Some(addr) => shared.channel_to(&addr).map(|c| (addr, c)).map_err(|e| e.to_string()),
        None => shared.leader.lock().expect("leader lock").clone().ok_or_else(|| {
            format!("no leading scheduler: {}", shared.problem.lock().expect("problem lock"))
        }),
    };
    let (addr, channel) = match target {
        Ok(t) => t,
        Err(problem) => return tonic::Status::unavailable(problem).into_http(),
    };
    let (mut parts, body) = request.into_parts();
    if let Some(token) = &shared.token {
        parts.headers.insert(AUTHORIZATION, token.clone());
    }
    let request = Request::from_parts(parts, tonic::body::Body::new(body));
    match channel.oneshot(request).await {
        Ok(response) => response.map(Body::new),
        Err(e) => {
            shared.wake.notify_one();
            tonic::Status::unavailable(format!("the scheduler at {addr} is unreachable: {e}")).into_http()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn bad_addresses_are_named() {
        let e = Gateway::start(vec!["nohost".into()], Access::default()).await.err().unwrap();
        assert_eq!(e.to_string(), "'nohost' is not a scheduler address (HOST:PORT)");
        let e = Gateway::start(vec!["h:0".into()], Access::default()).await.err().unwrap();
        assert_eq!(e.to_string(), "'h:0' is not a scheduler address (HOST:PORT)");
    }

    #[tokio::test]
    async fn no_scheduler_is_a_clear_error() {
        // A port nothing listens on.
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let gateway = Gateway::start(vec![format!("127.0.0.1:{port}")], Access::default()).await.unwrap();
        let e = gateway.leader(Duration::from_secs(3)).await.unwrap_err().to_string();
        assert!(e.starts_with(&format!("no scheduler answered (127.0.0.1:{port}: unreachable")), "{e}");
    }
}
