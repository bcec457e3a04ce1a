//! PostgreSQL-only tests: the shared suite on a fresh database, several
//! nodes on one database, migrations from every historical schema, and
//! connection failures.

use super::schema::SCHEMA_TABLE;
use super::*;
use crate::store::Store;
use crate::store::pg_harness;
use crate::store::suite::{check_migrated_fixtures, invite as new_invite, text};
use crate::store::{InviteStore, MessageStore, Page, StoreError, Transition};
use courier_proto::{Conv, InviteState, Target};
use std::collections::HashSet;
use std::sync::Arc;
use tokio_postgres::NoTls;

/// A store on a fresh database of the test server, or `None` (after
/// printing why) when PostgreSQL is not installed.
async fn fresh() -> Option<Arc<dyn Store>> {
    let url = pg_harness::fresh_database().await?;
    Some(Arc::new(PostgresStore::connect(&url).await.expect("connect to a fresh database")))
}

mod suite {
    // `return` here leaves the generated test early: the skip path.
    crate::store_suite!(match super::fresh().await {
        Some(store) => ::std::future::ready(store),
        None => return,
    });
}

/// Several stores on one database, as several server nodes.
async fn nodes(n: usize) -> Option<(String, Vec<Arc<PostgresStore>>)> {
    let url = pg_harness::fresh_database().await?;
    let mut out = Vec::new();
    for _ in 0..n {
        out.push(Arc::new(PostgresStore::connect(&url).await.expect("connect")));
    }
    Some((url, out))
}

/// A plain connection for inspecting or tampering with a database.
async fn raw(url: &str) -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(url, NoTls).await.expect("raw connection");
    tokio::spawn(conn);
    client
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_appending_to_one_conversation_get_each_seq_exactly_once() {
    let Some((_, nodes)) = nodes(2).await else { return };
    const TASKS_PER_NODE: usize = 4;
    const EACH: usize = 50;
    let mut tasks = Vec::new();
    for (n, node) in nodes.iter().enumerate() {
        for t in 0..TASKS_PER_NODE {
            let node = node.clone();
            tasks.push(tokio::spawn(async move {
                let mut mine = Vec::new();
                for i in 0..EACH {
                    let m = text(
                        &format!("n{n}u{t}"),
                        Target::Channel("lobby".into()),
                        &format!("c{i}"),
                        "x",
                        i as i64,
                    );
                    let a = node.append(m).await.unwrap();
                    assert!(!a.dup);
                    mine.push(a.msg);
                }
                mine
            }));
        }
    }
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await.unwrap());
    }
    all.sort_by_key(|m| m.seq);
    let n = (2 * TASKS_PER_NODE * EACH) as u64;
    assert_eq!(all.iter().map(|m| m.seq).collect::<Vec<_>>(), (1..=n).collect::<Vec<_>>());
    let conv = Conv::channel("lobby");
    // Either node reads exactly what both acknowledged.
    for node in &nodes {
        let (stored, more) = node.history(&conv, Page::After(0), n as u32 + 1).await.unwrap();
        assert!(!more);
        assert_eq!(stored, all);
        assert_eq!(node.message_count().await.unwrap(), n);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_duplicates_from_two_nodes_are_stored_once() {
    let Some((_, nodes)) = nodes(2).await else { return };
    for round in 0..20 {
        let mut tasks = Vec::new();
        for (n, node) in nodes.iter().enumerate() {
            for t in 0..3 {
                let node = node.clone();
                // Alternate DM and channel so the duplicate also races
                // against a different conversation's counter.
                let to =
                    if t % 2 == 0 { Target::User("bob".into()) } else { Target::Channel("lobby".into()) };
                tasks.push(tokio::spawn(async move {
                    node.append(text("alice", to, &format!("same-{round}"), &format!("{n}/{t}"), round))
                        .await
                        .unwrap()
                }));
            }
        }
        let mut results = Vec::new();
        for task in tasks {
            results.push(task.await.unwrap());
        }
        assert_eq!(results.iter().filter(|a| !a.dup).count(), 1, "round {round}: exactly one is new");
        let winner = results.iter().find(|a| !a.dup).unwrap().msg.clone();
        assert!(results.iter().all(|a| a.msg == winner), "round {round}: all see the original");
    }
    // 20 messages in total, and each conversation is still gapless.
    assert_eq!(nodes[0].message_count().await.unwrap(), 20);
    for conv in [Conv::dm("alice", "bob"), Conv::channel("lobby")] {
        let (msgs, _) = nodes[1].history(&conv, Page::After(0), 100).await.unwrap();
        let seqs: Vec<u64> = msgs.iter().map(|m| m.seq).collect();
        assert_eq!(seqs, (1..=msgs.len() as u64).collect::<Vec<_>>(), "{conv}");
        assert_eq!(nodes[0].conv_last(&conv).await.unwrap().0, msgs.len() as u64, "{conv}");
    }
}

/// Whether a session of the test database comes to wait on a lock whose
/// wait event is like `event` (`%`: any), within 5 s.
async fn waits_on_a_lock(url: &str, event: &str) -> bool {
    let admin = raw(url).await;
    for _ in 0..200 {
        let n: i64 = admin
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() \
                 AND wait_event_type = 'Lock' AND wait_event LIKE $1",
                &[&event],
            )
            .await
            .unwrap()
            .get(0);
        if n > 0 {
            return true;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    false
}

/// Transaction ids PostgreSQL has handed out so far (cluster-wide: every
/// write transaction takes one, and so does this call).
async fn xids(c: &tokio_postgres::Client) -> i64 {
    c.query_one("SELECT txid_current()", &[]).await.unwrap().get(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appends_queued_together_share_commits_and_keep_their_queue_order() {
    let Some((url, nodes)) = nodes(1).await else { return };
    let node = &nodes[0];
    let admin = raw(&url).await;
    const N: usize = 300;
    let before = xids(&admin).await;
    // Queued one after another (as a session pipelines), awaited together.
    let mut stored = Vec::new();
    for i in 0..N {
        let to = Target::Channel("lobby".into());
        stored.push(node.queue_append(text("alice", to, &format!("q{i}"), "x", i as i64)).await);
    }
    let mut seqs = Vec::new();
    for s in stored {
        let a = s.await.unwrap();
        assert!(!a.dup);
        seqs.push(a.msg.seq);
    }
    assert_eq!(seqs, (1..=N as u64).collect::<Vec<_>>(), "seqs follow the queue order");
    // One transaction per message would take N ids; other tests share the
    // server, so the bound is loose.
    let used = xids(&admin).await - before - 1;
    assert!(used < (N / 3) as i64, "{used} write transactions for {N} queued appends");
    let (msgs, _) = node.history(&Conv::channel("lobby"), Page::After(0), N as u32).await.unwrap();
    assert_eq!(
        msgs.iter().map(|m| m.cid.clone()).collect::<Vec<_>>(),
        (0..N).map(|i| format!("q{i}")).collect::<Vec<_>>()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_batch_answers_repeats_and_originals_and_lists_dms_and_mentions() {
    let Some((_, nodes)) = nodes(1).await else { return };
    let node = &nodes[0];
    let old = node.append(text("alice", Target::User("bob".into()), "old", "first", 1)).await.unwrap();
    let mut mention = text("alice", Target::User("bob".into()), "m1", "hi @bob", 2);
    mention.mentions = vec!["bob".into(), "alice".into()];
    let queued = [
        mention.clone(),
        text("alice", Target::User("bob".into()), "old", "again", 3),
        text("carol", Target::User("dave".into()), "c1", "hello dave", 4),
        mention,
        text("carol", Target::Channel("lobby".into()), "c2", "to all", 5),
    ];
    let mut waits = Vec::new();
    for m in queued {
        waits.push(node.queue_append(m).await);
    }
    let mut got = Vec::new();
    for w in waits {
        got.push(w.await.unwrap());
    }
    assert!(!got[0].dup && got[0].msg.seq == 2, "{:?}", got[0]);
    assert!(got[1].dup && got[1].msg == old.msg, "a stored (from, cid) answers with the original");
    assert!(!got[2].dup && got[2].msg.seq == 1);
    assert!(got[3].dup && got[3].msg == got[0].msg, "a repeat inside the batch answers with the first");
    assert!(!got[4].dup && got[4].msg.seq == 1);
    // The first message of a DM lists it for both parties.
    for user in ["carol", "dave"] {
        let convs = node.conversations(user).await.unwrap();
        assert!(convs.iter().any(|c| c.conv == Conv::dm("carol", "dave")), "{user}: {convs:?}");
    }
    // Mentions count for the mentioned member, never for the sender.
    let bob = node.conversations("bob").await.unwrap();
    let dm = bob.iter().find(|c| c.conv == Conv::dm("alice", "bob")).unwrap();
    assert_eq!((dm.last_seq, dm.unread, dm.mentions_unread), (2, 2, 1));
    let alice = node.conversations("alice").await.unwrap();
    assert_eq!(alice.iter().find(|c| c.conv == Conv::dm("alice", "bob")).unwrap().mentions_unread, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_refused_by_another_nodes_commit_falls_back_to_one_append_at_a_time() {
    let Some((url, nodes)) = nodes(1).await else { return };
    let node = nodes[0].clone();
    // Another node is storing (alice, "x") in a transaction still open.
    let other = raw(&url).await;
    other.batch_execute("BEGIN").await.unwrap();
    other
        .batch_execute(
            "INSERT INTO conversations (conv, last_seq, last_ts) VALUES ('ch:elsewhere', 1, 9); \
             INSERT INTO messages (conv, seq, mid, cid, sender, target, kind, body, reply_to, ts) VALUES \
             ('ch:elsewhere', 1, 'OTHER', 'x', 'alice', '{\"channel\":\"elsewhere\"}', 'text', '{\"text\":\"o\"}', NULL, 9)",
        )
        .await
        .unwrap();
    let batch = tokio::spawn(async move {
        let y = node.queue_append(text("alice", Target::User("bob".into()), "y", "y", 10)).await;
        let x = node.queue_append(text("alice", Target::User("bob".into()), "x", "x", 11)).await;
        (y.await, x.await)
    });
    // Commit once the batch waits on the open row's unique key.
    assert!(waits_on_a_lock(&url, "%").await, "the batch's statement waits on the other node's row");
    other.batch_execute("COMMIT").await.unwrap();
    let (y, x) = batch.await.unwrap();
    let (y, x) = (y.unwrap(), x.unwrap());
    assert!(!y.dup && y.msg.seq == 1, "{y:?}");
    assert!(x.dup && x.msg.mid == "OTHER", "{x:?}");
    // Nothing of the refused statement stayed: the DM is gapless.
    assert_eq!(nodes[0].conv_last(&Conv::dm("alice", "bob")).await.unwrap().0, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_capped_creation_waits_for_another_nodes_and_counts_it() {
    let Some((url, nodes)) = nodes(1).await else { return };
    let node = nodes[0].clone();
    use crate::store::{ChannelStore, NewChannel};
    let new = |name: &str| NewChannel {
        name: name.into(),
        title: name.into(),
        topic: String::new(),
        private: false,
        creator: Some("alice".into()),
        now: 10,
    };
    assert_eq!(node.create_channel_within(new("first"), 2, 0).await.unwrap(), Some(true));
    // Another node is creating alice's second channel: it holds her turn.
    let other = raw(&url).await;
    other.batch_execute("BEGIN").await.unwrap();
    other
        .batch_execute(
            "SELECT pg_advisory_xact_lock(hashtextextended('courier.channels_created:alice', 0)); \
             INSERT INTO channels (name, title, topic, private, created_by, created) \
             VALUES ('second', 'second', '', false, 'alice', 10)",
        )
        .await
        .unwrap();
    let racing = tokio::spawn(async move { node.create_channel_within(new("third"), 2, 0).await.unwrap() });
    assert!(waits_on_a_lock(&url, "advisory").await, "the creation waits for alice's turn");
    other.batch_execute("COMMIT").await.unwrap();
    assert_eq!(racing.await.unwrap(), None, "the other node's creation counts: the cap of 2 is reached");
    assert_eq!(nodes[0].channels_created_since("alice", 0).await.unwrap(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invitation_answered_on_two_nodes_at_once_has_one_winner() {
    let Some((_, nodes)) = nodes(2).await else { return };
    for round in 0..10 {
        let iid = format!("i{round}");
        nodes[0].create_invite(&new_invite(&iid, "alice", "bob")).await.unwrap();
        let mut tasks = Vec::new();
        for t in 0..8 {
            let (node, iid) = (nodes[t % 2].clone(), iid.clone());
            let to = if t % 2 == 0 { InviteState::Accepted } else { InviteState::Canceled };
            tasks.push(tokio::spawn(async move {
                (
                    node.mark_invite_received(&iid).await.unwrap(),
                    node.transition_invite(&iid, to, None).await.unwrap(),
                )
            }));
        }
        let (mut flipped, mut done) = (0, 0);
        for task in tasks {
            let (marked, transition) = task.await.unwrap();
            flipped += usize::from(marked.is_some());
            done += usize::from(matches!(transition, Transition::Done(_)));
        }
        assert_eq!(done, 1, "round {round}: exactly one transition wins");
        assert!(flipped <= 1, "round {round}: received flipped at most once");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_starting_together_migrate_once() {
    let Some(url) = pg_harness::fresh_database().await else { return };
    let mut starts = Vec::new();
    for _ in 0..6 {
        let url = url.clone();
        starts.push(tokio::spawn(async move { PostgresStore::connect(&url).await }));
    }
    for start in starts {
        start.await.unwrap().expect("every node starts");
    }
    let rows =
        raw(&url).await.query("SELECT version FROM courier_schema ORDER BY version", &[]).await.unwrap();
    let versions: Vec<i32> = rows.iter().map(|r| r.get(0)).collect();
    assert_eq!(versions, (1..=SCHEMA_VERSION).collect::<Vec<_>>());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_with_a_newer_schema_is_refused_and_left_alone() {
    let Some(url) = pg_harness::fresh_database().await else { return };
    let store = PostgresStore::connect(&url).await.unwrap();
    store.append(text("alice", Target::User("bob".into()), "c1", "kept", 1)).await.unwrap();
    store.close().await.unwrap();
    let db = raw(&url).await;
    db.execute("INSERT INTO courier_schema (version) VALUES ($1)", &[&(SCHEMA_VERSION + 1)]).await.unwrap();

    let err = PostgresStore::connect(&url).await.expect_err("a newer schema is refused");
    let StoreError::Unusable(msg) = err else { panic!("expected Unusable, got {err:?}") };
    assert!(msg.contains(&format!("schema version {}", SCHEMA_VERSION + 1)), "{msg}");
    let n: i64 = db.query_one("SELECT count(*) FROM messages", &[]).await.unwrap().get(0);
    assert_eq!(n, 1, "the data is untouched");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_applications_tables_are_refused_and_left_alone() {
    let Some(url) = pg_harness::fresh_database().await else { return };
    let db = raw(&url).await;
    db.batch_execute("CREATE TABLE messages (id INT, note TEXT); INSERT INTO messages VALUES (1, 'theirs')")
        .await
        .unwrap();
    let err = PostgresStore::connect(&url).await.expect_err("foreign tables are in the way");
    assert!(matches!(err, StoreError::Unusable(_)), "{err:?}");
    let schema: Option<String> =
        db.query_one("SELECT to_regclass('courier_schema')::text", &[]).await.unwrap().get(0);
    assert_eq!(schema, None, "nothing was created");
    let note: String = db.query_one("SELECT note FROM messages", &[]).await.unwrap().get(0);
    assert_eq!(note, "theirs");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_server_is_unavailable() {
    // A port nobody listens on (bound, then released).
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let err = PostgresStore::connect(&format!("postgresql://courier@127.0.0.1:{port}/x?connect_timeout=2"))
        .await
        .expect_err("nothing listens there");
    assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
    let err = PostgresStore::connect("not a url at all ===").await.expect_err("invalid");
    assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_connections_fail_as_unavailable_and_the_store_recovers() {
    let Some(url) = pg_harness::fresh_database().await else { return };
    let store = PostgresStore::connect(&url).await.unwrap();
    // Fill the pool with a few open connections.
    let mut tasks = Vec::new();
    let store = Arc::new(store);
    for i in 0..4 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            store.append(text("alice", Target::User("bob".into()), &format!("c{i}"), "x", 1)).await.unwrap()
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    // An administrator (or a failover) cuts every connection.
    let admin = raw(&url).await;
    admin
        .execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE datname = current_database() AND pid <> pg_backend_pid()",
            &[],
        )
        .await
        .unwrap();
    let mut recovered = false;
    for i in 0..20 {
        match store.append(text("alice", Target::User("bob".into()), &format!("after{i}"), "x", 2)).await {
            Ok(_) => {
                recovered = true;
                break;
            }
            Err(StoreError::Unavailable(_)) => {}
            Err(e) => panic!("a cut connection must read as Unavailable, got {e:?}"),
        }
    }
    assert!(recovered, "the pool replaces cut connections");
    let (msgs, _) = store.history(&Conv::dm("alice", "bob"), Page::After(0), 100).await.unwrap();
    let seqs: Vec<u64> = msgs.iter().map(|m| m.seq).collect();
    assert_eq!(seqs, (1..=msgs.len() as u64).collect::<Vec<_>>());
    let cids: HashSet<&str> = msgs.iter().map(|m| m.cid.as_str()).collect();
    assert_eq!(cids.len(), msgs.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_commit_synchronously() {
    let Some(url) = pg_harness::fresh_database().await else { return };
    // Even when the database's default says otherwise.
    raw(&url)
        .await
        .batch_execute(
            "DO $$ BEGIN EXECUTE format('ALTER DATABASE %I SET synchronous_commit = off', current_database()); END $$",
        )
        .await
        .unwrap();
    let check = raw(&url).await;
    let default: String = check.query_one("SHOW synchronous_commit", &[]).await.unwrap().get(0);
    assert_eq!(default, "off", "the test really changed the default");
    let store = PostgresStore::connect(&url).await.unwrap();
    let c = store.client().await.unwrap();
    let setting: String = c.query_one("SHOW synchronous_commit", &[]).await.unwrap().get(0);
    assert_eq!(setting, "on");
}

/// Rows written with each historical schema, by raw SQL as that version
/// of the code would have stored them. Entry `i` is data for schema
/// version `i + 1`; add one with every migration.
const FIXTURES: &[&str] = &[
    // v1
    r#"
        INSERT INTO users VALUES ('alice', 1, 2), ('bob', 1, 3);
        INSERT INTO profiles VALUES ('alice', 'Alice', 'avatar:1', 'hi');
        INSERT INTO last_seen VALUES ('bob', 50);
        INSERT INTO conversations VALUES ('dm:alice:bob', 2, 20), ('ch:lobby', 1, 30);
        INSERT INTO messages (conv, seq, mid, cid, sender, target, kind, body, reply_to, ts) VALUES
            ('dm:alice:bob', 1, 'M1', 'c1', 'alice', '{"user":"bob"}', 'text', '{"text":"one"}', NULL, 10),
            ('dm:alice:bob', 2, 'M2', 'c2', 'bob', '{"user":"alice"}', 'text', '{"text":"two"}', 'M1', 20),
            ('ch:lobby', 1, 'M3', 'c1', 'bob', '{"channel":"lobby"}', 'custom', '{"k":[1,2]}', NULL, 30);
        INSERT INTO dm_members VALUES ('alice', 'dm:alice:bob', 'bob'), ('bob', 'dm:alice:bob', 'alice');
        INSERT INTO cursors VALUES ('dm:alice:bob', 'bob', 2, 1);
        INSERT INTO channels VALUES ('lobby', 'Lobby', '', false, NULL, 1);
        INSERT INTO channels VALUES ('team', 'Team', '', true, 'alice', 2), ('gone', 'Gone', '', false, 'carol', 3);
        INSERT INTO channel_members (channel, user_id, joined) VALUES ('lobby', 'bob', 5), ('lobby', 'alice', 6);
        INSERT INTO channel_members (channel, user_id, joined) VALUES
            ('team', 'bob', 7), ('team', 'alice', 8), ('gone', 'dave', 9), ('gone', 'erin', 10);
        INSERT INTO invites VALUES ('i1', 'alice', 'bob', 'call-i1', '{"a":1}', 'pending', 100, 200, true, NULL, NULL);
        INSERT INTO media VALUES ('m_1', 'alice', 'text/plain', 2, 'ff', 9);
        INSERT INTO media_blobs VALUES ('m_1', '\x6869');
        "#,
    // v2
    r#"
        INSERT INTO conversations (conv, last_seq, last_ts, rel_count) VALUES ('dm:bob:carol', 5, 44, 3);
        INSERT INTO messages (conv, seq, mid, cid, sender, target, kind, body, reply_to, ts,
                              rel_target, rel_count, edited_text, edited_ts, recalled, pinned, pin_seq) VALUES
            ('dm:bob:carol', 1, 'N1', 'n1', 'bob', '{"user":"carol"}', 'text',
             '{"text":"hey @carol","mentions":["carol"]}', NULL, 40, NULL, 0, 'hi @carol', 42, false, 43, 4),
            ('dm:bob:carol', 2, 'N2', 'n2', 'carol', '{"user":"bob"}', 'text', '{"text":"yo"}', NULL, 41,
             NULL, 0, NULL, NULL, false, NULL, NULL),
            ('dm:bob:carol', 3, 'N3', 'n3', 'bob', '{"user":"carol"}', 'edit', '{"target":"N1","text":"hi @carol"}',
             NULL, 42, 'N1', 1, NULL, NULL, false, NULL, NULL),
            ('dm:bob:carol', 4, 'N4', 'n4', 'carol', '{"user":"bob"}', 'pin', '{"target":"N1","on":true}', NULL, 43,
             'N1', 2, NULL, NULL, false, NULL, NULL),
            ('dm:bob:carol', 5, 'N5', 'n5', 'carol', '{"user":"bob"}', 'reaction',
             '{"target":"N1","key":"👍","on":true}', NULL, 44, 'N1', 3, NULL, NULL, false, NULL, NULL);
        INSERT INTO dm_members VALUES ('bob', 'dm:bob:carol', 'carol'), ('carol', 'dm:bob:carol', 'bob');
        INSERT INTO reactions VALUES ('dm:bob:carol', 1, '👍', 'carol', 5);
        INSERT INTO mentions VALUES ('carol', 'dm:bob:carol', 1);
        INSERT INTO channel_removals VALUES ('team', 'zed');
        "#,
    // v3 (indexes only)
    r#"
        INSERT INTO last_seen VALUES ('finn', 110);
        "#,
];

#[test]
fn every_migration_has_a_fixture() {
    assert_eq!(FIXTURES.len(), MIGRATIONS.len());
}

/// Builds schema `version` holding the fixtures of every version up to
/// it, as an older build would have left the database.
async fn build_historical(url: &str, version: usize) {
    let mut script = String::from("BEGIN;\n");
    if version > 0 {
        script += SCHEMA_TABLE;
        script += ";\n";
    }
    for v in 0..version {
        script += MIGRATIONS[v];
        script += FIXTURES[v];
        script += &format!("INSERT INTO courier_schema (version) VALUES ({});\n", v + 1);
    }
    script += "COMMIT;";
    raw(url).await.batch_execute(&script).await.unwrap();
}

/// Tables, columns, constraints and indexes of a database, comparable.
async fn schema_of(url: &str) -> Vec<String> {
    let db = raw(url).await;
    let rows = db
        .query(
            "SELECT format('column %s.%s %s %s %s %s', table_name, column_name, data_type, is_nullable, \
                 coalesce(column_default, '-'), coalesce(collation_name, '-')) \
             FROM information_schema.columns WHERE table_schema = 'public' \
             UNION ALL \
             SELECT format('index %s', indexdef) FROM pg_indexes WHERE schemaname = 'public' \
             UNION ALL \
             SELECT format('constraint %s %s', conname, pg_get_constraintdef(oid)) FROM pg_constraint \
             WHERE connamespace = 'public'::regnamespace \
             ORDER BY 1",
            &[],
        )
        .await
        .unwrap();
    rows.iter().map(|r| r.get(0)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_historical_schema_migrates_to_the_current_one() {
    let Some(fresh_url) = pg_harness::fresh_database().await else { return };
    PostgresStore::connect(&fresh_url).await.unwrap().close().await.unwrap();
    let current = schema_of(&fresh_url).await;

    for version in 0..=MIGRATIONS.len() {
        let url = pg_harness::fresh_database().await.unwrap();
        build_historical(&url, version).await;
        let store = PostgresStore::connect(&url)
            .await
            .unwrap_or_else(|e| panic!("opening a v{version} database: {e}"));
        // The suite's fixture checks follow the SQLite versions; PostgreSQL's
        // v1 and v2 hold the same rows as SQLite's, its v3 only adds indexes.
        check_migrated_fixtures(&store, version.min(2)).await;
        store.close().await.unwrap();
        let versions: Vec<i32> = raw(&url)
            .await
            .query("SELECT version FROM courier_schema ORDER BY version", &[])
            .await
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
        assert_eq!(versions, (1..=SCHEMA_VERSION).collect::<Vec<_>>(), "from v{version}");
        assert_eq!(
            schema_of(&url).await,
            current,
            "schema migrated from v{version} differs from a fresh one"
        );
    }
}
