//! How executors, clients and schedulers reach the rest of the cluster: a
//! gRPC forwarder on a loopback port that sends every call to the scheduler
//! that leads, or to the cluster member it names, with the cluster's token.
//!
//! Ballista's executor and client know one scheduler address and send no
//! token. Pointed at a [`Gateway`], they follow the leader across
//! failovers (it asks any scheduler it was given which one leads, see
//! `GetLeader`) and pass the token check, without a change to Ballista.
//!
//! The gateway adds the token, so it must not be a token proxy for
//! anyone else. Two rules keep it from being one:
//! - it serves its own process only: every call carries a secret made when
//!   the gateway starts, in the `user-agent` that [`Gateway::route`] sets
//!   (the one header Ballista's endpoints let us choose), and is refused
//!   without it;
//! - it forwards only to members of the cluster: the schedulers it was
//!   given, the leaders they name and the executors the leader lists
//!   ([`members`]). Any other address is refused, so a task that names a
//!   stranger as its scheduler never sends the stranger the token.
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
use axum::http::{HeaderValue, Request, Response, header::AUTHORIZATION, header::USER_AGENT};
use axum::serve::ListenerExt;
use stockyard_proto::stockyard_client::StockyardClient;
use stockyard_proto::{GetLeaderRequest, GetLeaderResponse, ListExecutorsRequest};
use tokio::sync::Notify;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};
use tower::ServiceExt;

pub mod bearer;
pub mod members;

use members::{Members, Role};

/// How often the leader is looked up again while all is well.
const RECHECK: Duration = Duration::from_secs(1);

/// How long one scheduler gets to say who leads.
const ASK_TIMEOUT: Duration = Duration::from_secs(2);

/// What reaching the schedulers takes besides their addresses.
#[derive(Clone, Default)]
pub struct Access {
    /// The cluster's token, sent on every call.
    pub token: Option<String>,
    /// TLS to the schedulers, when they serve it.
    pub tls: Option<ClientTls>,
}

impl std::fmt::Debug for Access {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let token = self.token.as_ref().map(|_| stockyard_mask::MASK);
        f.debug_struct("Access").field("token", &token).field("tls", &self.tls).finish()
    }
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
    /// A call that [`Gateway::route`] was asked to send is not a URI.
    #[error("'{0}' is not an address to call")]
    Target(String),
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
    /// Where calls may go besides the leader.
    members: Members,
    /// `stockyard-local/<secret>`: the `user-agent` word that proves a call
    /// comes from this process (see the module docs).
    pass: String,
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
    /// Changes this process makes to some of its outgoing calls.
    rewrite: std::sync::OnceLock<Rewrite>,
}

/// A change to outgoing unary calls: given a call's path and its message,
/// the message to send instead, or `None` to send it as it is.
pub type Rewrite = Arc<dyn Fn(&str, &[u8]) -> Option<Vec<u8>> + Send + Sync>;

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
        if let Some(t) = &token {
            stockyard_mask::register(t);
        }
        let token = match token {
            Some(t) => Some(HeaderValue::from_str(&format!("Bearer {t}")).map_err(|_| GatewayError::Token)?),
            None => None,
        };
        let shared = Arc::new(Shared {
            members: Members::new(schedulers.iter().cloned()),
            pass: format!("stockyard-local/{}{}", uuid::Uuid::new_v4().simple(), uuid::Uuid::new_v4().simple()),
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
            rewrite: Default::default(),
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
        tracing::info!(%addr, "scheduler gateway listening (for this process only)");
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

    /// The loopback address Ballista and our clients connect to. A call
    /// there needs the endpoint [`Self::endpoint`] or [`Self::route`] makes.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// An endpoint for calls to the leader through this gateway.
    pub fn endpoint(&self) -> Endpoint {
        let uri = format!("http://{}", self.addr);
        Endpoint::from_shared(uri)
            .expect("a socket address is a URI")
            .user_agent(self.shared.pass.clone())
            .expect("the pass is a header value")
            .connect_timeout(Duration::from_secs(20))
            .tcp_nodelay(true)
    }

    /// Sends what `target` would reach through this gateway instead: to the
    /// leader when it names the gateway, else to the member it names (the
    /// name rides along as the origin). For Ballista's endpoint overrides.
    pub fn route(&self, target: &Endpoint) -> Result<Endpoint, GatewayError> {
        let uri = target.uri();
        let authority = uri.authority().map(|a| a.as_str().to_string()).unwrap_or_default();
        if authority.is_empty() {
            return Err(GatewayError::Target(uri.to_string()));
        }
        let endpoint = self.endpoint();
        if authority == self.addr.to_string() {
            return Ok(endpoint);
        }
        // The gateway speaks TLS onwards itself: the origin names plain HTTP.
        let origin = format!("http://{authority}").parse().map_err(|_| GatewayError::Target(uri.to_string()))?;
        Ok(endpoint.origin(origin))
    }

    /// [`Self::route`] in the shape of Ballista's endpoint overrides
    /// (`EndpointOverrideFn`).
    pub fn dialer(&self) -> Dialer {
        let gateway = self.clone();
        Arc::new(move |endpoint: Endpoint| gateway.route(&endpoint).map_err(Into::into))
    }

    /// Has every later call go through `rewrite` first (set once; later
    /// calls of this are ignored).
    pub fn rewrite_calls(&self, rewrite: Rewrite) {
        let _ = self.shared.rewrite.set(rewrite);
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

/// Ballista's endpoint override, as [`Gateway::dialer`] makes it.
pub type Dialer = Arc<dyn Fn(Endpoint) -> Result<Endpoint, Box<dyn std::error::Error + Send + Sync>> + Send + Sync>;

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
    /// The kept channel to the scheduler at `addr`; it reconnects by itself
    /// after a failure.
    fn channel_to(&self, addr: &str) -> Result<Channel, GatewayError> {
        self.channel_for(addr, Role::Scheduler)
    }

    /// The kept channel to `addr`, over TLS when it is a scheduler and the
    /// schedulers serve TLS (executors serve plain gRPC).
    fn channel_for(&self, addr: &str, role: Role) -> Result<Channel, GatewayError> {
        let mut asking = self.asking.lock().expect("asking lock");
        if let Some(c) = asking.get(addr) {
            return Ok(c.clone());
        }
        let tls = if role == Role::Scheduler { self.tls.clone() } else { None };
        let channel = endpoint(addr, &tls)?.connect_lazy();
        asking.insert(addr.to_string(), channel.clone());
        Ok(channel)
    }

    /// Whether calls may go to `addr`: a member already, or an executor the
    /// leader lists now (executors come and go, so a miss asks again).
    async fn admits(&self, addr: &str) -> Option<Role> {
        if let Some(role) = self.members.role(addr) {
            return Some(role);
        }
        let (_, channel) = self.leader.lock().expect("leader lock").clone()?;
        let mut request = tonic::Request::new(ListExecutorsRequest {});
        if let Some(token) = &self.token {
            request
                .metadata_mut()
                .insert("authorization", token.to_str().unwrap_or_default().parse().expect("checked at start"));
        }
        let listed = tokio::time::timeout(ASK_TIMEOUT, StockyardClient::new(channel).list_executors(request)).await;
        match listed {
            Ok(Ok(answer)) => {
                for e in answer.into_inner().executors {
                    self.members.add(&format!("{}:{}", e.host, e.flight_port), Role::Executor);
                    self.members.add(&format!("{}:{}", e.host, e.grpc_port), Role::Executor);
                }
            }
            Ok(Err(e)) => tracing::debug!("cannot list the executors: {}", e.message()),
            Err(_) => tracing::debug!("cannot list the executors: no answer"),
        }
        self.members.role(addr)
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
        let answer = ask(shared, addr).await;
        if let Ok(a) = &answer {
            shared.members.add(&a.leader_grpc, Role::Scheduler);
            shared.members.add(&a.last_leader_grpc, Role::Scheduler);
        }
        match answer {
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
            request
                .metadata_mut()
                .insert("authorization", token.to_str().unwrap_or_default().parse().map_err(|_| "bad token")?);
        }
        let answer = StockyardClient::new(channel).get_leader(request).await.map_err(|s| match s.code() {
            tonic::Code::Unauthenticated => {
                *shared.refused.lock().expect("refused lock") = Some(format!("{addr}: {}", s.message()));
                shared.found.notify_waiters();
                s.message().to_string()
            }
            tonic::Code::Unavailable | tonic::Code::Unknown | tonic::Code::Internal => {
                format!("unreachable ({})", root_cause(&s))
            }
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

/// Sends one call from this process, with the token, to the member it
/// names (its `:authority`, see [`Gateway::route`]), or to the leader when
/// it names this gateway. Ballista's executor reports a task's status to the
/// scheduler that launched it, which must hear it even if it no longer
/// leads.
async fn forward(State(shared): State<Arc<Shared>>, request: Request<Body>) -> Response<Body> {
    let ours = request
        .headers()
        .get(USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ua| ua.split_whitespace().any(|word| bearer::same(word, &shared.pass)));
    if !ours {
        return tonic::Status::unauthenticated("this gateway serves only the process that started it").into_http();
    }
    let named = request.uri().authority().map(|a| a.as_str().to_string()).filter(|a| Some(a) != shared.local.get());
    let target = match named {
        Some(addr) => match shared.admits(&addr).await {
            Some(role) => shared.channel_for(&addr, role).map(|c| (addr, c)).map_err(|e| e.to_string()),
            None => {
                tracing::warn!(target = %addr, "refused to forward a call to an address that is not a member of the cluster");
                return tonic::Status::permission_denied(format!(
                    "{addr} is not a scheduler or executor of this cluster: the gateway does not forward there"
                ))
                .into_http();
            }
        },
        None => shared
            .leader
            .lock()
            .expect("leader lock")
            .clone()
            .ok_or_else(|| format!("no leading scheduler: {}", shared.problem.lock().expect("problem lock"))),
    };
    let (addr, channel) = match target {
        Ok(t) => t,
        Err(problem) => return tonic::Status::unavailable(problem).into_http(),
    };
    let (mut parts, body) = request.into_parts();
    let body = match shared.rewrite.get() {
        Some(rewrite) => match rewritten(rewrite, parts.uri.path(), body).await {
            Ok(body) => body,
            Err(status) => return status.into_http(),
        },
        None => body,
    };
    parts.headers.insert(USER_AGENT, HeaderValue::from_static("stockyard-gateway"));
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

/// The largest call read whole to be rewritten.
const REWRITE_LIMIT: usize = 4 * 1024 * 1024;

/// `body` after `rewrite`: a unary call is one gRPC message (a flag byte,
/// a 4-byte length, the message); only uncompressed ones are changed.
async fn rewritten(rewrite: &Rewrite, path: &str, body: Body) -> Result<Body, tonic::Status> {
    // Probe with an empty message: paths it leaves alone stream through.
    if rewrite(path, &[]).is_none() {
        return Ok(body);
    }
    let bytes = axum::body::to_bytes(body, REWRITE_LIMIT)
        .await
        .map_err(|e| tonic::Status::internal(format!("cannot read the call to rewrite it: {e}")))?;
    if bytes.len() < 5 || bytes[0] != 0 {
        return Ok(Body::from(bytes));
    }
    let Some(message) = rewrite(path, &bytes[5..]) else { return Ok(Body::from(bytes)) };
    let mut framed = Vec::with_capacity(message.len() + 5);
    framed.push(0);
    framed.extend_from_slice(&(message.len() as u32).to_be_bytes());
    framed.extend_from_slice(&message);
    Ok(Body::from(framed))
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
