//! Keep passwords out of anything printed: `scheme://user:secret@host`
//! becomes `scheme://user:***@host`, and `password=secret` (a URL's query
//! parameter, a key/value conninfo) becomes `password=***`, wherever they
//! appear in a message. One masking for every source's URLs and for the
//! logs: PostgreSQL's, which knows both forms.

pub fn redact(text: &str) -> String {
    cdc_postgres::connect::redact_text(text)
}

/// Whether `bytes` may hold a password to mask: the cheap test before
/// [`redact`] on every log line.
pub fn may_hold_password(bytes: &[u8]) -> bool {
    bytes.windows(3).any(|w| w == b"://")
        || bytes
            .windows(8)
            .any(|w| w.eq_ignore_ascii_case(b"password"))
}

#[cfg(test)]
mod tests {
    use super::{may_hold_password, redact};

    #[test]
    fn passwords_are_masked() {
        assert_eq!(
            redact("bad url postgresql://app:s3cr:et@db:5432/x?sslmode=require here"),
            "bad url postgresql://app:***@db:5432/x?sslmode=require here"
        );
        assert_eq!(
            redact("bad url postgresql://app@db/x?password=s3cret&sslmode=require here"),
            "bad url postgresql://app@db/x?password=***&sslmode=require here"
        );
        assert_eq!(
            redact("conninfo 'host=db user=app password=s3cret dbname=x'"),
            "conninfo 'host=db user=app password=*** dbname=x'"
        );
        assert_eq!(
            redact("mongodb://cdc:s3cret@db1:27017/?replicaSet=rs0"),
            "mongodb://cdc:***@db1:27017/?replicaSet=rs0"
        );
        assert_eq!(redact("postgresql://app@db/x"), "postgresql://app@db/x");
        assert_eq!(redact("no url"), "no url");
    }

    #[test]
    fn the_cheap_test_lets_no_password_through() {
        for text in ["x postgresql://a:b@c", "x PASSWORD=y", "x sslpassword='y'"] {
            assert!(may_hold_password(text.as_bytes()), "{text}");
        }
        assert!(!may_hold_password(b"streaming from 0/16B3748"));
    }
}
