//! Suite cases for media: exact round trips, ranged reads, the upload quota
//! under concurrency and the daily sum.

use crate::store::{MediaMeta, Store, UploadQuota};

use std::sync::Arc;

/// Bytes and facts come back exactly, also for large and empty objects.
pub async fn media_round_trips(store: Arc<dyn Store>) {
    assert_eq!(store.media("m_none").await.unwrap(), None);
    // 3 MiB of deterministic noise.
    let mut x: u32 = 0x9E37_79B9;
    let big: Vec<u8> = (0..3 << 20)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect();
    let meta = |id: &str, size: usize| MediaMeta {
        id: id.into(),
        owner: "alice".into(),
        mime: "image/png".into(),
        size: size as u64,
        sha256: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08".into(),
        created: 1_764_180_000_000,
    };
    store.put_media(&meta("m_big", big.len()), big.clone()).await.unwrap();
    store.put_media(&meta("m_empty", 0), Vec::new()).await.unwrap();
    assert_eq!(store.media("m_big").await.unwrap(), Some((meta("m_big", big.len()), big)));
    assert_eq!(store.media("m_empty").await.unwrap(), Some((meta("m_empty", 0), Vec::new())));
    assert_eq!(store.media("m_none").await.unwrap(), None);
}

/// Downloads read an object a range at a time: ranges are exact, short at
/// the end, empty past it, and `None` for an unknown object.
pub async fn media_reads_in_chunks(store: Arc<dyn Store>) {
    let bytes: Vec<u8> = (0..1_000_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let meta = MediaMeta {
        id: "m_chunky".into(),
        owner: "alice".into(),
        mime: "application/pdf".into(),
        size: bytes.len() as u64,
        sha256: "00".into(),
        created: 1_764_180_000_000,
    };
    store.put_media(&meta, bytes.clone()).await.unwrap();
    assert_eq!(store.media_meta("m_chunky").await.unwrap(), Some(meta));
    assert_eq!(store.media_meta("m_none").await.unwrap(), None);
    assert_eq!(store.media_chunk("m_none", 0, 10).await.unwrap(), None);
    let chunk = |o: u64, n: usize| {
        let store = store.clone();
        async move { store.media_chunk("m_chunky", o, n).await.unwrap().expect("object exists") }
    };
    assert_eq!(chunk(0, 10).await, bytes[..10]);
    assert_eq!(chunk(262_144, 300_000).await, bytes[262_144..562_144]);
    assert_eq!(chunk(999_990, 100).await, bytes[999_990..], "short at the end");
    assert!(chunk(1_000_000, 100).await.is_empty(), "empty at the end");
    assert!(chunk(5_000_000, 100).await.is_empty(), "empty past the end");
    let mut whole = Vec::new();
    while whole.len() < bytes.len() {
        whole.extend(chunk(whole.len() as u64, crate::store::MEDIA_CHUNK).await);
    }
    assert!(whole == bytes, "chunks add up to the object");
}

/// The quota is checked where the object is stored, in one step with the
/// insert: ten concurrent 100-byte uploads against 450 bytes store four.
pub async fn concurrent_uploads_cannot_pass_the_quota_together(store: Arc<dyn Store>) {
    let quota = UploadQuota { since: 1_764_115_200_000, bytes: 450 };
    let mut tasks = Vec::new();
    for i in 0..10u64 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let created = quota.since + i as i64;
            let meta = MediaMeta {
                id: format!("m_{}", ulid::Ulid::from_parts(created as u64, u128::from(i))),
                owner: "alice".into(),
                mime: "image/png".into(),
                size: 100,
                sha256: "00".into(),
                created,
            };
            store.put_media_within(&meta, vec![7; 100], quota).await.unwrap()
        }));
    }
    let mut stored = 0;
    for t in tasks {
        match t.await.unwrap() {
            None => stored += 1,
            Some(used) => assert!(used + 100 > 450, "refused with {used} used"),
        }
    }
    assert_eq!(stored, 4);
    assert_eq!(store.media_bytes_since("alice", quota.since).await.unwrap(), 400);
    // Another owner has a quota of their own; earlier uploads do not count.
    let meta = MediaMeta {
        id: format!("m_{}", ulid::Ulid::from_parts(quota.since as u64, 99)),
        owner: "bob".into(),
        mime: "image/png".into(),
        size: 450,
        sha256: "00".into(),
        created: quota.since,
    };
    assert_eq!(store.put_media_within(&meta, vec![1; 450], quota).await.unwrap(), None);
}

/// The daily upload quota's sum: one owner's uploads at or after a time.
pub async fn media_bytes_since_counts_one_owner_from_a_time(store: Arc<dyn Store>) {
    let day = 1_764_115_200_000; // a UTC midnight
    let put = |owner: &'static str, size: usize, created: i64| {
        let store = store.clone();
        async move {
            // Server-minted ids: `m_` + the ULID of the upload time.
            let id = format!("m_{}", ulid::Ulid::from_parts(created as u64, rand::random()));
            let meta = MediaMeta {
                id,
                owner: owner.into(),
                mime: "image/png".into(),
                size: size as u64,
                sha256: "00".into(),
                created,
            };
            store.put_media(&meta, vec![1; size]).await.unwrap();
        }
    };
    assert_eq!(store.media_bytes_since("alice", day).await.unwrap(), 0);
    put("alice", 100, day - 1).await;
    put("alice", 10, day).await;
    put("alice", 20, day + 3_600_000).await;
    put("bob", 1000, day + 1).await;
    assert_eq!(store.media_bytes_since("alice", day).await.unwrap(), 30);
    assert_eq!(store.media_bytes_since("alice", day - 1).await.unwrap(), 130);
    assert_eq!(store.media_bytes_since("bob", day).await.unwrap(), 1000);
    assert_eq!(store.media_bytes_since("carol", 0).await.unwrap(), 0);
}
