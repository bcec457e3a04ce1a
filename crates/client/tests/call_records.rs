//! Call records (protocol v1.2 §14) against the real server, in-process on
//! loopback: the caller's `Client::send_call_record` goes out once with cid
//! `call-<iid>`, reaches the callee, survives being queued offline, and is
//! refused locally for the callee or a malformed outcome.

mod support;

use courier_client::{Client, ClientError, DeliveryStatus};
use courier_proto::{Conv, InviteState};
use serde_json::Map;
use support::{TestServer, alice_and_bob, settled, until};

/// Alice calls Bob and Bob accepts; returns the invitation id.
async fn accepted_call(alice: &Client, bob: &Client) -> String {
    let iid = alice.invite("bob", Map::new(), 60).await.unwrap().invite.iid;
    until(bob, "bob has the invitation", || bob.invites().unwrap().iter().any(|v| v.invite.iid == iid)).await;
    let v = bob.answer(&iid, true, Map::new()).await.unwrap();
    assert_eq!(v.map(|v| v.invite.state), Some(InviteState::Accepted));
    until(alice, "alice sees accepted", || {
        alice
            .invites()
            .unwrap()
            .iter()
            .any(|v| v.invite.iid == iid && v.invite.state == InviteState::Accepted)
    })
    .await;
    iid
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_caller_writes_one_record_that_reaches_the_callee() {
    let mut server = TestServer::started().await;
    let (alice, bob, _dirs) = alice_and_bob(&server).await;
    let dm = Conv::dm("alice", "bob");

    let iid = accepted_call(&alice, &bob).await;
    let m = alice.send_call_record(&iid, true, "completed", 192).unwrap();
    assert_eq!(
        (m.cid.as_str(), m.kind.as_str(), m.conv.clone()),
        (format!("call-{iid}").as_str(), "call", dm.clone())
    );
    let stored = settled(&alice, &m.cid).await;
    assert_eq!(stored.body["outcome"], "completed");
    until(&bob, "bob has the record", || bob.store().message_by_cid("alice", &m.cid).unwrap().is_some())
        .await;
    let got = bob.store().message_by_cid("alice", &m.cid).unwrap().unwrap();
    assert_eq!(
        (got.kind.as_str(), got.body["iid"].as_str(), got.body["video"].as_bool()),
        ("call", Some(iid.as_str()), Some(true))
    );
    assert_eq!(got.body["duration_s"], 192);

    // Written once: a second call returns the first record.
    let again = alice.send_call_record(&iid, true, "completed", 192).unwrap();
    assert_eq!(again.mid, stored.mid);
    let records = alice.history(&dm, None, 50).unwrap().into_iter().filter(|m| m.kind == "call").count();
    assert_eq!(records, 1);

    // Only the caller writes it, with a known outcome and at most a week.
    assert!(matches!(bob.send_call_record(&iid, false, "completed", 1), Err(ClientError::Invalid(_))));
    assert!(matches!(alice.send_call_record(&iid, false, "exploded", 1), Err(ClientError::Invalid(_))));
    assert!(matches!(
        alice.send_call_record(&iid, false, "completed", 604_801),
        Err(ClientError::Invalid(_))
    ));
    assert!(matches!(alice.send_call_record("nope", false, "failed", 0), Err(ClientError::Invalid(_))));

    // Queued offline, delivered on reconnect.
    let iid2 = accepted_call(&alice, &bob).await;
    server.stop().await;
    let queued = alice.send_call_record(&iid2, false, "failed", 0).unwrap();
    assert_eq!(queued.status, DeliveryStatus::Pending);
    server.start().await;
    let sent = settled(&alice, &queued.cid).await;
    assert_eq!(sent.body["outcome"], "failed");
}
