//! Keeps secrets out of every text that leaves a process: logs, errors,
//! API answers, stored run history, the UI.
//!
//! Two rules, used together:
//! - [`uri`] masks the password of any connection string it is given, found
//!   the way the MongoDB driver and `url` find it: the user info ends at the
//!   last `@` before the host, so a password may hold `/`, `?`, `#`, `@`.
//! - Every secret a process is configured with (passwords in URIs, the
//!   cluster token, object-store keys) is [`register`]ed at start; [`text`]
//!   replaces each of them, raw and percent-encoded, wherever it appears.
//!
//! [`sql`] masks the values of `OPTIONS` whose names say they are secret,
//! before SQL is stored. [`Masked`] keeps a library's error chain as the
//! source of ours with every level's text masked, so printing the chain
//! cannot leak what the library quoted back.

use std::sync::RwLock;

/// What a masked secret reads as.
pub const MASK: &str = "***";

/// Secrets this process knows, longest first (so a secret that contains
/// another is masked whole).
static SECRETS: RwLock<Vec<String>> = RwLock::new(Vec::new());

/// Secrets shorter than this are not masked in free text: masking `a`
/// everywhere would hide everything and protect nothing.
const SHORTEST: usize = 4;

/// Remembers `secret` (and its percent-decoded form) so that [`text`]
/// masks it.
pub fn register(secret: &str) {
    let mut forms = vec![secret.to_string()];
    if let Ok(decoded) = percent_decode(secret)
        && decoded != secret
    {
        forms.push(decoded);
    }
    forms.push(percent_encode(secret));
    let mut secrets = SECRETS.write().expect("secrets lock");
    for form in forms {
        if form.len() >= SHORTEST && !secrets.contains(&form) {
            secrets.push(form);
        }
    }
    secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
}

/// Registers the password of connection string `uri`, if it has one.
pub fn register_uri(uri: &str) {
    if let Some((_, password, _)) = split(uri) {
        register(password);
    }
}

/// `s` with every registered secret and every password of a connection
/// string in it masked.
pub fn text(s: &str) -> String {
    let mut out = s.to_string();
    for secret in SECRETS.read().expect("secrets lock").iter() {
        if out.contains(secret.as_str()) {
            out = out.replace(secret.as_str(), MASK);
        }
    }
    if out.contains("://") {
        out = out
            .split_inclusive(char::is_whitespace)
            .map(|word| {
                let bare = word.trim_end_matches(char::is_whitespace);
                uri(bare) + &word[bare.len()..]
            })
            .collect();
    }
    out
}

/// `uri` with the password of its user info masked; anything that is not
/// a connection string with a password comes back as it is.
pub fn uri(uri: &str) -> String {
    match split(uri) {
        Some((head, _, tail)) => format!("{head}{MASK}{tail}"),
        None => uri.to_string(),
    }
}

/// `scheme://user:`, the password, and `@host…`: the user info ends at the
/// last `@` whose following text up to `/`, `?` or the end is a host list.
fn split(uri: &str) -> Option<(&str, &str, &str)> {
    let start = uri.find("://")? + 3;
    let rest = &uri[start..];
    let at = rest.match_indices('@').map(|(i, _)| i).rfind(|&i| {
        let after = &rest[i + 1..];
        let host = &after[..after.find(['/', '?', '#']).unwrap_or(after.len())];
        !host.is_empty() && host.chars().all(|c| c.is_ascii_alphanumeric() || "-.:,[]_%".contains(c))
    })?;
    let user_info = &rest[..at];
    let colon = user_info.find(':')?;
    let password = &user_info[colon + 1..];
    if password.is_empty() {
        return None;
    }
    Some((&uri[..start + colon + 1], password, &rest[at..]))
}

/// Whether an option called `name` holds a secret (`aws.secret_access_key`,
/// `password`, `token`, `api_key`, …).
pub fn is_secret_name(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    ["secret", "password", "passwd", "token", "key", "credential"].iter().any(|w| name.contains(w))
}

/// `sql` with the value of every `'name' 'value'` pair whose name says it
/// is secret masked (as in `OPTIONS ('aws.secret_access_key' '…')`), and
/// registered secrets and URI passwords masked as by [`text`].
pub fn sql(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut literals: Vec<(usize, usize)> = Vec::new();
    // Single-quoted literals, with '' as an escaped quote.
    let bytes = sql.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\'' {
            let open = i;
            i += 1;
            while i < bytes.len() {
                if bytes[i] == b'\'' {
                    if bytes.get(i + 1) == Some(&b'\'') {
                        i += 2;
                        continue;
                    }
                    break;
                }
                i += 1;
            }
            literals.push((open, i.min(bytes.len())));
        }
        i += 1;
    }
    let mut last = 0;
    for pair in literals.windows(2) {
        let ((ns, ne), (vs, ve)) = (pair[0], pair[1]);
        // A name literal followed directly by its value literal.
        let adjacent = sql[ne + 1..vs].trim().is_empty();
        if adjacent && is_secret_name(&sql[ns + 1..ne]) && vs >= last {
            out.push_str(&sql[last..vs + 1]);
            out.push_str(MASK);
            last = ve;
        }
    }
    out.push_str(&sql[last..]);
    text(&out)
}

/// Percent-encoded as in a URI's user info (RFC 3986 unreserved kept).
fn percent_encode(s: &str) -> String {
    const USERINFO: &percent_encoding::AsciiSet =
        &percent_encoding::NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~');
    percent_encoding::utf8_percent_encode(s, USERINFO).to_string()
}

fn percent_decode(s: &str) -> Result<String, std::str::Utf8Error> {
    percent_encoding::percent_decode_str(s).decode_utf8().map(|d| d.into_owned())
}

/// An error chain with every level's message masked by [`text`] and
/// [`uri`]: what a library error said (a driver quoting the connection
/// string back, a store naming its key), safe to print at any depth.
#[derive(Debug, Clone)]
pub struct Masked {
    message: String,
    source: Option<Box<Masked>>,
}

impl Masked {
    /// Masks `e` and each of its sources, keeping their order.
    pub fn new(e: &(dyn std::error::Error + 'static)) -> Self {
        let message = text(&e.to_string());
        Self { message, source: e.source().map(|s| Box::new(Masked::new(s))) }
    }
}

impl std::fmt::Display for Masked {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Masked {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source.as_deref().map(|s| s as &(dyn std::error::Error + 'static))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uri_passwords_are_masked_whatever_they_hold() {
        assert_eq!(
            uri("mongodb://app:s3cr%40t@db:27017/x?authSource=admin"),
            "mongodb://app:***@db:27017/x?authSource=admin"
        );
        assert_eq!(uri("mongodb+srv://u:p@c.example.net"), "mongodb+srv://u:***@c.example.net");
        assert_eq!(uri("mongodb://app:p/?#@:%x@db:27017/x"), "mongodb://app:***@db:27017/x");
        assert_eq!(uri("redis://:pa/ss?w#rd@cache:6379/0"), "redis://:***@cache:6379/0");
        assert_eq!(uri("mongodb://a:b@h1:1,h2:2/?replicaSet=r"), "mongodb://a:***@h1:1,h2:2/?replicaSet=r");
        assert_eq!(uri("mongodb://127.0.0.1:27017"), "mongodb://127.0.0.1:27017");
        assert_eq!(uri("mongodb://user@h/?x=a@b"), "mongodb://user@h/?x=a@b");
        assert_eq!(uri("not a uri"), "not a uri");
    }

    #[test]
    fn registered_secrets_are_masked_raw_and_encoded() {
        register("Zx/?#@:%9-q");
        let s = "token Zx/?#@:%9-q and Zx%2F%3F%23%40%3A%259-q in a log";
        assert_eq!(text(s), "token *** and *** in a log");
        assert_eq!(
            text("connecting to mongodb://u:Zx/?#@:%9-q@db:1/x failed"),
            "connecting to mongodb://u:***@db:1/x failed"
        );
        // An unregistered password in a connection string, mid-sentence.
        assert_eq!(text("dial redis://:pw123@cache:6379 refused"), "dial redis://:***@cache:6379 refused");
        // Too short to mask in free text.
        register("ab");
        assert_eq!(text("tab"), "tab");
    }

    #[test]
    fn sql_options_that_hold_secrets_are_masked() {
        let q = "CREATE EXTERNAL TABLE t STORED AS PARQUET LOCATION 's3://b/t/' OPTIONS ('aws.access_key_id' 'AKIA1', 'aws.secret_access_key' 'wJal''rXU', 'aws.region' 'us-east-1')";
        assert_eq!(
            sql(q),
            "CREATE EXTERNAL TABLE t STORED AS PARQUET LOCATION 's3://b/t/' OPTIONS ('aws.access_key_id' '***', 'aws.secret_access_key' '***', 'aws.region' 'us-east-1')"
        );
        assert_eq!(sql("SELECT 'password', 'x'"), "SELECT 'password', 'x'");
        assert_eq!(sql("SELECT ';' AS a"), "SELECT ';' AS a");
    }

    #[test]
    fn a_masked_chain_keeps_every_level_and_no_password() {
        #[derive(Debug)]
        struct Level(&'static str, Option<Box<Level>>);
        impl std::fmt::Display for Level {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.0)
            }
        }
        impl std::error::Error for Level {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                self.1.as_deref().map(|s| s as _)
            }
        }
        let inner = Level("dial mongodb://app:hunter22@db:27017 refused", None);
        let outer = Level("server selection failed", Some(Box::new(inner)));
        let masked = Masked::new(&outer);
        let mut chain = vec![masked.to_string()];
        let mut next = std::error::Error::source(&masked);
        while let Some(e) = next {
            chain.push(e.to_string());
            next = e.source();
        }
        assert_eq!(chain, ["server selection failed", "dial mongodb://app:***@db:27017 refused"]);
    }
}
