use std::collections::HashMap;

use bytes::{BufMut, Bytes, BytesMut};
use proptest::prelude::*;

use super::*;
use crate::pgoutput::{self, LogicalMessage};
use crate::pgoutput_v2::encode;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// A held message: `tag`, then `n` as text, so each one is unique.
fn message(tag: u8, n: u32) -> Bytes {
    let mut b = BytesMut::new();
    b.put_u8(tag);
    b.put_slice(n.to_string().as_bytes());
    b.freeze()
}

fn streamed(subxid: u32, message: Bytes) -> Bytes {
    encode(&Framed::InStream {
        xid: subxid,
        tag: message[0],
        body: message.slice(1..),
    })
}

async fn drain(mut replay: Replay) -> Vec<(Lsn, Bytes)> {
    let mut out = Vec::new();
    while let Some(item) = replay.next().await.unwrap() {
        out.push(item);
    }
    out
}

async fn commit(s: &mut StreamedTransactions, xid: u32, end: Lsn) -> Vec<(Lsn, Bytes)> {
    let wire = encode(&Framed::StreamCommit {
        xid,
        flags: 0,
        commit_lsn: end - 8,
        end_lsn: end,
        commit_ts: 77,
    });
    match s.route(end - 8, wire).await.unwrap() {
        Route::Commit(replay) => drain(*replay).await,
        _ => panic!("a stream commit is not a commit"),
    }
}

async fn send(s: &mut StreamedTransactions, lsn: Lsn, framed: Framed) {
    match s.route(lsn, encode(&framed)).await.unwrap() {
        Route::Held => {}
        Route::Decode(_) => panic!("{framed:?} was not held"),
        Route::Commit(_) => panic!("{framed:?} committed"),
    }
}

/// The first block of `xid` begins.
async fn first_block(s: &mut StreamedTransactions, lsn: Lsn, xid: u32) {
    send(s, lsn, Framed::StreamStart { xid, first: true }).await;
}

#[test]
fn a_committed_transaction_replays_as_begin_messages_commit() {
    runtime().block_on(async {
        let mut s = StreamedTransactions::new(1 << 20, std::env::temp_dir());
        first_block(&mut s, 1, 5).await;
        for n in 0..3 {
            let wire = streamed(5, message(b'I', n));
            assert!(matches!(
                s.route(10 + u64::from(n), wire).await.unwrap(),
                Route::Held
            ));
        }
        send(&mut s, 20, Framed::StreamStop).await;
        // A whole small transaction between the blocks is decoded at once.
        let plain = message(b'B', 0);
        assert!(matches!(
            s.route(21, plain).await.unwrap(),
            Route::Decode(_)
        ));
        assert!(s.holding());
        let out = commit(&mut s, 5, 100).await;
        assert!(!s.holding());
        assert_eq!(out.len(), 5);
        assert_eq!(
            pgoutput::decode(out[0].1.clone()).unwrap(),
            LogicalMessage::Begin {
                final_lsn: 92,
                commit_ts: 77,
                xid: 5
            }
        );
        assert_eq!(out[0].0, 92);
        let held: Vec<_> = out[1..4].iter().map(|(l, m)| (*l, m.clone())).collect();
        assert_eq!(
            held,
            (0..3)
                .map(|n| (10 + u64::from(n), message(b'I', n)))
                .collect::<Vec<_>>()
        );
        assert_eq!(
            pgoutput::decode(out[4].1.clone()).unwrap(),
            LogicalMessage::Commit {
                flags: 0,
                commit_lsn: 92,
                end_lsn: 100,
                commit_ts: 77
            }
        );
    });
}

#[test]
fn a_rolled_back_savepoint_takes_its_changes_but_not_its_relations() {
    runtime().block_on(async {
        let mut s = StreamedTransactions::new(0, std::env::temp_dir());
        first_block(&mut s, 1, 5).await;
        for (lsn, sub, m) in [
            (2, 5, message(b'I', 1)),
            (3, 6, message(b'R', 2)),
            (4, 6, message(b'I', 3)),
            (5, 6, message(b'M', 4)),
            (6, 5, message(b'U', 5)),
        ] {
            s.route(lsn, streamed(sub, m)).await.unwrap();
        }
        send(&mut s, 7, Framed::StreamStop).await;
        send(&mut s, 8, Framed::StreamAbort { xid: 5, subxid: 6 }).await;
        let out = commit(&mut s, 5, 100).await;
        let held: Vec<_> = out[1..out.len() - 1]
            .iter()
            .map(|(_, m)| m.clone())
            .collect();
        assert_eq!(
            held,
            vec![message(b'I', 1), message(b'R', 2), message(b'U', 5)]
        );
        assert!(
            s.stats().spilled_bytes > 0,
            "a budget of 0 spills everything"
        );
    });
}

#[test]
fn an_aborted_transaction_is_dropped_and_a_change_outside_a_block_is_an_error() {
    runtime().block_on(async {
        let mut s = StreamedTransactions::new(1 << 20, std::env::temp_dir());
        first_block(&mut s, 1, 5).await;
        s.route(2, streamed(5, message(b'I', 1))).await.unwrap();
        send(&mut s, 3, Framed::StreamStop).await;
        send(&mut s, 4, Framed::StreamAbort { xid: 5, subxid: 5 }).await;
        assert!(!s.holding());
        assert_eq!(s.memory, 0);
        // Its commit never comes; were it to, it would replay nothing.
        assert_eq!(commit(&mut s, 5, 100).await.len(), 2);
        // Outside a block, a change carries no xid and is a version 1
        // message: decoded, not held.
        assert!(matches!(
            s.route(5, message(b'I', 1)).await.unwrap(),
            Route::Decode(_)
        ));
    });
}

#[test]
fn a_spill_directory_that_does_not_exist_is_an_error_naming_it() {
    runtime().block_on(async {
        let mut s = StreamedTransactions::new(0, "/nonexistent/cdc-spill".into());
        first_block(&mut s, 1, 5).await;
        let Err(err) = s.route(2, streamed(5, message(b'I', 1))).await else {
            panic!("spilled into a directory that does not exist");
        };
        assert!(err.to_string().contains("/nonexistent/cdc-spill"), "{err}");
    });
}

#[test]
fn a_spill_of_many_blocks_and_a_record_larger_than_a_block_reads_back_whole() {
    runtime().block_on(async {
        let mut s = StreamedTransactions::new(64 << 10, std::env::temp_dir());
        first_block(&mut s, 1, 5).await;
        let mut sent = Vec::new();
        for n in 0..120_000u32 {
            // Sizes vary, so records straddle block boundaries everywhere.
            let mut m = BytesMut::new();
            m.put_u8(b'I');
            m.put_slice(&n.to_be_bytes());
            m.put_bytes(b'x', (n % 61) as usize);
            if n == 60_000 {
                m.put_bytes(b'y', 3 << 20);
            }
            let m = m.freeze();
            s.route(u64::from(n), streamed(5, m.clone())).await.unwrap();
            sent.push(m);
        }
        send(&mut s, 1, Framed::StreamStop).await;
        assert!(s.stats().spilled_bytes > 4 << 20);
        let out = commit(&mut s, 5, 1 << 40).await;
        let got: Vec<Bytes> = out[1..out.len() - 1]
            .iter()
            .map(|(_, m)| m.clone())
            .collect();
        assert_eq!(got.len(), sent.len());
        assert!(got == sent, "a record came back different");
        let lsns: Vec<u64> = out[1..out.len() - 1].iter().map(|(l, _)| *l).collect();
        assert!(lsns.iter().enumerate().all(|(i, &l)| l == i as u64));
    });
}

/// A modeled transaction: its messages by subtransaction, and the
/// subtransactions rolled back.
type Modeled = (Vec<(u32, Bytes)>, Vec<u32>);

/// One step of a session with up to three streamed transactions.
#[derive(Debug, Clone)]
enum Step {
    /// A block of `tx` with these (subtransaction index, is relation)
    /// messages.
    Block(u32, Vec<(u32, bool)>),
    RollBack(u32, u32),
    Abort(u32),
    Commit(u32),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => (0..3u32, prop::collection::vec((0..3u32, prop::bool::weighted(0.1)), 0..12))
            .prop_map(|(tx, m)| Step::Block(tx, m)),
        1 => (0..3u32, 1..3u32).prop_map(|(tx, sub)| Step::RollBack(tx, sub)),
        1 => (0..3u32).prop_map(Step::Abort),
        2 => (0..3u32).prop_map(Step::Commit),
    ]
}

proptest! {
    /// Whatever the interleaving and the budget, each commit replays
    /// exactly its transaction's messages in order, less the changes of
    /// subtransactions rolled back, and the memory held never stays above
    /// the budget.
    #[test]
    fn replays_match_a_model(steps in prop::collection::vec(step(), 0..40), budget in prop_oneof![Just(0usize), Just(200), Just(8 << 10), Just(1 << 20)]) {
        runtime().block_on(async {
            let mut s = StreamedTransactions::new(budget, std::env::temp_dir());
            // The model: per transaction, its messages and its rolled-back
            // subtransactions.
            let mut model: HashMap<u32, Modeled> = HashMap::new();
            let mut lsn: Lsn = 1000;
            let mut n = 0u32;
            let xid = |tx: u32| 100 + tx * 10;
            for step in steps {
                lsn += 16;
                match step {
                    Step::Block(tx, messages) => {
                        let first = !model.contains_key(&tx);
                        let entry = model.entry(tx).or_default();
                        send(&mut s, lsn, Framed::StreamStart { xid: xid(tx), first }).await;
                        for (sub, relation) in messages {
                            n += 1;
                            let m = message(if relation { b'R' } else { b'I' }, n);
                            entry.0.push((sub, m.clone()));
                            lsn += 1;
                            s.route(lsn, streamed(xid(tx) + sub, m)).await.unwrap();
                        }
                        send(&mut s, lsn, Framed::StreamStop).await;
                    }
                    Step::RollBack(tx, sub) => {
                        if let Some(entry) = model.get_mut(&tx) {
                            entry.1.push(sub);
                            send(&mut s, lsn, Framed::StreamAbort { xid: xid(tx), subxid: xid(tx) + sub }).await;
                        }
                    }
                    Step::Abort(tx) => {
                        if model.remove(&tx).is_some() {
                            send(&mut s, lsn, Framed::StreamAbort { xid: xid(tx), subxid: xid(tx) }).await;
                        }
                    }
                    Step::Commit(tx) => {
                        if let Some((messages, rolled_back)) = model.remove(&tx) {
                            let out = commit(&mut s, xid(tx), lsn).await;
                            let expected: Vec<Bytes> = messages
                                .into_iter()
                                .filter(|(sub, m)| m[0] == b'R' || !rolled_back.contains(sub))
                                .map(|(_, m)| m)
                                .collect();
                            let got: Vec<Bytes> = out[1..out.len() - 1].iter().map(|(_, m)| m.clone()).collect();
                            prop_assert_eq!(got, expected);
                        }
                    }
                }
                prop_assert!(s.memory <= budget, "held {} past a budget of {budget}", s.memory);
            }
            prop_assert_eq!(s.open.len(), model.len());
            Ok::<(), TestCaseError>(())
        })?;
    }
}
