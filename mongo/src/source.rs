//! Where a process reads MongoDB from: its own connection string, which
//! never leaves the process (plans carry collection names only).

use std::fmt;
use std::time::Duration;

use mongodb::options::ClientOptions;
use mongodb::{Client, Database};
use tokio::sync::OnceCell;

/// How long one round trip of a read may wait for MongoDB by default
/// (`--mongo-timeout`; the driver takes no socket timeout).
pub const ROUND_TRIP: Duration = Duration::from_secs(30);

/// A MongoDB database this process reads, connected on first use.
pub struct MongoSource {
    uri: String,
    database: String,
    client: OnceCell<Client>,
    /// How long one round trip of a read may wait.
    round_trip: Duration,
}

impl fmt::Debug for MongoSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MongoSource").field("uri", &redact(&self.uri)).field("database", &self.database).finish()
    }
}

/// Why MongoDB could not be used. Its `Debug` is its message: Ballista
/// passes task errors on in debug form.
#[derive(Clone, thiserror::Error)]
pub enum MongoError {
    /// The connection string does not parse.
    #[error("invalid MongoDB connection string {uri}: {message}")]
    Uri {
        /// The connection string, password masked.
        uri: String,
        /// Why it does not parse, password masked.
        message: String,
    },
    /// A MongoDB operation failed.
    #[error("MongoDB ({uri}) {action} failed: {message}")]
    Operation {
        /// The connection string, password masked.
        uri: String,
        /// What was being done, e.g. `measuring the database (dbStats)`.
        action: String,
        /// The driver's message, minus labels and reply dump; password masked.
        message: String,
        /// The driver's error chain, masked.
        #[source]
        source: stockyard_mask::Masked,
    },
}

impl fmt::Debug for MongoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl MongoSource {
    /// A source for `database` at `uri`; nothing connects until first use.
    pub fn new(uri: impl Into<String>, database: impl Into<String>) -> Self {
        let uri = uri.into();
        stockyard_mask::register_uri(&uri);
        Self { uri, database: database.into(), client: OnceCell::new(), round_trip: ROUND_TRIP }
    }

    /// The same source with reads waiting at most `limit` a round trip.
    pub fn with_round_trip(mut self, limit: Duration) -> Self {
        self.round_trip = limit;
        self
    }

    /// The database name.
    pub fn database_name(&self) -> &str {
        &self.database
    }

    /// The connection string with any password masked, for messages.
    pub fn redacted_uri(&self) -> String {
        redact(&self.uri)
    }

    /// An error for `action`, with a redacted connection string.
    pub fn error(&self, action: &str, e: impl std::error::Error + 'static) -> MongoError {
        // Driver messages can quote the connection string back, and end in
        // labels and a hex dump of the server's reply: keep the part a
        // person reads.
        let full = e.to_string();
        let message = full.split(", labels: ").next().unwrap_or(&full).trim_start_matches("Kind: ");
        let message = message.replace(&self.uri, &self.redacted_uri());
        let source = stockyard_mask::Masked::new(&e);
        MongoError::Operation { uri: self.redacted_uri(), action: action.to_string(), message, source }
    }

    /// The connected client. Timeouts default to 10 s for finding a server
    /// and 5 s for connecting, so an unreachable MongoDB fails a query
    /// quickly; settings in the connection string win.
    pub async fn client(&self) -> Result<&Client, MongoError> {
        self.client
            .get_or_try_init(|| async {
                let mut options = ClientOptions::parse(&self.uri).await.map_err(|e| MongoError::Uri {
                    uri: self.redacted_uri(),
                    message: e.to_string().replace(&self.uri, &self.redacted_uri()),
                })?;
                options.app_name.get_or_insert_with(|| "stockyard".into());
                options.server_selection_timeout.get_or_insert(Duration::from_secs(10));
                options.connect_timeout.get_or_insert(Duration::from_secs(5));
                Client::with_options(options).map_err(|e| self.error("connecting", e))
            })
            .await
    }

    /// How long one round trip of a read may wait.
    pub fn round_trip(&self) -> Duration {
        self.round_trip
    }

    /// The error for `action` that got no answer within the round trip.
    pub fn no_answer(&self, action: &str) -> MongoError {
        let limit = self.round_trip();
        let e =
            std::io::Error::new(std::io::ErrorKind::TimedOut, format!("no answer within {} s", limit.as_secs_f64()));
        self.error(action, e)
    }

    /// Awaits one round trip of a read (`op`, doing `action`): a MongoDB
    /// that accepts connections and then stalls fails the read after
    /// [`MongoSource::round_trip`] instead of hanging it for ever.
    pub async fn answer<T>(
        &self,
        action: &str,
        op: impl std::future::Future<Output = Result<T, mongodb::error::Error>>,
    ) -> Result<T, MongoError> {
        match tokio::time::timeout(self.round_trip(), op).await {
            Ok(result) => result.map_err(|e| self.error(action, e)),
            Err(_) => Err(self.no_answer(action)),
        }
    }

    /// The next item of a cursor (`next`, reading for `action`) within
    /// one round trip, as [`MongoSource::answer`] awaits a call.
    pub async fn next<T>(
        &self,
        action: &str,
        next: impl std::future::Future<Output = Option<Result<T, mongodb::error::Error>>>,
    ) -> Result<Option<T>, MongoError> {
        match tokio::time::timeout(self.round_trip(), next).await {
            Ok(item) => item.transpose().map_err(|e| self.error(action, e)),
            Err(_) => Err(self.no_answer(action)),
        }
    }

    /// The database handle.
    pub async fn database(&self) -> Result<Database, MongoError> {
        Ok(self.client().await?.database(&self.database))
    }
}

/// `uri` with the password of its user info replaced by `***` (see
/// `stockyard_mask::uri`).
pub fn redact(uri: &str) -> String {
    stockyard_mask::uri(uri)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_show() {
        assert_eq!(
            redact("mongodb://app:s3cr%40t@db:27017/x?authSource=admin"),
            "mongodb://app:***@db:27017/x?authSource=admin"
        );
        assert_eq!(redact("mongodb+srv://u:p@c.example.net"), "mongodb+srv://u:***@c.example.net");
        assert_eq!(redact("mongodb://127.0.0.1:27017"), "mongodb://127.0.0.1:27017");
        assert_eq!(redact("mongodb://user@h/?x=a@b"), "mongodb://user@h/?x=a@b");
        assert_eq!(redact("mongodb://app:p/?#@:%x@db:27017/x"), "mongodb://app:***@db:27017/x");
        let s = MongoSource::new("mongodb://a:hunter2@h", "d");
        assert!(!format!("{s:?}").contains("hunter2"));
    }
}
