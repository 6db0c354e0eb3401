//! Names that arrive in requests and become parts of file paths: job ids
//! (shuffle directories), run ids and attempts (archive files). One that
//! could leave its directory is refused before any path is made of it.

/// Why a name cannot be a path part.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what} '{value}' is not a plain name (letters, digits, '-', '_' and '.', not '.' or '..')")]
pub struct BadName {
    /// What the name is, for the message: "job id", "run id".
    pub what: &'static str,
    /// The name as given, shortened to 80 characters.
    pub value: String,
}

/// Accepts `value` as one path part: non-empty, at most 128 characters of
/// `[A-Za-z0-9_.-]`, and neither `.` nor `..`.
pub fn path_part(what: &'static str, value: &str) -> Result<(), BadName> {
    let plain = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
    if value.is_empty() || value.len() > 128 || value == "." || value == ".." || !value.chars().all(plain) {
        return Err(BadName { what, value: value.chars().take(80).collect() });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_names_pass() {
        for ok in ["aBc12", "kpi-20261201T2100", "0a1b2c3d_e", "v1.2"] {
            assert_eq!(path_part("job id", ok), Ok(()), "{ok}");
        }
    }

    #[test]
    fn names_that_leave_their_directory_are_refused() {
        for bad in ["", ".", "..", "../x", "a/b", "a\\b", "/etc", "a\0b", "ünï", &"x".repeat(129)] {
            let e = path_part("job id", bad).unwrap_err();
            assert_eq!(e.what, "job id", "{bad}");
        }
        assert_eq!(
            path_part("run id", "../../etc").unwrap_err().to_string(),
            "run id '../../etc' is not a plain name (letters, digits, '-', '_' and '.', not '.' or '..')"
        );
    }
}
