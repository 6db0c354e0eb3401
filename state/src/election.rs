//! Leader election on etcd: the schedulers sharing a store race to create
//! one key bound to a lease; the one that holds it leads until its lease
//! lapses. A scheduler that cannot renew its lease steps down before the
//! lease can expire, so two never lead at once.

use std::sync::Arc;
use std::time::Duration;

use etcd_client::{Client, Compare, CompareOp, ConnectOptions, PutOptions, Txn, TxnOp, TxnOpResponse};
use tokio::sync::watch;

/// What this scheduler is, as far as the election knows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    /// It runs the schedules and the jobs.
    Leader,
    /// Another scheduler leads (its campaign value, when known), or nobody
    /// can be known to lead because the store is unreachable (`None`).
    Follower(Option<String>),
}

/// How long a leader's lease lives without a renewal: a dead leader is
/// replaced within this time.
pub const LEASE_TTL: Duration = Duration::from_secs(5);

/// Key the leader holds, under the store's prefix.
pub(crate) const KEY: &str = "stockyard/leader";

/// The leader key's create revision while this process holds it: its
/// claim, which fenced writes compare against and which is its term
/// (etcd's revisions only grow, so a later claim has a larger one).
pub(crate) type Claim = Arc<std::sync::Mutex<Option<i64>>>;

/// Campaigns on `endpoints` with `me` (a value unique to this process)
/// forever, telling `role` what this process is and `claim` its claim.
pub(crate) async fn campaign(endpoints: Vec<String>, me: String, role: Arc<watch::Sender<Role>>, claim: Claim) {
    let mut last = String::new();
    loop {
        let error = term(&endpoints, &me, &role, &claim).await;
        // Out of contact: another scheduler may take over once the lease
        // lapses, so this one must not act as leader any more.
        *claim.lock().expect("claim lock") = None;
        role.send_if_modified(|r| set(r, Role::Follower(None)));
        if error != last {
            tracing::warn!(
                "leader election on etcd at {} failed: {error} (retrying every second)",
                endpoints.join(",")
            );
            last = error;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

fn set(current: &mut Role, new: Role) -> bool {
    let changed = *current != new;
    *current = new;
    changed
}

/// Every etcd step gets at most this long, so that a hung etcd makes a
/// leader step down well before its lease can expire.
const STEP: Duration = Duration::from_millis(1500);

/// Why a term of leadership ended, or a resignation failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ElectionError {
    /// etcd refused a step.
    #[error("{step}: {source}")]
    Etcd {
        /// The step, e.g. `claiming the leadership`.
        step: &'static str,
        /// etcd's error.
        #[source]
        source: etcd_client::Error,
    },
    /// etcd did not answer a step within [`STEP`].
    #[error("{step}: no answer in {} ms", STEP.as_millis())]
    Timeout {
        /// The step.
        step: &'static str,
    },
    /// etcd stopped renewing the lease.
    #[error("the lease expired")]
    LeaseExpired,
}

async fn step<T>(
    what: &'static str,
    f: impl Future<Output = Result<T, etcd_client::Error>>,
) -> Result<T, ElectionError> {
    match tokio::time::timeout(STEP, f).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(source)) => Err(ElectionError::Etcd { step: what, source }),
        Err(_) => Err(ElectionError::Timeout { step: what }),
    }
}

/// One lease's life: returns why it ended.
async fn term(endpoints: &[String], me: &str, role: &watch::Sender<Role>, claim: &Claim) -> String {
    let options = ConnectOptions::new().with_connect_timeout(Duration::from_secs(2)).with_timeout(STEP);
    let result: Result<(), ElectionError> = async {
        let mut client = step("connecting", Client::connect(endpoints.to_vec(), Some(options))).await?;
        let lease = step("granting a lease", client.lease_grant(LEASE_TTL.as_secs() as i64, None)).await?.id();
        let (mut keeper, mut answers) = step("keeping the lease", client.lease_keep_alive(lease)).await?;
        loop {
            let claim_txn = Txn::new()
                .when(vec![Compare::create_revision(KEY, CompareOp::Equal, 0)])
                .and_then(vec![TxnOp::put(KEY, me, Some(PutOptions::new().with_lease(lease)))])
                .or_else(vec![TxnOp::get(KEY, None)]);
            let answer = step("claiming the leadership", client.txn(claim_txn)).await?;
            let (now, revision) = if answer.succeeded() {
                // The put is the key's creation: its revision is the claim's.
                (Role::Leader, answer.header().map(|h| h.revision()))
            } else {
                let held = answer.op_responses().into_iter().find_map(|op| match op {
                    TxnOpResponse::Get(get) => get
                        .kvs()
                        .first()
                        .map(|kv| (kv.lease(), kv.mod_revision(), kv.create_revision(), kv.value().to_vec())),
                    _ => None,
                });
                match held {
                    Some((holder, _, created, _)) if holder == lease => (Role::Leader, Some(created)),
                    // Our own claim from a lease this process lost (etcd
                    // was away): clear it rather than wait for it to lapse.
                    Some((_, revision, _, value)) if value == me.as_bytes() => {
                        let clear = Txn::new()
                            .when(vec![Compare::mod_revision(KEY, CompareOp::Equal, revision)])
                            .and_then(vec![TxnOp::delete(KEY, None)]);
                        step("clearing an old claim", client.txn(clear)).await?;
                        continue;
                    }
                    Some((_, _, _, value)) => {
                        (Role::Follower(Some(String::from_utf8_lossy(&value).into_owned())), None)
                    }
                    None => continue,
                }
            };
            // The claim is known before the role says leader, so a write
            // the new leader makes at once is fenced by the right claim.
            *claim.lock().expect("claim lock") = revision;
            if role.send_if_modified(|r| set(r, now.clone())) {
                tracing::info!(leader = matches!(now, Role::Leader), "leadership changed");
            }
            tokio::time::sleep(LEASE_TTL / 5).await;
            step("renewing the lease", keeper.keep_alive()).await?;
            match step("renewing the lease", answers.message()).await? {
                Some(a) if a.ttl() > 0 => {}
                _ => return Err(ElectionError::LeaseExpired),
            }
        }
    }
    .await;
    match result {
        Ok(()) => "the campaign ended".into(),
        Err(e) => e.to_string(),
    }
}

/// Gives up the leadership at once if this process holds it, so a
/// standby takes over without waiting for the lease to lapse.
pub(crate) async fn resign(endpoints: Vec<String>, me: String) -> Result<(), ElectionError> {
    let options = ConnectOptions::new().with_connect_timeout(Duration::from_secs(2)).with_timeout(STEP);
    let mut client = step("connecting", Client::connect(endpoints, Some(options))).await?;
    let drop_ours =
        Txn::new().when(vec![Compare::value(KEY, CompareOp::Equal, me)]).and_then(vec![TxnOp::delete(KEY, None)]);
    step("resigning", client.txn(drop_ours)).await?;
    Ok(())
}
