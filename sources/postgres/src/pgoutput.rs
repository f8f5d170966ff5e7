//! Decoder (and encoder, for tests and tooling) of the pgoutput logical
//! replication protocol, version 1: one message per XLogData payload.
//!
//! Decoding never panics: every read is bounds-checked and every malformed
//! input becomes a [`DecodeError`] naming the message and the byte offset.
//! Column values are slices of the input buffer, so a row costs no copies of
//! its data.

use bytes::{BufMut, Bytes, BytesMut};

/// A WAL position.
pub type Lsn = u64;
/// A PostgreSQL object id.
pub type Oid = u32;

/// One decoded pgoutput message.
#[derive(Debug, Clone, PartialEq)]
pub enum LogicalMessage {
    /// `commit_ts` is in microseconds since 2000-01-01 00:00:00 UTC.
    Begin {
        final_lsn: Lsn,
        commit_ts: i64,
        xid: u32,
    },
    Commit {
        flags: u8,
        commit_lsn: Lsn,
        end_lsn: Lsn,
        commit_ts: i64,
    },
    Origin {
        commit_lsn: Lsn,
        name: String,
    },
    Relation(Relation),
    Type {
        oid: Oid,
        namespace: String,
        name: String,
    },
    Insert {
        relation: Oid,
        new: TupleData,
    },
    Update {
        relation: Oid,
        old: Option<OldTuple>,
        new: TupleData,
    },
    Delete {
        relation: Oid,
        old: OldTuple,
    },
    Truncate {
        relations: Vec<Oid>,
        cascade: bool,
        restart_identity: bool,
    },
    Message {
        transactional: bool,
        lsn: Lsn,
        prefix: String,
        content: Bytes,
    },
}

/// A table's description, sent before its first row in a session and again
/// whenever it changes.
#[derive(Debug, Clone, PartialEq)]
pub struct Relation {
    pub oid: Oid,
    /// As sent: the empty string stands for `pg_catalog`.
    pub namespace: String,
    pub name: String,
    pub replica_identity: ReplicaIdentity,
    pub columns: Vec<RelationColumn>,
}

/// `REPLICA IDENTITY` setting of a table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplicaIdentity {
    Default,
    Nothing,
    Full,
    Index,
}

impl ReplicaIdentity {
    fn from_byte(b: u8) -> Option<Self> {
        match b {
            b'd' => Some(ReplicaIdentity::Default),
            b'n' => Some(ReplicaIdentity::Nothing),
            b'f' => Some(ReplicaIdentity::Full),
            b'i' => Some(ReplicaIdentity::Index),
            _ => None,
        }
    }

    fn to_byte(self) -> u8 {
        match self {
            ReplicaIdentity::Default => b'd',
            ReplicaIdentity::Nothing => b'n',
            ReplicaIdentity::Full => b'f',
            ReplicaIdentity::Index => b'i',
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct RelationColumn {
    /// Part of the replica identity key (flag bit 1).
    pub is_key: bool,
    pub name: String,
    pub type_oid: Oid,
    pub type_modifier: i32,
}

/// The old row of an update or delete.
#[derive(Debug, Clone, PartialEq)]
pub enum OldTuple {
    /// Only the replica identity key columns (`'K'`); others are null.
    Key(TupleData),
    /// The whole old row (`'O'`, replica identity full).
    Full(TupleData),
}

#[derive(Debug, Clone, PartialEq)]
pub struct TupleData(pub Vec<TupleValue>);

/// One column of a row.
#[derive(Debug, Clone, PartialEq)]
pub enum TupleValue {
    Null,
    /// A TOASTed value that did not change; the server did not send it.
    UnchangedToast,
    /// The value in text output format.
    Text(Bytes),
    /// The value in binary format (only with the `binary` option).
    Binary(Bytes),
}

/// Why a message could not be decoded. `message` names the message kind and
/// `offset` is the byte position in the payload where the problem is.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum DecodeError {
    #[error("{message} message truncated at byte {offset}: needed {needed} more bytes")]
    Truncated {
        message: &'static str,
        offset: usize,
        needed: usize,
    },
    #[error("unknown pgoutput message type {tag:?} (0x{0:02x})", tag = char::from(*.0))]
    UnknownMessage(u8),
    #[error("{message} message: unknown tuple column kind 0x{kind:02x} at byte {offset}")]
    UnknownTupleKind {
        message: &'static str,
        offset: usize,
        kind: u8,
    },
    #[error("{message} message: expected {expected} at byte {offset}, found 0x{found:02x}")]
    UnexpectedByte {
        message: &'static str,
        offset: usize,
        expected: &'static str,
        found: u8,
    },
    #[error("{message} message: string at byte {offset} is not valid UTF-8")]
    InvalidUtf8 {
        message: &'static str,
        offset: usize,
    },
    #[error("{message} message: string at byte {offset} has no NUL terminator")]
    MissingNul {
        message: &'static str,
        offset: usize,
    },
    #[error("{message} message: {count} trailing bytes after byte {offset}")]
    TrailingBytes {
        message: &'static str,
        offset: usize,
        count: usize,
    },
    #[error("{message} message: {reason} at byte {offset}")]
    Invalid {
        message: &'static str,
        offset: usize,
        reason: &'static str,
    },
}

/// Bounds-checked big-endian reader over one message.
struct Reader {
    buf: Bytes,
    pos: usize,
    message: &'static str,
}

impl Reader {
    fn remaining(&self) -> usize {
        self.buf.len().saturating_sub(self.pos)
    }

    fn take<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let end = self.pos.saturating_add(N);
        let bytes = self
            .buf
            .get(self.pos..end)
            .and_then(|s| <[u8; N]>::try_from(s).ok())
            .ok_or_else(|| self.truncated(N))?;
        self.pos = end;
        Ok(bytes)
    }

    fn truncated(&self, needed: usize) -> DecodeError {
        DecodeError::Truncated {
            message: self.message,
            offset: self.pos,
            needed: needed.saturating_sub(self.remaining()),
        }
    }

    fn invalid(&self, offset: usize, reason: &'static str) -> DecodeError {
        DecodeError::Invalid {
            message: self.message,
            offset,
            reason,
        }
    }

    fn u8(&mut self) -> Result<u8, DecodeError> {
        let [b] = self.take::<1>()?;
        Ok(b)
    }

    fn i32(&mut self) -> Result<i32, DecodeError> {
        Ok(i32::from_be_bytes(self.take()?))
    }

    fn u32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_be_bytes(self.take()?))
    }

    fn i64(&mut self) -> Result<i64, DecodeError> {
        Ok(i64::from_be_bytes(self.take()?))
    }

    fn u64(&mut self) -> Result<u64, DecodeError> {
        Ok(u64::from_be_bytes(self.take()?))
    }

    /// A non-negative Int32 count or length.
    fn len32(&mut self, what: &'static str) -> Result<usize, DecodeError> {
        let at = self.pos;
        let n = self.i32()?;
        usize::try_from(n).map_err(|_| self.invalid(at, what))
    }

    /// A non-negative Int16 count.
    fn len16(&mut self, what: &'static str) -> Result<usize, DecodeError> {
        let at = self.pos;
        let n = i16::from_be_bytes(self.take()?);
        usize::try_from(n).map_err(|_| self.invalid(at, what))
    }

    fn bytes(&mut self, len: usize) -> Result<Bytes, DecodeError> {
        let end = self.pos.saturating_add(len);
        if end > self.buf.len() {
            return Err(self.truncated(len));
        }
        let out = self.buf.slice(self.pos..end);
        self.pos = end;
        Ok(out)
    }

    fn string(&mut self) -> Result<String, DecodeError> {
        let at = self.pos;
        let rest = self.buf.get(at..).unwrap_or_default();
        let nul = rest
            .iter()
            .position(|&b| b == 0)
            .ok_or(DecodeError::MissingNul {
                message: self.message,
                offset: at,
            })?;
        let raw = rest.get(..nul).unwrap_or_default();
        let s = std::str::from_utf8(raw).map_err(|_| DecodeError::InvalidUtf8 {
            message: self.message,
            offset: at,
        })?;
        self.pos = at + nul + 1;
        Ok(s.to_owned())
    }

    fn tuple(&mut self) -> Result<TupleData, DecodeError> {
        let ncols = self.len16("negative column count")?;
        // Each column takes at least one byte; capping by what is left keeps a
        // lying count from reserving memory the message cannot fill.
        let mut values = Vec::with_capacity(ncols.min(self.remaining()));
        for _ in 0..ncols {
            let at = self.pos;
            let value = match self.u8()? {
                b'n' => TupleValue::Null,
                b'u' => TupleValue::UnchangedToast,
                b't' => {
                    let len = self.len32("negative value length")?;
                    TupleValue::Text(self.bytes(len)?)
                }
                b'b' => {
                    let len = self.len32("negative value length")?;
                    TupleValue::Binary(self.bytes(len)?)
                }
                kind => {
                    return Err(DecodeError::UnknownTupleKind {
                        message: self.message,
                        offset: at,
                        kind,
                    })
                }
            };
            values.push(value);
        }
        Ok(TupleData(values))
    }

    fn unexpected(&self, offset: usize, expected: &'static str, found: u8) -> DecodeError {
        DecodeError::UnexpectedByte {
            message: self.message,
            offset,
            expected,
            found,
        }
    }

    fn expect(&mut self, want: u8, expected: &'static str) -> Result<(), DecodeError> {
        let at = self.pos;
        match self.u8()? {
            found if found == want => Ok(()),
            found => Err(self.unexpected(at, expected, found)),
        }
    }

    /// An old tuple if one follows (`'K'` or `'O'` + TupleData); any other
    /// byte is left unread.
    fn old_tuple(&mut self) -> Result<Option<OldTuple>, DecodeError> {
        let kind: fn(TupleData) -> OldTuple = match self.buf.get(self.pos) {
            Some(b'K') => OldTuple::Key,
            Some(b'O') => OldTuple::Full,
            _ => return Ok(None),
        };
        self.pos += 1;
        Ok(Some(kind(self.tuple()?)))
    }

    fn finish(&self) -> Result<(), DecodeError> {
        match self.remaining() {
            0 => Ok(()),
            count => Err(DecodeError::TrailingBytes {
                message: self.message,
                offset: self.pos,
                count,
            }),
        }
    }
}

fn message_name(tag: u8) -> Option<&'static str> {
    Some(match tag {
        b'B' => "Begin",
        b'C' => "Commit",
        b'O' => "Origin",
        b'R' => "Relation",
        b'Y' => "Type",
        b'I' => "Insert",
        b'U' => "Update",
        b'D' => "Delete",
        b'T' => "Truncate",
        b'M' => "Message",
        _ => return None,
    })
}

/// Decode one pgoutput message (the payload of an XLogData frame).
pub fn decode(buf: Bytes) -> Result<LogicalMessage, DecodeError> {
    let Some(&tag) = buf.first() else {
        return Err(DecodeError::Truncated {
            message: "pgoutput",
            offset: 0,
            needed: 1,
        });
    };
    let message = message_name(tag).ok_or(DecodeError::UnknownMessage(tag))?;
    let mut r = Reader {
        buf,
        pos: 1,
        message,
    };
    let msg = match tag {
        b'B' => LogicalMessage::Begin {
            final_lsn: r.u64()?,
            commit_ts: r.i64()?,
            xid: r.u32()?,
        },
        b'C' => LogicalMessage::Commit {
            flags: r.u8()?,
            commit_lsn: r.u64()?,
            end_lsn: r.u64()?,
            commit_ts: r.i64()?,
        },
        b'O' => LogicalMessage::Origin {
            commit_lsn: r.u64()?,
            name: r.string()?,
        },
        b'R' => decode_relation(&mut r)?,
        b'Y' => LogicalMessage::Type {
            oid: r.u32()?,
            namespace: r.string()?,
            name: r.string()?,
        },
        b'I' => {
            let relation = r.u32()?;
            r.expect(b'N', "'N' (new tuple)")?;
            LogicalMessage::Insert {
                relation,
                new: r.tuple()?,
            }
        }
        b'U' => {
            let relation = r.u32()?;
            let old = r.old_tuple()?;
            let expected = match old {
                Some(_) => "'N' (new tuple)",
                None => "'K', 'O' or 'N'",
            };
            r.expect(b'N', expected)?;
            LogicalMessage::Update {
                relation,
                old,
                new: r.tuple()?,
            }
        }
        b'D' => {
            let relation = r.u32()?;
            let at = r.pos;
            let Some(old) = r.old_tuple()? else {
                let found = r.u8()?;
                return Err(r.unexpected(at, "'K' or 'O'", found));
            };
            LogicalMessage::Delete { relation, old }
        }
        b'T' => {
            let nrels = r.len32("negative relation count")?;
            let options = r.u8()?;
            let mut relations = Vec::with_capacity(nrels.min(r.remaining() / 4));
            for _ in 0..nrels {
                relations.push(r.u32()?);
            }
            // Unknown option bits are ignored: they cannot change which
            // tables were truncated.
            LogicalMessage::Truncate {
                relations,
                cascade: options & 1 != 0,
                restart_identity: options & 2 != 0,
            }
        }
        b'M' => {
            let flags = r.u8()?;
            let lsn = r.u64()?;
            let prefix = r.string()?;
            let len = r.len32("negative content length")?;
            LogicalMessage::Message {
                transactional: flags & 1 != 0,
                lsn,
                prefix,
                content: r.bytes(len)?,
            }
        }
        // `message_name` accepted only the tags handled above.
        _ => return Err(DecodeError::UnknownMessage(tag)),
    };
    r.finish()?;
    Ok(msg)
}

fn decode_relation(r: &mut Reader) -> Result<LogicalMessage, DecodeError> {
    let oid = r.u32()?;
    let namespace = r.string()?;
    let name = r.string()?;
    let at = r.pos;
    let ri = r.u8()?;
    let replica_identity = ReplicaIdentity::from_byte(ri)
        .ok_or_else(|| r.unexpected(at, "replica identity 'd', 'n', 'f' or 'i'", ri))?;
    let ncols = r.len16("negative column count")?;
    // A column takes at least 10 bytes (flags, NUL, oid, typmod).
    let mut columns = Vec::with_capacity(ncols.min(r.remaining() / 10));
    for _ in 0..ncols {
        let flags = r.u8()?;
        columns.push(RelationColumn {
            is_key: flags & 1 != 0,
            name: r.string()?,
            type_oid: r.u32()?,
            type_modifier: r.i32()?,
        });
    }
    Ok(LogicalMessage::Relation(Relation {
        oid,
        namespace,
        name,
        replica_identity,
        columns,
    }))
}

/// Encode a message in pgoutput v1 format; `decode(encode(m)) == m`.
///
/// For tests and tooling. Strings with interior NUL bytes, and more than
/// `i16::MAX` columns or `i32::MAX` bytes, cannot be represented: such
/// messages encode without panicking but do not decode back to themselves.
pub fn encode(msg: &LogicalMessage) -> Bytes {
    let mut b = BytesMut::with_capacity(64);
    match msg {
        LogicalMessage::Begin {
            final_lsn,
            commit_ts,
            xid,
        } => {
            b.put_u8(b'B');
            b.put_u64(*final_lsn);
            b.put_i64(*commit_ts);
            b.put_u32(*xid);
        }
        LogicalMessage::Commit {
            flags,
            commit_lsn,
            end_lsn,
            commit_ts,
        } => {
            b.put_u8(b'C');
            b.put_u8(*flags);
            b.put_u64(*commit_lsn);
            b.put_u64(*end_lsn);
            b.put_i64(*commit_ts);
        }
        LogicalMessage::Origin { commit_lsn, name } => {
            b.put_u8(b'O');
            b.put_u64(*commit_lsn);
            put_string(&mut b, name);
        }
        LogicalMessage::Relation(rel) => {
            b.put_u8(b'R');
            b.put_u32(rel.oid);
            put_string(&mut b, &rel.namespace);
            put_string(&mut b, &rel.name);
            b.put_u8(rel.replica_identity.to_byte());
            b.put_i16(saturating_i16(rel.columns.len()));
            for col in &rel.columns {
                b.put_u8(u8::from(col.is_key));
                put_string(&mut b, &col.name);
                b.put_u32(col.type_oid);
                b.put_i32(col.type_modifier);
            }
        }
        LogicalMessage::Type {
            oid,
            namespace,
            name,
        } => {
            b.put_u8(b'Y');
            b.put_u32(*oid);
            put_string(&mut b, namespace);
            put_string(&mut b, name);
        }
        LogicalMessage::Insert { relation, new } => {
            b.put_u8(b'I');
            b.put_u32(*relation);
            b.put_u8(b'N');
            put_tuple(&mut b, new);
        }
        LogicalMessage::Update { relation, old, new } => {
            b.put_u8(b'U');
            b.put_u32(*relation);
            if let Some(old) = old {
                put_old(&mut b, old);
            }
            b.put_u8(b'N');
            put_tuple(&mut b, new);
        }
        LogicalMessage::Delete { relation, old } => {
            b.put_u8(b'D');
            b.put_u32(*relation);
            put_old(&mut b, old);
        }
        LogicalMessage::Truncate {
            relations,
            cascade,
            restart_identity,
        } => {
            b.put_u8(b'T');
            b.put_i32(saturating_i32(relations.len()));
            b.put_u8(u8::from(*cascade) | (u8::from(*restart_identity) << 1));
            for oid in relations {
                b.put_u32(*oid);
            }
        }
        LogicalMessage::Message {
            transactional,
            lsn,
            prefix,
            content,
        } => {
            b.put_u8(b'M');
            b.put_u8(u8::from(*transactional));
            b.put_u64(*lsn);
            put_string(&mut b, prefix);
            b.put_i32(saturating_i32(content.len()));
            b.put_slice(content);
        }
    }
    b.freeze()
}

fn saturating_i16(n: usize) -> i16 {
    i16::try_from(n).unwrap_or(i16::MAX)
}

fn saturating_i32(n: usize) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

fn put_string(b: &mut BytesMut, s: &str) {
    b.put_slice(s.as_bytes());
    b.put_u8(0);
}

fn put_old(b: &mut BytesMut, old: &OldTuple) {
    match old {
        OldTuple::Key(t) => {
            b.put_u8(b'K');
            put_tuple(b, t);
        }
        OldTuple::Full(t) => {
            b.put_u8(b'O');
            put_tuple(b, t);
        }
    }
}

fn put_tuple(b: &mut BytesMut, t: &TupleData) {
    b.put_i16(saturating_i16(t.0.len()));
    for v in &t.0 {
        match v {
            TupleValue::Null => b.put_u8(b'n'),
            TupleValue::UnchangedToast => b.put_u8(b'u'),
            TupleValue::Text(data) => {
                b.put_u8(b't');
                b.put_i32(saturating_i32(data.len()));
                b.put_slice(data);
            }
            TupleValue::Binary(data) => {
                b.put_u8(b'b');
                b.put_i32(saturating_i32(data.len()));
                b.put_slice(data);
            }
        }
    }
}

#[cfg(test)]
#[path = "pgoutput_tests.rs"]
mod tests;
