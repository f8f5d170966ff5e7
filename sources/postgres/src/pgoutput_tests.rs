//! Tests of `pgoutput`.
use super::*;
use proptest::prelude::*;

/// Wire bytes from a readable spec: hex tokens, and `'text` tokens for
/// literal text, so each case shows the protocol layout.
fn wire(spec: &str) -> Bytes {
    let mut out = Vec::new();
    for tok in spec.split_whitespace() {
        match tok.strip_prefix('\'') {
            Some(text) => out.extend_from_slice(text.as_bytes()),
            None => (0..tok.len())
                .step_by(2)
                .for_each(|i| out.push(u8::from_str_radix(&tok[i..i + 2], 16).unwrap())),
        }
    }
    Bytes::from(out)
}

const INSERT: &str = "'I 00004000 'N 0005 't 00000002 '42 'n 'u 'b 00000003 0001ff 't 00000000";

/// Each case reads `wire spec => Debug of the decoded message`.
const EVERY_MESSAGE: &[&str] = &[
    "'B 0000000001000000 0000000000000002 00000003 \
     => Begin { final_lsn: 16777216, commit_ts: 2, xid: 3 }",
    "'C 00 0000000001000000 0000000001000030 ffffffffffffffff \
     => Commit { flags: 0, commit_lsn: 16777216, end_lsn: 16777264, commit_ts: -1 }",
    r#"'O 0000000000000007 'node_a 00 => Origin { commit_lsn: 7, name: "node_a" }"#,
    r#"'R 00004000 00 'üsers 00 69 0002 01 'id 00 00000017 ffffffff
       00 'name 00 00000413 00000044
       => Relation(Relation { oid: 16384, namespace: "", name: "üsers",
       replica_identity: Index, columns: [
       RelationColumn { is_key: true, name: "id", type_oid: 23, type_modifier: -1 },
       RelationColumn { is_key: false, name: "name", type_oid: 1043, type_modifier: 68 }] })"#,
    r#"'R 00000001 'public 00 't 00 66 0000 => Relation(Relation { oid: 1,
       namespace: "public", name: "t", replica_identity: Full, columns: [] })"#,
    r#"'Y 00015f90 'public 00 'mood 00
       => Type { oid: 90000, namespace: "public", name: "mood" }"#,
    r#"'I 00004000 'N 0005 't 00000002 '42 'n 'u 'b 00000003 0001ff 't 00000000
       => Insert { relation: 16384, new: TupleData([Text(b"42"), Null, UnchangedToast,
       Binary(b"\0\x01\xff"), Text(b"")]) }"#,
    r#"'U 00004000 'K 0001 't 00000001 '1 'N 0001 'u => Update { relation: 16384,
       old: Some(Key(TupleData([Text(b"1")]))), new: TupleData([UnchangedToast]) }"#,
    "'U 00004000 'N 0001 'n => Update { relation: 16384, old: None, new: TupleData([Null]) }",
    "'U 00004000 'O 0002 'n 'n 'N 0000 => Update { relation: 16384, \
     old: Some(Full(TupleData([Null, Null]))), new: TupleData([]) }",
    r#"'D 00004000 'K 0002 't 00000001 '1 'n
       => Delete { relation: 16384, old: Key(TupleData([Text(b"1"), Null])) }"#,
    "'D 00004000 'O 0000 => Delete { relation: 16384, old: Full(TupleData([])) }",
    "'T 00000002 03 00004000 00004006 \
     => Truncate { relations: [16384, 16390], cascade: true, restart_identity: true }",
    "'T 00000000 00 => Truncate { relations: [], cascade: false, restart_identity: false }",
    r#"'M 01 0000000000000063 'cdc 00 00000003 'a 00 'b
       => Message { transactional: true, lsn: 99, prefix: "cdc", content: b"a\0b" }"#,
    r#"'M 00 0000000000000000 00 00000000
       => Message { transactional: false, lsn: 0, prefix: "", content: b"" }"#,
];

/// Debug output with the case's line breaks and indentation undone.
fn squash(s: &str) -> String {
    s.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .replace("[ ", "[")
}

#[test]
fn every_message_decodes_and_round_trips() {
    for case in EVERY_MESSAGE {
        let (spec, want) = case.split_once("=>").unwrap();
        let raw = wire(spec);
        let m = decode(raw.clone()).unwrap_or_else(|e| panic!("{spec}: {e}"));
        assert_eq!(squash(&format!("{m:?}")), squash(want), "{spec}");
        assert_eq!(encode(&m), raw, "{spec}");
    }
}

#[test]
fn values_are_slices_of_the_input() {
    let buf = wire(INSERT);
    let range = buf.as_ptr_range();
    let Ok(LogicalMessage::Insert { new, .. }) = decode(buf.clone()) else {
        panic!("decode failed");
    };
    let Some(TupleValue::Text(v)) = new.0.first() else {
        panic!("no text value");
    };
    assert!(range.contains(&v.as_ptr()));
}

#[test]
fn malformed_messages_are_errors() {
    let cases = [
        " => pgoutput message truncated at byte 0: needed 1 more bytes",
        "'S => unknown pgoutput message type 'S' (0x53)",
        "'B 0000 => Begin message truncated at byte 1: needed 6 more bytes",
        "'C 00 => Commit message truncated at byte 2: needed 8 more bytes",
        "'O 0000000000000000 'abc => Origin message: string at byte 9 has no NUL terminator",
        "'O 0000000000000000 ff00 => Origin message: string at byte 9 is not valid UTF-8",
        "'I 00000001 'N 0001 'x => Insert message: unknown tuple column kind 0x78 at byte 8",
        "'I 00000001 'N 0001 't ffffffff => Insert message: negative value length at byte 9",
        "'I 00000001 'N ffff => Insert message: negative column count at byte 6",
        "'I 00000001 'K 0000 => Insert message: expected 'N' (new tuple) at byte 5, found 0x4b",
        "'U 00000001 'x 0000 => Update message: expected 'K', 'O' or 'N' at byte 5, found 0x78",
        "'U 00000001 'K 0000 'x => Update message: expected 'N' (new tuple) at byte 8, \
         found 0x78",
        "'D 00000001 'N 0000 => Delete message: expected 'K' or 'O' at byte 5, found 0x4e",
        "'R 00000001 00 't 00 'x 0000 => Relation message: expected replica identity \
         'd', 'n', 'f' or 'i' at byte 8, found 0x78",
        "'T 80000000 00 => Truncate message: negative relation count at byte 1",
        // A huge count with no data behind it fails cleanly, without
        // reserving memory for it.
        "'T 7fffffff 00 => Truncate message truncated at byte 6: needed 4 more bytes",
        "'M 01 0000000000000000 'p 00 00000009 'ab \
         => Message message truncated at byte 16: needed 7 more bytes",
        "'Y 00000001 'a 00 'b 00 00 => Type message: 1 trailing bytes after byte 9",
    ];
    for case in cases {
        let (spec, want) = case.split_once(" => ").unwrap();
        let got = decode(wire(spec)).map_err(|e| e.to_string());
        assert_eq!(got, Err(want.to_string()), "{spec}");
    }
}

fn arb_string() -> impl Strategy<Value = String> {
    "[^\u{0}]{0,12}"
}

fn arb_bytes() -> impl Strategy<Value = Bytes> {
    proptest::collection::vec(any::<u8>(), 0..24).prop_map(Bytes::from)
}

fn arb_tuple() -> impl Strategy<Value = TupleData> {
    let value = prop_oneof![
        Just(TupleValue::Null),
        Just(TupleValue::UnchangedToast),
        arb_bytes().prop_map(TupleValue::Text),
        arb_bytes().prop_map(TupleValue::Binary),
    ];
    proptest::collection::vec(value, 0..6).prop_map(TupleData)
}

fn arb_old() -> impl Strategy<Value = OldTuple> {
    prop_oneof![
        arb_tuple().prop_map(OldTuple::Key),
        arb_tuple().prop_map(OldTuple::Full)
    ]
}

fn arb_message() -> impl Strategy<Value = LogicalMessage> {
    use LogicalMessage as M;
    let ri = prop::sample::select(vec![
        ReplicaIdentity::Default,
        ReplicaIdentity::Nothing,
        ReplicaIdentity::Full,
        ReplicaIdentity::Index,
    ]);
    let column = (any::<bool>(), arb_string(), any::<u32>(), any::<i32>());
    let columns = proptest::collection::vec(column, 0..5);
    let oids = proptest::collection::vec(any::<u32>(), 0..6);
    // One draw of every ingredient; `kind` picks the message built.
    let numbers = (any::<(u64, u64, i64, u32, u8)>(), any::<(bool, bool)>());
    let strings = (arb_string(), arb_string(), arb_bytes());
    let rows = (
        arb_tuple(),
        proptest::option::of(arb_old()),
        ri,
        columns,
        oids,
    );
    (0..10u8, numbers, strings, rows).prop_map(|(kind, numbers, strings, rows)| {
        let ((lsn, lsn2, ts, n32, n8), (b1, b2)) = numbers;
        let (s1, s2, content) = strings;
        let (tuple, old, replica_identity, columns, relations) = rows;
        let columns = columns
            .into_iter()
            .map(|(is_key, name, type_oid, type_modifier)| RelationColumn {
                is_key,
                name,
                type_oid,
                type_modifier,
            });
        match kind {
            0 => M::Begin {
                final_lsn: lsn,
                commit_ts: ts,
                xid: n32,
            },
            1 => M::Commit {
                flags: n8,
                commit_lsn: lsn,
                end_lsn: lsn2,
                commit_ts: ts,
            },
            2 => M::Origin {
                commit_lsn: lsn,
                name: s1,
            },
            3 => M::Relation(Relation {
                oid: n32,
                namespace: s1,
                name: s2,
                replica_identity,
                columns: columns.collect(),
            }),
            4 => M::Type {
                oid: n32,
                namespace: s1,
                name: s2,
            },
            5 => M::Insert {
                relation: n32,
                new: tuple,
            },
            6 => M::Update {
                relation: n32,
                old,
                new: tuple,
            },
            7 => M::Delete {
                relation: n32,
                old: old.unwrap_or(OldTuple::Key(tuple)),
            },
            8 => M::Truncate {
                relations,
                cascade: b1,
                restart_identity: b2,
            },
            _ => M::Message {
                transactional: b1,
                lsn,
                prefix: s1,
                content,
            },
        }
    })
}

proptest! {
    #[test]
    fn decode_inverts_encode(m in arb_message()) {
        prop_assert_eq!(decode(encode(&m)), Ok(m));
    }

    #[test]
    fn arbitrary_bytes_never_panic(raw in proptest::collection::vec(any::<u8>(), 0..64)) {
        let _ = decode(Bytes::from(raw));
    }

    #[test]
    fn any_message_tag_with_random_body_never_panics(
        tag in prop::sample::select(b"BCORYIUDTM".to_vec()),
        body in proptest::collection::vec(any::<u8>(), 0..64),
    ) {
        let mut raw = vec![tag];
        raw.extend(body);
        let _ = decode(Bytes::from(raw));
    }

    #[test]
    fn mutated_messages_never_panic(
        m in arb_message(),
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
        cut in any::<prop::sample::Index>(),
    ) {
        let valid = encode(&m).to_vec();
        let mut mutated = valid.clone();
        for (at, byte) in edits {
            if !mutated.is_empty() {
                let i = at.index(mutated.len());
                mutated[i] = byte;
            }
        }
        let _ = decode(Bytes::from(mutated));
        // Every strict prefix of a valid message is incomplete.
        let keep = cut.index(valid.len());
        prop_assert!(decode(Bytes::copy_from_slice(&valid[..keep])).is_err());
    }
}
