//! Resume tokens and cdc positions.
//!
//! A change stream's resume token is `{_data: "<hex>"}`: a KeyString whose
//! first component is the event's cluster time, type byte `0x82` then the
//! BSON Timestamp as 8 big-endian bytes (seconds, increment). Debezium reads
//! it the same way (`ResumeTokens.getTimestamp`: first byte 130, then a
//! big-endian long). KeyStrings compare as bytes in the server's order.
//!
//! A [`Position`] is the cluster time (seconds, increment; big-endian) and
//! then the whole token's bytes: byte order is cluster-time order first,
//! then the server's KeyString order among events of one cluster time
//! (a transaction's operations share it), and the token comes back out of
//! the position to resume from.

use std::fmt::Write as _;

use bson::{doc, Bson, Document};
use cdc_engine::Position;
use thiserror::Error;

/// KeyString's type byte of a Timestamp.
const TIMESTAMP_TYPE: u8 = 0x82;

/// A BSON Timestamp: the oplog's cluster time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ClusterTime {
    pub seconds: u32,
    pub increment: u32,
}

impl ClusterTime {
    /// As one number, seconds in the high half (`BsonTimestamp.getValue()`).
    pub fn as_u64(self) -> u64 {
        (u64::from(self.seconds) << 32) | u64::from(self.increment)
    }

    pub fn from_u64(value: u64) -> Self {
        ClusterTime {
            seconds: (value >> 32) as u32,
            increment: value as u32,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ResumeTokenError {
    #[error("resume token has no _data")]
    MissingData,
    /// MongoDB 3.6's binary `_data` included: cdc needs 4.0.7's hex form.
    #[error("resume token _data is {0:?}, not a hex string")]
    DataNotString(bson::spec::ElementType),
    #[error("resume token _data is not hex: {0:?}")]
    NotHex(String),
    #[error("resume token _data is empty")]
    Empty,
    #[error("resume token _data does not start with a timestamp (type byte {0:#04x}, not 0x82)")]
    NotTimestamp(u8),
    #[error("resume token _data ends inside its timestamp ({0} bytes)")]
    Truncated(usize),
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("position {0} is not a MongoDB resume position")]
pub struct PositionError(pub String);

/// The KeyString bytes of a token's `_data`.
fn token_bytes(token: &Document) -> Result<Vec<u8>, ResumeTokenError> {
    let data = match token.get("_data") {
        None => return Err(ResumeTokenError::MissingData),
        Some(Bson::String(hex)) => hex,
        Some(other) => return Err(ResumeTokenError::DataNotString(other.element_type())),
    };
    let not_hex = || ResumeTokenError::NotHex(data.clone());
    if data.len() % 2 != 0 {
        return Err(not_hex());
    }
    (0..data.len())
        .step_by(2)
        .map(|i| {
            data.get(i..i + 2)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(not_hex)
        })
        .collect()
}

/// The cluster time leading KeyString `bytes`.
fn leading_time(bytes: &[u8]) -> Result<ClusterTime, ResumeTokenError> {
    match bytes {
        [] => Err(ResumeTokenError::Empty),
        [TIMESTAMP_TYPE, rest @ ..] => {
            let time: [u8; 8] = rest
                .get(..8)
                .and_then(|t| t.try_into().ok())
                .ok_or(ResumeTokenError::Truncated(bytes.len()))?;
            Ok(ClusterTime::from_u64(u64::from_be_bytes(time)))
        }
        [other, ..] => Err(ResumeTokenError::NotTimestamp(*other)),
    }
}

/// The cluster time a resume token starts with.
pub fn cluster_time_of(token: &Document) -> Result<ClusterTime, ResumeTokenError> {
    leading_time(&token_bytes(token)?)
}

/// The position of a resume token (see the module doc).
pub fn position_of(token: &Document) -> Result<Position, ResumeTokenError> {
    let bytes = token_bytes(token)?;
    let time = leading_time(&bytes)?;
    let mut position = Vec::with_capacity(8 + bytes.len());
    position.extend_from_slice(&time.seconds.to_be_bytes());
    position.extend_from_slice(&time.increment.to_be_bytes());
    position.extend_from_slice(&bytes);
    Ok(Position::from_bytes(position))
}

/// The resume token a position was made from, `{_data: "<HEX>"}` in the
/// upper case the server writes.
pub fn token_of(position: &Position) -> Result<Document, PositionError> {
    let bytes = position.as_bytes();
    let bad = || PositionError(position.to_hex());
    let token = bytes.get(8..).ok_or_else(bad)?;
    let time = leading_time(token).map_err(|_| bad())?;
    if bytes.get(..8) != Some(&time.as_u64().to_be_bytes()[..]) {
        return Err(bad());
    }
    let mut hex = String::with_capacity(token.len() * 2);
    for b in token {
        let _ = write!(hex, "{b:02X}");
    }
    Ok(doc! { "_data": hex })
}

/// The cluster time of a position made by [`position_of`].
pub fn cluster_time_of_position(position: &Position) -> Result<ClusterTime, PositionError> {
    let head: [u8; 8] = position
        .as_bytes()
        .get(..8)
        .and_then(|h| h.try_into().ok())
        .ok_or_else(|| PositionError(position.to_hex()))?;
    Ok(ClusterTime::from_u64(u64::from_be_bytes(head)))
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn token(hex: &str) -> Document {
        doc! { "_data": hex }
    }

    fn hex_token(time: ClusterTime, tail: &[u8]) -> Document {
        let mut hex = format!("82{:016X}", time.as_u64());
        for b in tail {
            hex.push_str(&format!("{b:02X}"));
        }
        token(&hex)
    }

    /// The token of MongoDB's "Change Events" reference example.
    const EXAMPLE: &str = "82635019A0000000012B022C0100296E5A1004AB1154ACACD849A48C61756D70D3B21F463C6F7065726174696F6E54797065003C696E736572740046646F63756D656E744B65790046645F69640064635019A078BE67426D7CF4D2000004";

    #[test]
    fn the_reference_example_token() {
        let t = token(EXAMPLE);
        let time = cluster_time_of(&t).unwrap();
        assert_eq!(
            time,
            ClusterTime {
                seconds: 0x6350_19A0,
                increment: 1
            }
        );
        let position = position_of(&t).unwrap();
        assert_eq!(
            &position.as_bytes()[..8],
            &[0x63, 0x50, 0x19, 0xA0, 0, 0, 0, 1]
        );
        assert_eq!(token_of(&position).unwrap(), t);
        assert_eq!(cluster_time_of_position(&position).unwrap(), time);
    }

    #[test]
    fn tokens_without_a_leading_timestamp_are_typed_errors() {
        assert_eq!(
            cluster_time_of(&doc! {}),
            Err(ResumeTokenError::MissingData)
        );
        assert_eq!(cluster_time_of(&token("")), Err(ResumeTokenError::Empty));
        assert_eq!(
            cluster_time_of(&token("C3000000")),
            Err(ResumeTokenError::NotTimestamp(0xc3))
        );
        assert_eq!(
            cluster_time_of(&token("8263501234")),
            Err(ResumeTokenError::Truncated(5))
        );
        assert_eq!(
            cluster_time_of(&token("82x")),
            Err(ResumeTokenError::NotHex("82x".into()))
        );
        assert_eq!(
            cluster_time_of(&token("8é")),
            Err(ResumeTokenError::NotHex("8é".into()))
        );
        assert_eq!(
            cluster_time_of(&doc! { "_data": 5 }),
            Err(ResumeTokenError::DataNotString(
                bson::spec::ElementType::Int32
            ))
        );
    }

    #[test]
    fn positions_not_made_from_tokens_are_refused() {
        assert!(token_of(&Position::from_u64(7)).is_err());
        let mut bytes = position_of(&token(EXAMPLE)).unwrap().as_bytes().to_vec();
        bytes[7] ^= 1;
        assert!(token_of(&Position::from_bytes(bytes)).is_err());
        assert!(cluster_time_of_position(&Position::from_bytes(vec![1, 2])).is_err());
    }

    fn arb_time() -> impl Strategy<Value = ClusterTime> {
        (any::<u32>(), any::<u32>())
            .prop_map(|(seconds, increment)| ClusterTime { seconds, increment })
    }

    proptest! {
        #[test]
        fn position_order_is_cluster_time_order(
            a in arb_time(), b in arb_time(),
            ta in proptest::collection::vec(any::<u8>(), 0..40),
            tb in proptest::collection::vec(any::<u8>(), 0..40),
        ) {
            let pa = position_of(&hex_token(a, &ta)).unwrap();
            let pb = position_of(&hex_token(b, &tb)).unwrap();
            if a != b {
                prop_assert_eq!(pa.cmp(&pb), a.cmp(&b));
            } else {
                // Same cluster time: the KeyStrings' own byte order.
                prop_assert_eq!(pa.cmp(&pb), ta.cmp(&tb));
            }
        }

        #[test]
        fn tokens_round_trip_through_positions(
            t in arb_time(), tail in proptest::collection::vec(any::<u8>(), 0..40)
        ) {
            let token = hex_token(t, &tail);
            let position = position_of(&token).unwrap();
            prop_assert_eq!(token_of(&position).unwrap(), token);
            prop_assert_eq!(cluster_time_of_position(&position).unwrap(), t);
            prop_assert_eq!(ClusterTime::from_u64(t.as_u64()), t);
        }

        #[test]
        fn lower_case_hex_reads_the_same(t in arb_time()) {
            let upper = hex_token(t, &[0x2b, 0x02]);
            let lower = token(&upper.get_str("_data").unwrap().to_lowercase());
            prop_assert_eq!(position_of(&lower).unwrap(), position_of(&upper).unwrap());
        }
    }
}
