//! Protocol version and heart-beat negotiation (the `accept-version`, `version` and
//! `heart-beat` headers of CONNECT/CONNECTED).

use std::fmt;

use super::error::{excerpt, StompError};

/// A STOMP protocol version. Ordered, so negotiation can pick the highest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Version {
    V1_0,
    V1_1,
    V1_2,
}

impl Version {
    /// Every version we speak, lowest first.
    pub const ALL: [Version; 3] = [Version::V1_0, Version::V1_1, Version::V1_2];

    /// The spelling used in `accept-version` and `version` headers.
    pub fn as_str(self) -> &'static str {
        match self {
            Version::V1_0 => "1.0",
            Version::V1_1 => "1.1",
            Version::V1_2 => "1.2",
        }
    }

    /// Parses one `accept-version` token, e.g. `"1.2"`.
    pub fn parse(token: &str) -> Option<Version> {
        Version::ALL.into_iter().find(|v| v.as_str() == token)
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Picks the version for a session from the client's `accept-version` header.
///
/// No header means a STOMP 1.0 client (1.0 had no such header). Otherwise the highest
/// version both sides speak; unknown tokens are ignored. `None` means nothing in common:
/// the server must answer with an ERROR frame listing its versions and close.
pub fn negotiate(accept_version: Option<&str>) -> Option<Version> {
    let Some(list) = accept_version else {
        return Some(Version::V1_0);
    };
    list.split(',')
        .filter_map(|t| Version::parse(t.trim()))
        .max()
}

/// Parses a `heart-beat` header `"cx,cy"` into milliseconds `(cx, cy)`: cx is how often the
/// sender can send heart-beats, cy how often it wants to receive them; 0 means never.
pub fn parse_heart_beat(value: &str) -> Result<(u64, u64), StompError> {
    let bad = || StompError::BadHeartBeat(excerpt(value.as_bytes()));
    let (cx, cy) = value.split_once(',').ok_or_else(bad)?;
    let parse = |s: &str| -> Result<u64, StompError> {
        let s = s.trim();
        // `u64::from_str` accepts a leading '+'; the spec's grammar is digits only.
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        s.parse().map_err(|_| bad())
    };
    Ok((parse(cx)?, parse(cy)?))
}

/// The heart-beat periods a server settles on, in milliseconds, from the client's header
/// `(cx, cy)` and the server's own `(sx, sy)`. Returns `(send_every_ms, expect_every_ms)`:
/// how often the server must send, and how often it should hear from the client
/// (0 = disabled). Per the spec, each direction is the larger of what the sender can do
/// and what the receiver wants, and is off if either side says 0.
pub fn negotiate_heart_beat(client: (u64, u64), server: (u64, u64)) -> (u64, u64) {
    let (cx, cy) = client;
    let (sx, sy) = server;
    let period = |can: u64, want: u64| {
        if can == 0 || want == 0 {
            0
        } else {
            can.max(want)
        }
    };
    (period(sx, cy), period(cx, sy))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negotiate_picks_highest_common() {
        assert_eq!(negotiate(None), Some(Version::V1_0));
        assert_eq!(negotiate(Some("1.0")), Some(Version::V1_0));
        assert_eq!(negotiate(Some("1.0,1.1")), Some(Version::V1_1));
        assert_eq!(negotiate(Some("1.2,1.0")), Some(Version::V1_2));
        assert_eq!(negotiate(Some("1.0, 1.1 ,1.2")), Some(Version::V1_2));
        assert_eq!(negotiate(Some("1.1,2.0")), Some(Version::V1_1));
        assert_eq!(negotiate(Some("2.0,3.1")), None);
        assert_eq!(negotiate(Some("")), None);
    }

    #[test]
    fn heart_beat_parses_and_rejects() {
        assert_eq!(parse_heart_beat("0,0"), Ok((0, 0)));
        assert_eq!(parse_heart_beat("10000,5000"), Ok((10_000, 5_000)));
        assert_eq!(parse_heart_beat(" 1 , 2 "), Ok((1, 2)));
        for bad in [
            "",
            "1",
            "1,",
            ",1",
            "a,b",
            "-1,0",
            "+1,0",
            "1,2,3",
            "99999999999999999999,0",
        ] {
            assert!(
                matches!(parse_heart_beat(bad), Err(StompError::BadHeartBeat(_))),
                "{bad:?} accepted"
            );
        }
    }

    #[test]
    fn heart_beat_periods() {
        // Client can send every 1 s and wants one every 5 s; server can send every 2 s and
        // wants one every 3 s.
        assert_eq!(
            negotiate_heart_beat((1000, 5000), (2000, 3000)),
            (5000, 3000)
        );
        assert_eq!(negotiate_heart_beat((0, 5000), (2000, 3000)), (5000, 0));
        assert_eq!(negotiate_heart_beat((1000, 0), (2000, 3000)), (0, 3000));
        assert_eq!(negotiate_heart_beat((1000, 1000), (0, 0)), (0, 0));
    }
}
