//! The cluster credential as every port checks it: `authorization: Bearer
//! <token>`, compared in constant time. One check for the scheduler's and
//! the executors' ports, so they refuse alike.

/// Accepts the `authorization` header `given` when it is `bearer`
/// (`Bearer <token>`); otherwise says why not, naming `who` requires it.
pub fn check(given: Option<&str>, bearer: &str, who: &'static str) -> Result<(), String> {
    match given {
        Some(given) if same(given.trim(), bearer) => Ok(()),
        Some(_) => Err("the token is wrong".into()),
        None => Err(format!("this {who} requires the cluster's token")),
    }
}

/// Equal without telling, by timing, how much of a guess was right.
pub fn same(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |d, (x, y)| d | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_token_passes() {
        assert_eq!(check(Some("Bearer s3cret"), "Bearer s3cret", "executor"), Ok(()));
        assert_eq!(check(Some("Bearer s3cre"), "Bearer s3cret", "executor"), Err("the token is wrong".into()));
        assert_eq!(check(Some("s3cret"), "Bearer s3cret", "executor"), Err("the token is wrong".into()));
        assert_eq!(check(None, "Bearer s3cret", "executor"), Err("this executor requires the cluster's token".into()));
        assert!(same("", "") && !same("a", "ab"));
    }
}
