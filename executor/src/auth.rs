//! How the executor's ports check a caller: the cluster's token as
//! `authorization: Bearer <token>`, compared in constant time.

/// Accepts the `authorization` header `given` when it is `bearer`
/// (`Bearer <token>`); otherwise says why not.
pub fn check_bearer(given: Option<&str>, bearer: &str) -> Result<(), &'static str> {
    match given {
        Some(given) if same(given.trim(), bearer) => Ok(()),
        Some(_) => Err("the token is wrong"),
        None => Err("this executor requires the cluster's token"),
    }
}

/// Equal without telling, by timing, how much of a guess was right.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |d, (x, y)| d | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_token_passes() {
        assert_eq!(check_bearer(Some("Bearer s3cret"), "Bearer s3cret"), Ok(()));
        assert_eq!(check_bearer(Some("Bearer s3cre"), "Bearer s3cret"), Err("the token is wrong"));
        assert_eq!(check_bearer(Some("s3cret"), "Bearer s3cret"), Err("the token is wrong"));
        assert_eq!(check_bearer(None, "Bearer s3cret"), Err("this executor requires the cluster's token"));
    }
}
