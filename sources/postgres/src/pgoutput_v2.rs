//! The framing pgoutput protocol version 2 adds for streamed in-progress
//! transactions (`streaming 'on'`, PostgreSQL 14+): stream start, stop,
//! commit and abort, and the transaction id that every change inside a
//! stream block carries after its type byte.
//!
//! A change inside a block is handed on as the version 1 message it would
//! have been, its transaction id taken off, so the decoder never learns
//! about streaming: it sees the transaction, whole, at its commit
//! (docs/architecture.md, "Streamed transactions").

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::pgoutput::{DecodeError, Lsn};

/// One XLogData payload of a version 2 session, sorted by what the reader
/// does with it.
#[derive(Debug, Clone, PartialEq)]
pub enum Framed {
    /// Outside any stream block: a version 1 message, decoded as ever.
    Plain(Bytes),
    /// A block of changes of transaction `xid` begins; `first` on its
    /// first block.
    StreamStart {
        xid: u32,
        first: bool,
    },
    StreamStop,
    /// A change (or relation, type, message) of subtransaction `xid`
    /// inside a block: the version 1 message it stands for is `tag`
    /// followed by `body`. An origin inside a block carries no xid and is
    /// `Plain`.
    InStream {
        xid: u32,
        tag: u8,
        body: Bytes,
    },
    StreamCommit {
        xid: u32,
        flags: u8,
        commit_lsn: Lsn,
        end_lsn: Lsn,
        commit_ts: i64,
    },
    /// `subxid == xid` aborts the whole transaction; another value rolls
    /// back that subtransaction only (`ROLLBACK TO SAVEPOINT`).
    StreamAbort {
        xid: u32,
        subxid: u32,
    },
}

impl Framed {
    /// Whether a payload in a block is a row change or a logical message,
    /// the parts a rolled-back subtransaction takes with it. Relations and
    /// types stay: the server will not send them again in this transaction.
    pub fn is_change(message: &[u8]) -> bool {
        matches!(message.first(), Some(b'I' | b'U' | b'D' | b'T' | b'M'))
    }
}

fn truncated(message: &'static str, offset: usize, needed: usize) -> DecodeError {
    DecodeError::Truncated {
        message,
        offset,
        needed,
    }
}

/// Sort one payload; `in_block` says whether a stream start was seen
/// without its stop.
pub fn frame(buf: Bytes, in_block: bool) -> Result<Framed, DecodeError> {
    let Some(&tag) = buf.first() else {
        return Err(truncated("pgoutput", 0, 1));
    };
    let fixed = |name: &'static str, len: usize| -> Result<&[u8], DecodeError> {
        match buf.get(1..) {
            Some(body) if body.len() == len => Ok(body),
            Some(body) if body.len() < len => Err(truncated(name, buf.len(), len - body.len())),
            _ => Err(DecodeError::TrailingBytes {
                message: name,
                offset: 1 + len,
                count: buf.len().saturating_sub(1 + len),
            }),
        }
    };
    Ok(match tag {
        b'S' => {
            let mut body = fixed("Stream Start", 5)?;
            Framed::StreamStart {
                xid: body.get_u32(),
                first: body.get_u8() == 1,
            }
        }
        b'E' => {
            fixed("Stream Stop", 0)?;
            Framed::StreamStop
        }
        b'c' => {
            let mut body = fixed("Stream Commit", 29)?;
            Framed::StreamCommit {
                xid: body.get_u32(),
                flags: body.get_u8(),
                commit_lsn: body.get_u64(),
                end_lsn: body.get_u64(),
                commit_ts: body.get_i64(),
            }
        }
        b'A' => {
            let mut body = fixed("Stream Abort", 8)?;
            Framed::StreamAbort {
                xid: body.get_u32(),
                subxid: body.get_u32(),
            }
        }
        b'R' | b'Y' | b'I' | b'U' | b'D' | b'T' | b'M' if in_block => {
            let Some(mut xid) = buf.get(1..5) else {
                return Err(truncated("streamed change", buf.len(), 5 - buf.len()));
            };
            Framed::InStream {
                xid: xid.get_u32(),
                tag,
                body: buf.slice(5..),
            }
        }
        _ => Framed::Plain(buf),
    })
}

/// The version 2 payload of `framed`, as the server sends it: for tests
/// and tooling.
pub fn encode(framed: &Framed) -> Bytes {
    let mut b = BytesMut::new();
    match framed {
        Framed::Plain(bytes) => b.put_slice(bytes),
        Framed::StreamStart { xid, first } => {
            b.put_u8(b'S');
            b.put_u32(*xid);
            b.put_u8(u8::from(*first));
        }
        Framed::StreamStop => b.put_u8(b'E'),
        Framed::InStream { xid, tag, body } => {
            b.put_u8(*tag);
            b.put_u32(*xid);
            b.put_slice(body);
        }
        Framed::StreamCommit {
            xid,
            flags,
            commit_lsn,
            end_lsn,
            commit_ts,
        } => {
            b.put_u8(b'c');
            b.put_u32(*xid);
            b.put_u8(*flags);
            b.put_u64(*commit_lsn);
            b.put_u64(*end_lsn);
            b.put_i64(*commit_ts);
        }
        Framed::StreamAbort { xid, subxid } => {
            b.put_u8(b'A');
            b.put_u32(*xid);
            b.put_u32(*subxid);
        }
    }
    b.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pgoutput::{self, LogicalMessage, TupleData, TupleValue};

    fn insert(id: &str) -> Bytes {
        pgoutput::encode(&LogicalMessage::Insert {
            relation: 16384,
            new: TupleData(vec![TupleValue::Text(Bytes::copy_from_slice(
                id.as_bytes(),
            ))]),
        })
    }

    #[test]
    fn control_messages_round_trip() {
        for framed in [
            Framed::StreamStart {
                xid: 7,
                first: true,
            },
            Framed::StreamStart {
                xid: 7,
                first: false,
            },
            Framed::StreamStop,
            Framed::StreamCommit {
                xid: 7,
                flags: 0,
                commit_lsn: 0x1_0000_0010,
                end_lsn: 0x1_0000_0040,
                commit_ts: 123_456,
            },
            Framed::StreamAbort { xid: 7, subxid: 9 },
        ] {
            assert_eq!(frame(encode(&framed), false).unwrap(), framed);
            assert_eq!(frame(encode(&framed), true).unwrap(), framed);
        }
    }

    #[test]
    fn a_change_in_a_block_loses_its_xid_and_decodes_as_version_1() {
        let v1 = insert("42");
        let wire = encode(&Framed::InStream {
            xid: 900,
            tag: v1[0],
            body: v1.slice(1..),
        });
        assert_eq!(wire.len(), v1.len() + 4);
        let Framed::InStream { xid, tag, body } = frame(wire, true).unwrap() else {
            panic!("not a streamed change");
        };
        let mut message = BytesMut::new();
        message.put_u8(tag);
        message.put_slice(&body);
        assert_eq!((xid, &message[..]), (900, &v1[..]));
        assert!(Framed::is_change(&message));
        assert!(pgoutput::decode(message.freeze()).is_ok());
    }

    #[test]
    fn outside_a_block_changes_are_plain() {
        let v1 = insert("1");
        assert_eq!(frame(v1.clone(), false).unwrap(), Framed::Plain(v1));
        // An origin inside a block has no xid.
        let origin = pgoutput::encode(&LogicalMessage::Origin {
            commit_lsn: 5,
            name: "o".into(),
        });
        assert_eq!(frame(origin.clone(), true).unwrap(), Framed::Plain(origin));
    }

    #[test]
    fn short_and_long_control_messages_are_errors_not_panics() {
        let commit = encode(&Framed::StreamCommit {
            xid: 1,
            flags: 0,
            commit_lsn: 2,
            end_lsn: 3,
            commit_ts: 4,
        });
        for cut in 0..commit.len() {
            assert!(frame(commit.slice(..cut), false).is_err(), "cut at {cut}");
        }
        let mut long = BytesMut::from(&commit[..]);
        long.put_u8(0);
        assert!(matches!(
            frame(long.freeze(), false),
            Err(DecodeError::TrailingBytes { .. })
        ));
        assert!(frame(Bytes::from_static(b"I\0\0"), true).is_err());
    }

    #[test]
    fn relations_and_types_are_not_changes() {
        for tag in [b'R', b'Y', b'O'] {
            assert!(!Framed::is_change(&[tag]));
        }
        for tag in [b'I', b'U', b'D', b'T', b'M'] {
            assert!(Framed::is_change(&[tag]));
        }
    }
}
