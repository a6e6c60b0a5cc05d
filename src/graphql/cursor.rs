use async_graphql::connection::CursorType;
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};

/// An opaque cursor over a monotonically growing key, so a page boundary
/// stays where it is while rows are added.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor(pub i64);

const PREFIX: &str = "c1:";

impl CursorType for Cursor {
    type Error = &'static str;

    fn decode_cursor(s: &str) -> Result<Self, Self::Error> {
        let raw = URL_SAFE_NO_PAD.decode(s).map_err(|_| "not base64")?;
        let text = std::str::from_utf8(&raw).map_err(|_| "not UTF-8")?;
        let n = text.strip_prefix(PREFIX).ok_or("unknown cursor")?;
        n.parse::<i64>()
            .ok()
            .filter(|n| *n > 0)
            .map(Cursor)
            .ok_or("bad cursor")
    }

    fn encode_cursor(&self) -> String {
        URL_SAFE_NO_PAD.encode(format!("{PREFIX}{}", self.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip() {
        let c = Cursor(12345);
        assert_eq!(Cursor::decode_cursor(&c.encode_cursor()), Ok(c));
    }

    #[test]
    fn forged_cursors_are_refused() {
        for bad in [
            "",
            "!!!",
            "YWJj",
            &URL_SAFE_NO_PAD.encode("c1:-1"),
            &URL_SAFE_NO_PAD.encode("c1:x"),
        ] {
            assert!(Cursor::decode_cursor(bad).is_err(), "{bad}");
        }
    }
}
