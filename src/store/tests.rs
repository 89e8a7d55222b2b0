//! One suite, run on both stores: whatever passes on the in-memory twin must
//! pass on sled, and the other way round.

use super::records::{OutboxEntry, PendingAction, PortalRecord, PuppetRecord};
use super::*;
use std::sync::Arc;
use switchboard_model::{Message, MessageId, Origin, Person, PuppetRef};

fn entry(text: &str) -> OutboxEntry {
    OutboxEntry {
        origin: Some(Origin::new("m:a", "c1")),
        sender: Some(Person::new("m:a".into(), "u1".into(), "Ann")),
        action: PendingAction::Send {
            group: 1,
            message: Message::text(text),
        },
        attempts: 0,
        enqueued_ms: 0,
        is_notice: false,
        maybe_delivered: false,
    }
}

fn key(portal: &str, seq: u64, bridge: &str) -> OutboxKey {
    OutboxKey {
        portal: PortalId::new(portal),
        seq,
        bridge: bridge.into(),
        channel: "c".into(),
    }
}

macro_rules! store_suite {
    ($($name:ident),* $(,)?) => {
        mod on_memory {
            $( #[test] fn $name() { super::$name(&|| (std::sync::Arc::new(super::MemoryStore::new()) as std::sync::Arc<dyn super::Store>, None)); } )*
        }
        mod on_sled {
            $( #[test] fn $name() {
                let dir = tempfile::tempdir().expect("tempdir");
                let path = dir.path().to_owned();
                super::$name(&move || {
                    let store = super::open_sled_when_released(&path);
                    (std::sync::Arc::new(store) as std::sync::Arc<dyn super::Store>, Some(()))
                });
                drop(dir);
            } )*
        }
    };
}

/// Opens a sled store at `path`, waiting (up to 5 s) for a just-dropped
/// handle's background threads to release the file lock: sled releases it
/// only when its flusher thread lets go, a moment after the last drop.
fn open_sled_when_released(path: &std::path::Path) -> SledStore {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        match SledStore::open(path) {
            Ok(store) => return store,
            Err(e)
                if e.to_string().contains("could not acquire lock")
                    && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            Err(e) => panic!("open sled: {e:?}"),
        }
    }
}

/// Opens the store under test. The second value is `Some` when reopening
/// yields the same data (on disk), `None` for the in-memory twin.
type Open<'a> = &'a dyn Fn() -> (Arc<dyn Store>, Option<()>);

store_suite!(
    tree_names_are_unique_and_follow_the_convention,
    batches_are_atomic_across_trees,
    scan_prefix_is_ordered_and_bounded,
    ids_increase,
    schema_version_written_and_newer_refused,
    migration_hook_runs_in_order,
    portals_and_channel_index,
    intake_and_completion,
    outbox_replays_in_sequence_order,
    puppets_both_ways,
    seen_pruned_by_age,
    cursors,
    survives_reopen,
    writes_in_order_apply_each_in_turn,
);

fn tree_names_are_unique_and_follow_the_convention(_open: Open<'_>) {
    let names: std::collections::HashSet<&str> = Tree::ALL.iter().map(|t| t.name()).collect();
    assert_eq!(names.len(), Tree::ALL.len(), "tree names must be unique");
    for (i, t) in Tree::ALL.iter().enumerate() {
        assert_eq!(t.index(), i, "Tree::ALL order must match discriminants");
        assert!(
            t.name().chars().all(|c| c.is_ascii_lowercase() || c == '_'),
            "{t}"
        );
    }
}

fn batches_are_atomic_across_trees(open: Open<'_>) {
    let (store, _) = open();
    let mut batch = WriteBatch::new();
    batch.put(Tree::Outbox, b"k1".to_vec(), b"v1".to_vec());
    batch.put(Tree::EventidSeen, b"k2".to_vec(), b"v2".to_vec());
    batch.put(Tree::Outbox, b"k3".to_vec(), b"v3".to_vec());
    batch.delete(Tree::Outbox, b"k3".to_vec());
    store.apply(batch).expect("apply");
    assert_eq!(
        store.get(Tree::Outbox, b"k1").expect("get"),
        Some(b"v1".to_vec())
    );
    assert_eq!(
        store.get(Tree::EventidSeen, b"k2").expect("get"),
        Some(b"v2".to_vec())
    );
    assert_eq!(
        store.get(Tree::Outbox, b"k3").expect("get"),
        None,
        "writes apply in order"
    );
    // Trees are separate namespaces.
    assert_eq!(store.get(Tree::Cursor, b"k1").expect("get"), None);
    assert_eq!(store.len(Tree::Outbox).expect("len"), 1);
    store.apply(WriteBatch::new()).expect("empty batch is fine");
}

fn writes_in_order_apply_each_in_turn(open: Open<'_>) {
    let (store, reopen) = open();
    store
        .apply(WriteBatch {
            writes: vec![Write::Put(
                Tree::Outbox,
                b"op".to_vec(),
                b"pending".to_vec(),
            )],
        })
        .expect("apply");
    let mut batch = WriteBatch::new();
    batch.put(Tree::GroupidMsgs, b"g".to_vec(), b"copy".to_vec());
    batch.put(Tree::MsgGroupid, b"m".to_vec(), b"g".to_vec());
    batch.put(Tree::MsgGroupid, b"m".to_vec(), b"g2".to_vec());
    batch.delete(Tree::Outbox, b"op".to_vec());
    store.apply_in_order(batch).expect("apply in order");
    let check = |store: &Arc<dyn Store>| {
        assert_eq!(
            store.get(Tree::GroupidMsgs, b"g").expect("get"),
            Some(b"copy".to_vec())
        );
        assert_eq!(
            store.get(Tree::MsgGroupid, b"m").expect("get"),
            Some(b"g2".to_vec()),
            "the later write wins"
        );
        assert_eq!(store.get(Tree::Outbox, b"op").expect("get"), None);
    };
    check(&store);
    store
        .apply_in_order(WriteBatch::new())
        .expect("empty is fine");
    if reopen.is_some() {
        store.flush().expect("flush");
        drop(store);
        check(&open().0);
    }
}

fn scan_prefix_is_ordered_and_bounded(open: Open<'_>) {
    let (store, _) = open();
    let mut batch = WriteBatch::new();
    for seq in [3u64, 1, 256, 2] {
        batch.put(
            Tree::Outbox,
            keys::Key::new().str("p").u64(seq).build(),
            vec![],
        );
        batch.put(
            Tree::Outbox,
            keys::Key::new().str("pq").u64(seq).build(),
            vec![],
        );
    }
    store.apply(batch).expect("apply");
    let mut seen = Vec::new();
    store
        .scan_prefix(
            Tree::Outbox,
            &keys::Key::new().str("p").prefix(),
            &mut |k, _| {
                let mut r = keys::KeyReader::new(k);
                assert_eq!(r.str().expect("str"), "p");
                seen.push(r.u64().expect("u64"));
                true
            },
        )
        .expect("scan");
    assert_eq!(seen, [1, 2, 3, 256]);
    let mut first = Vec::new();
    store
        .scan_prefix(Tree::Outbox, &[], &mut |k, _| {
            first.push(k.to_vec());
            first.len() < 2
        })
        .expect("scan");
    assert_eq!(first.len(), 2, "visitor returning false stops the scan");
}

fn ids_increase(open: Open<'_>) {
    let (store, _) = open();
    let a = store.next_id().expect("id");
    let b = store.next_id().expect("id");
    assert!(b > a);
}

fn schema_version_written_and_newer_refused(open: Open<'_>) {
    let (store, _) = open();
    assert_eq!(migrate::version(store.as_ref()).expect("version"), 0);
    Db::open(store.clone()).expect("open db");
    assert_eq!(
        migrate::version(store.as_ref()).expect("version"),
        migrate::SCHEMA_VERSION
    );
    let mut batch = WriteBatch::new();
    batch.put(
        Tree::Meta,
        keys::Key::new().str("schema_version").build(),
        99u32.to_be_bytes().to_vec(),
    );
    store.apply(batch).expect("apply");
    let err = Db::open(store).expect_err("newer schema refused");
    assert!(matches!(err, StoreError::TooNew { found: 99, .. }), "{err}");
}

fn migration_hook_runs_in_order(open: Open<'_>) {
    let (store, _) = open();
    let migrations: &[(u32, migrate::Migration)] = &[
        (0, |_| Ok(WriteBatch::new())),
        (1, |s| {
            // A migration reads old data and rewrites it.
            let old = s.get(Tree::Cursor, b"x")?.unwrap_or_default();
            let mut b = WriteBatch::new();
            b.put(
                Tree::Cursor,
                b"x".to_vec(),
                [old.as_slice(), b"+v2"].concat(),
            );
            Ok(b)
        }),
    ];
    migrate::run_with(store.as_ref(), &migrations[..1], 1).expect("to v1");
    let mut b = WriteBatch::new();
    b.put(Tree::Cursor, b"x".to_vec(), b"v1".to_vec());
    store.apply(b).expect("apply");
    migrate::run_with(store.as_ref(), migrations, 2).expect("to v2");
    assert_eq!(
        store.get(Tree::Cursor, b"x").expect("get"),
        Some(b"v1+v2".to_vec())
    );
    assert_eq!(migrate::version(store.as_ref()).expect("version"), 2);
    migrate::run_with(store.as_ref(), migrations, 2).expect("idempotent at target");
    assert_eq!(
        store.get(Tree::Cursor, b"x").expect("get"),
        Some(b"v1+v2".to_vec())
    );
    let err = migrate::run_with(store.as_ref(), migrations, 3).expect_err("missing migration");
    assert!(
        err.to_string().contains("no migration from version 2"),
        "{err}"
    );
}

fn portals_and_channel_index(open: Open<'_>) {
    let (store, _) = open();
    let db = Db::open(store).expect("db");
    let p = PortalId::new("general");
    let rec = PortalRecord {
        members: vec![("m:a".into(), "c1".into()), ("m:b".into(), "c2".into())],
        relay_calls: true,
        meetings: None,
        source: Default::default(),
    };
    db.put_portal(&p, &rec).expect("put");
    assert_eq!(
        db.portal_of(&"m:a".into(), &"c1".into()).expect("get"),
        Some(p.clone())
    );
    let moved = PortalRecord {
        members: vec![("m:a".into(), "c1".into()), ("m:c".into(), "c3".into())],
        relay_calls: false,
        meetings: None,
        source: Default::default(),
    };
    db.put_portal(&p, &moved).expect("replace");
    assert_eq!(
        db.portal_of(&"m:b".into(), &"c2".into()).expect("get"),
        None,
        "dropped member unindexed"
    );
    assert_eq!(
        db.portal_of(&"m:c".into(), &"c3".into()).expect("get"),
        Some(p.clone())
    );
    assert_eq!(db.portals().expect("list"), vec![(p.clone(), moved)]);
    db.remove_portal(&p).expect("remove");
    assert!(db.portals().expect("list").is_empty());
    assert_eq!(
        db.portal_of(&"m:a".into(), &"c1".into()).expect("get"),
        None
    );
}

fn intake_and_completion(open: Open<'_>) {
    let (store, _) = open();
    let db = Db::open(store).expect("db");
    let group = db.next_id().expect("id");
    let k = key("p", 1, "m:b");
    db.commit_intake(&[IntakeWrite {
        seen: Some(("m:a".into(), "ev1".into(), 5)),
        messages: vec![("m:a".into(), "c1".into(), "msg1".into(), 0, group)],
        copies: vec![(group, "m:a".into(), "c1".into(), vec!["msg1".into()])],
        outbox: vec![(k.clone(), entry("hi"))],
        calls: vec![(
            switchboard_model::CallId::new("call-1"),
            crate::store::records::CallRecord::new(
                "p",
                switchboard_model::Origin::new("m:a", "c1"),
                &switchboard_model::CallEvent::new(
                    switchboard_model::CallId::new("call-1"),
                    switchboard_model::CallProvider::Jitsi,
                    switchboard_model::CallState::Started,
                ),
                7,
            ),
        )],
    }])
    .expect("intake");
    let calls = db.calls().expect("calls");
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].0.as_str(), "call-1");
    assert_eq!(calls[0].1.started_ms, 7);
    assert_eq!(
        db.call(&switchboard_model::CallId::new("call-1"))
            .expect("call")
            .map(|r| r.portal),
        Some("p".to_owned())
    );
    assert_eq!(
        db.call(&switchboard_model::CallId::new("nope"))
            .expect("call"),
        None
    );
    assert!(db.seen(&"m:a".into(), &"ev1".into()).expect("seen"));
    assert!(
        !db.seen(&"m:b".into(), &"ev1".into()).expect("seen"),
        "seen is per bridge"
    );
    assert_eq!(
        db.group_of(&"m:a".into(), &"c1".into(), &"msg1".into())
            .expect("group"),
        Some(group)
    );
    assert_eq!(db.outbox().expect("outbox"), vec![(k.clone(), entry("hi"))]);
    assert_eq!(
        db.copy(group, &"m:b".into(), &"c".into()).expect("copy"),
        None
    );

    let parts: Vec<MessageId> = vec!["t1".into(), "t2".into()];
    db.complete(&k, Some((group, &parts))).expect("complete");
    assert!(db.outbox().expect("outbox").is_empty());
    assert_eq!(
        db.copy(group, &"m:b".into(), &"c".into()).expect("copy"),
        Some(parts.clone())
    );
    // Both parts map back to the group, so events about them can be routed.
    assert_eq!(
        db.group_of(&"m:b".into(), &"c".into(), &"t1".into())
            .expect("group"),
        Some(group)
    );
    let copies = db.copies(group).expect("copies");
    assert_eq!(copies.len(), 2);
    assert!(copies.contains(&("m:a".into(), "c1".into(), vec!["msg1".into()])));
}

fn outbox_replays_in_sequence_order(open: Open<'_>) {
    let (store, _) = open();
    let db = Db::open(store).expect("db");
    let writes: Vec<IntakeWrite> = [300u64, 2, 70_000, 1]
        .iter()
        .map(|seq| IntakeWrite {
            outbox: vec![(key("p", *seq, "m:b"), entry(&seq.to_string()))],
            ..IntakeWrite::default()
        })
        .collect();
    db.commit_intake(&writes).expect("intake");
    let seqs: Vec<u64> = db
        .outbox()
        .expect("outbox")
        .iter()
        .map(|(k, _)| k.seq)
        .collect();
    assert_eq!(seqs, [1, 2, 300, 70_000]);
    let mut retried = entry("2");
    retried.attempts = 3;
    db.put_outbox(&key("p", 2, "m:b"), &retried)
        .expect("update");
    db.drop_outbox(&key("p", 1, "m:b")).expect("drop");
    let out = db.outbox().expect("outbox");
    assert_eq!(out[0].1.attempts, 3);
    assert_eq!(out.len(), 3);
}

fn puppets_both_ways(open: Open<'_>) {
    let (store, _) = open();
    let db = Db::open(store).expect("db");
    let ann = Person::new("m:a".into(), "u1".into(), "Ann");
    let rec = PuppetRecord {
        puppet: PuppetRef::new("p-u1".into(), "Ann"),
        name_hash: 1,
        avatar_hash: 2,
    };
    db.put_puppet(&"m:b".into(), &ann, &rec).expect("put");
    assert_eq!(db.puppet(&"m:b".into(), &ann).expect("get"), Some(rec));
    assert_eq!(db.puppet(&"m:c".into(), &ann).expect("get"), None);
    assert_eq!(
        db.person_of_puppet(&"m:b".into(), &"p-u1".into())
            .expect("get"),
        Some(ann.clone())
    );
    // A new puppet id replaces the reverse mapping.
    let rec2 = PuppetRecord {
        puppet: PuppetRef::new("p-u1-v2".into(), "Ann"),
        name_hash: 1,
        avatar_hash: 2,
    };
    db.put_puppet(&"m:b".into(), &ann, &rec2).expect("put");
    assert_eq!(
        db.person_of_puppet(&"m:b".into(), &"p-u1".into())
            .expect("get"),
        None
    );
    assert_eq!(
        db.person_of_puppet(&"m:b".into(), &"p-u1-v2".into())
            .expect("get"),
        Some(ann)
    );
}

fn seen_pruned_by_age(open: Open<'_>) {
    let (store, _) = open();
    let db = Db::open(store).expect("db");
    let writes: Vec<IntakeWrite> = (0..10u64)
        .map(|i| IntakeWrite {
            seen: Some(("m:a".into(), format!("e{i}").into(), i * 100)),
            ..IntakeWrite::default()
        })
        .collect();
    db.commit_intake(&writes).expect("intake");
    assert_eq!(db.prune_seen(500).expect("prune"), 5);
    assert!(!db.seen(&"m:a".into(), &"e4".into()).expect("seen"));
    assert!(db.seen(&"m:a".into(), &"e5".into()).expect("seen"));
    // More than one batch's worth, old and new interleaved.
    let many = crate::store::db::PRUNE_BATCH * 2 + 7;
    let writes: Vec<IntakeWrite> = (0..many)
        .map(|i| IntakeWrite {
            seen: Some((
                "m:b".into(),
                format!("x{i:06}").into(),
                if i % 3 == 0 { 10_000 } else { 1 },
            )),
            ..IntakeWrite::default()
        })
        .collect();
    db.commit_intake(&writes).expect("intake");
    let old = (0..many).filter(|i| i % 3 != 0).count();
    assert_eq!(db.prune_seen(500).expect("prune"), old);
    assert_eq!(db.prune_seen(500).expect("prune again"), 0);
    assert!(db.seen(&"m:b".into(), &"x000000".into()).expect("seen"));
    assert!(!db.seen(&"m:b".into(), &"x000001".into()).expect("seen"));
}

fn cursors(open: Open<'_>) {
    let (store, _) = open();
    let db = Db::open(store).expect("db");
    assert_eq!(db.cursor(&"m:a".into(), &"c".into()).expect("get"), None);
    db.put_cursor(&"m:a".into(), &"c".into(), "1700000000.000100")
        .expect("put");
    assert_eq!(
        db.cursor(&"m:a".into(), &"c".into())
            .expect("get")
            .as_deref(),
        Some("1700000000.000100")
    );
}

fn survives_reopen(open: Open<'_>) {
    let (store, durable) = open();
    let db = Db::open(store).expect("db");
    db.commit_intake(&[IntakeWrite {
        seen: Some(("m:a".into(), "ev".into(), 1)),
        outbox: vec![(key("p", 9, "m:b"), entry("kept"))],
        ..IntakeWrite::default()
    }])
    .expect("intake");
    db.flush().expect("flush");
    drop(db);
    if durable.is_none() {
        return;
    }
    let (store, _) = open();
    let db = Db::open(store).expect("reopen");
    assert!(db.seen(&"m:a".into(), &"ev".into()).expect("seen"));
    assert_eq!(
        db.outbox().expect("outbox"),
        vec![(key("p", 9, "m:b"), entry("kept"))]
    );
}
