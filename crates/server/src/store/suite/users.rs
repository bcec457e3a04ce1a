//! Suite cases for users: sign-in (`touch_user`), last-seen times and
//! profiles.

use super::{text, user};
use crate::store::Store;
use courier_proto::Profile;

use std::collections::HashMap;
use std::sync::Arc;

/// Users exist once they signed in; touching again is harmless.
pub async fn users_exist_once_touched(store: Arc<dyn Store>) {
    assert!(!store.user_exists("alice").await.unwrap());
    store.touch_user("alice", 100).await.unwrap();
    assert!(store.user_exists("alice").await.unwrap());
    store.touch_user("alice", 50).await.unwrap();
    store.touch_user("alice", 200).await.unwrap();
    assert!(store.user_exists("alice").await.unwrap());
    assert!(!store.user_exists("Alice").await.unwrap(), "ids are case-sensitive");
    // Being written to does not make a user known.
    store.append(text("bob", user("carol"), "c", "x", 1)).await.unwrap();
    assert!(!store.user_exists("carol").await.unwrap());
}

/// Last-seen times are stored per user and overwritten.
pub async fn last_seen_round_trips(store: Arc<dyn Store>) {
    assert_eq!(store.last_seen(&[]).await.unwrap(), HashMap::new());
    store.set_last_seen("alice", 100).await.unwrap();
    store.set_last_seen("bob", 200).await.unwrap();
    let ask: Vec<String> = ["alice", "bob", "carol"].map(String::from).to_vec();
    let expected = HashMap::from([("alice".to_string(), 100), ("bob".to_string(), 200)]);
    assert_eq!(store.last_seen(&ask).await.unwrap(), expected);
    store.set_last_seen("alice", 300).await.unwrap();
    assert_eq!(store.last_seen(&ask[..1]).await.unwrap(), HashMap::from([("alice".to_string(), 300)]));
}

/// Profiles of known users in the order asked, defaults for unset fields,
/// and updates that touch only the fields given.
pub async fn profiles_have_defaults_and_partial_updates(store: Arc<dyn Store>) {
    store.touch_user("alice", 1).await.unwrap();
    store.touch_user("bob", 1).await.unwrap();
    let profile = |user: &str, name: &str, avatar: &str, status: &str| Profile {
        user: user.into(),
        name: name.into(),
        avatar: avatar.into(),
        status: status.into(),
    };
    let ask: Vec<String> = ["bob", "ghost", "alice"].map(String::from).to_vec();
    assert_eq!(
        store.profiles(&ask).await.unwrap(),
        vec![profile("bob", "bob", "", ""), profile("alice", "alice", "", "")],
        "order asked, unknown users left out, name defaults to the id"
    );

    let p = store.set_profile("alice", None, None, Some("busy")).await.unwrap();
    assert_eq!(p, profile("alice", "alice", "", "busy"), "the name still defaults");
    let p = store.set_profile("alice", Some("Alice"), None, None).await.unwrap();
    assert_eq!(p, profile("alice", "Alice", "", "busy"));
    let p = store.set_profile("alice", None, Some("avatar:3"), None).await.unwrap();
    assert_eq!(p, profile("alice", "Alice", "avatar:3", "busy"));
    let p = store.set_profile("alice", None, None, Some("")).await.unwrap();
    assert_eq!(p, profile("alice", "Alice", "avatar:3", ""), "a field can be cleared");
    let p = store.set_profile("alice", None, None, None).await.unwrap();
    assert_eq!(p, profile("alice", "Alice", "avatar:3", ""), "no fields: unchanged");
    assert_eq!(
        store.profiles(&ask).await.unwrap(),
        vec![profile("bob", "bob", "", ""), profile("alice", "Alice", "avatar:3", "")]
    );
}
