//! One-line rendering of an error with its causes, for messages and logs.

/// Renders `err` and its sources on one line, outermost first, joined by
/// `": "`; a cause whose text is already shown is left out (hyper and the AWS
/// SDK often repeat their inner error in the outer message).
///
/// ```
/// let io = std::io::Error::new(std::io::ErrorKind::Other, "connection reset");
/// assert_eq!(signet::error_chain::error_chain(&io), "connection reset");
/// ```
pub fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut out = err.to_string();
    let mut source = err.source();
    while let Some(inner) = source {
        let text = inner.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = inner.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Outer(std::io::Error);
    impl std::fmt::Display for Outer {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("request failed")
        }
    }
    impl std::error::Error for Outer {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.0)
        }
    }

    #[test]
    fn joins_causes_and_skips_repeated_text() {
        let e = Outer(std::io::Error::other("connection reset by peer"));
        assert_eq!(error_chain(&e), "request failed: connection reset by peer");
        let repeated = Outer(std::io::Error::other("request failed"));
        assert_eq!(error_chain(&repeated), "request failed");
    }
}
