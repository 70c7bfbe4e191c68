//! The shared tier's client against a real Redis: counters that two replicas share without
//! overspending, answers and the semantic stream, isolation by key, and faults (Redis down,
//! killed and back) that fail fast instead of failing requests.

use std::sync::Arc;
use std::time::{Duration, Instant};

use frugal_shared::stream::FROM_START;
use frugal_shared::{Amounts, Cap, Caps, Reserve, SemanticEntry, SharedClient, SharedConfig};
use frugal_tests::redis::RedisServer;

fn client(url: &str, prefix: &str) -> SharedClient {
    SharedClient::new(&SharedConfig {
        url: url.to_string(),
        key_prefix: prefix.to_string(),
        timeout: Duration::from_millis(500),
    })
    .expect("valid URL")
}

fn nano(n: i64) -> Amounts {
    Amounts {
        cost_nano: n,
        tokens: 0,
    }
}

const TTL: Duration = Duration::from_secs(60);

#[tokio::test]
async fn holds_from_two_replicas_never_pass_the_cap() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let (a, b) = (client(&redis.url(), "t"), client(&redis.url(), "t"));
    let counter = a.budget_counter("acme", "day", 1_700_000_000);
    assert_eq!(counter, b.budget_counter("acme", "day", 1_700_000_000));
    let caps = Caps {
        cost_nano: Some(1_000),
        tokens: None,
    };
    let mut tasks = Vec::new();
    for i in 0..64 {
        let replica = if i % 2 == 0 { a.clone() } else { b.clone() };
        let counter = counter.clone();
        tasks.push(tokio::spawn(async move {
            replica.reserve(&counter, caps, nano(30), TTL).await
        }));
    }
    let mut held = 0;
    for task in tasks {
        if let Reserve::Held { .. } = task.await.unwrap().unwrap() {
            held += 1;
        }
    }
    assert_eq!(held, 33, "1,000 holds 33 of 30 and not one more");
    // Settling to less frees room; releasing gives it all back.
    for _ in 0..33 {
        a.settle(&counter, nano(30), nano(10), TTL).await.unwrap();
    }
    let after = a.settle(&counter, nano(0), nano(0), TTL).await.unwrap();
    assert_eq!(after.cost_nano, 330);
    match b.reserve(&counter, caps, nano(670), TTL).await.unwrap() {
        Reserve::Held { used, held } => {
            assert_eq!((used.cost_nano, held.cost_nano), (330, 670));
        }
        other => panic!("{other:?}"),
    }
    match a.reserve(&counter, caps, nano(1), TTL).await.unwrap() {
        Reserve::Refused { cap, used, held } => {
            assert_eq!((cap, used.cost_nano, held.cost_nano), (Cap::Cost, 330, 670));
        }
        other => panic!("{other:?}"),
    }
    b.release(&counter, nano(670), TTL).await.unwrap();
    assert!(matches!(
        a.reserve(&counter, caps, nano(670), TTL).await.unwrap(),
        Reserve::Held { .. }
    ));
}

#[tokio::test]
async fn token_caps_windows_and_tenants_have_their_own_counters() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let c = client(&redis.url(), "t");
    let run = c.run_counter("acme", "run-1");
    let caps = Caps {
        cost_nano: None,
        tokens: Some(100),
    };
    let want = Amounts {
        cost_nano: 5,
        tokens: 80,
    };
    assert!(matches!(
        c.reserve(&run, caps, want, TTL).await.unwrap(),
        Reserve::Held { .. }
    ));
    assert!(matches!(
        c.reserve(&run, caps, want, TTL).await.unwrap(),
        Reserve::Refused {
            cap: Cap::Tokens,
            ..
        }
    ));
    // Another run, tenant, window or prefix is another counter.
    for other in [
        c.run_counter("acme", "run-2"),
        c.run_counter("other", "run-1"),
        c.budget_counter("acme", "day", 1),
        client(&redis.url(), "u").run_counter("acme", "run-1"),
    ] {
        assert_ne!(other, run);
        assert!(matches!(
            c.reserve(&other, caps, want, TTL).await.unwrap(),
            Reserve::Held { .. }
        ));
    }
    // A release never leaves a negative hold behind.
    c.release(&run, want, TTL).await.unwrap();
    c.release(&run, want, TTL).await.unwrap();
    assert!(matches!(
        c.reserve(
            &run,
            caps,
            Amounts {
                cost_nano: 0,
                tokens: 100
            },
            TTL
        )
        .await
        .unwrap(),
        Reserve::Held { .. }
    ));
}

#[tokio::test]
async fn a_soft_warning_is_claimed_once_across_replicas() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let (a, b) = (client(&redis.url(), "t"), client(&redis.url(), "t"));
    let event: &[&[u8]] = &[b"acme", b"day", b"1700000000", b"0.8"];
    assert!(a.first_to_claim(event, TTL).await.unwrap());
    assert!(!b.first_to_claim(event, TTL).await.unwrap());
    assert!(!a.first_to_claim(event, TTL).await.unwrap());
    assert!(b
        .first_to_claim(&[b"acme", b"day", b"1700086400", b"0.8"], TTL)
        .await
        .unwrap());
}

#[tokio::test]
async fn answers_expire_and_stay_under_their_own_key() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let (a, b) = (client(&redis.url(), "t"), client(&redis.url(), "t"));
    a.put_answer(&[1; 32], b"{\"answer\":1}", TTL)
        .await
        .unwrap();
    a.put_answer(&[2; 32], b"short-lived", Duration::from_millis(50))
        .await
        .unwrap();
    assert_eq!(
        b.get_answer(&[1; 32]).await.unwrap().as_deref(),
        Some(&b"{\"answer\":1}"[..])
    );
    assert_eq!(b.get_answer(&[3; 32]).await.unwrap(), None);
    assert_eq!(
        client(&redis.url(), "u")
            .get_answer(&[1; 32])
            .await
            .unwrap(),
        None
    );
    tokio::time::sleep(Duration::from_millis(120)).await;
    assert_eq!(b.get_answer(&[2; 32]).await.unwrap(), None, "expired");
}

fn entry(n: u8) -> SemanticEntry {
    SemanticEntry {
        key: [n; 32],
        scope: [7; 32],
        created_ms: 1_700_000_000_000 + u64::from(n),
        origin: 1,
        question: format!("question {n}"),
        vector: vec![f32::from(n), 0.5, -0.25],
    }
}

#[tokio::test]
async fn the_stream_delivers_every_entry_in_order_and_warms_newest_first() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let (a, b) = (client(&redis.url(), "t"), client(&redis.url(), "t"));
    // B waits on the stream while A appends.
    let reader = {
        let b = b.clone();
        tokio::spawn(async move {
            b.read_entries(FROM_START, 100, Duration::from_secs(5))
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    a.append_entry(&entry(1), 1000).await.unwrap();
    let first = reader.await.unwrap().unwrap();
    assert_eq!(first.entries.len(), 1);
    assert_eq!(first.entries[0].1, entry(1));
    for n in 2..=5 {
        a.append_entry(&entry(n), 1000).await.unwrap();
    }
    let rest = b
        .read_entries(&first.last_id, 100, Duration::from_millis(10))
        .await
        .unwrap();
    let keys: Vec<u8> = rest.entries.iter().map(|(_, e)| e.key[0]).collect();
    assert_eq!(keys, [2, 3, 4, 5]);
    let idle = b
        .read_entries(&rest.last_id, 100, Duration::from_millis(10))
        .await
        .unwrap();
    assert!(idle.entries.is_empty());
    assert_eq!(idle.last_id, rest.last_id);
    // A new replica warms from the newest entries only, and reads on after the newest.
    let warm = client(&redis.url(), "t")
        .newest_entries(3, Duration::from_secs(1))
        .await
        .unwrap();
    let keys: Vec<u8> = warm.entries.iter().map(|(_, e)| e.key[0]).collect();
    assert_eq!(keys, [5, 4, 3]);
    assert_eq!(warm.last_id, rest.last_id);
    assert_eq!(a.stream_len().await.unwrap(), 5);
}

#[tokio::test]
async fn with_redis_down_every_operation_fails_fast_and_recovers_when_it_returns() {
    let Some(mut redis) = RedisServer::start() else {
        return;
    };
    let c = client(&redis.url(), "t");
    c.ping().await.unwrap();
    redis.kill();
    let started = Instant::now();
    assert!(c.get_answer(&[1; 32]).await.is_err());
    assert!(c.put_answer(&[1; 32], b"x", TTL).await.is_err());
    assert!(c
        .reserve("t:budget:x", Caps::default(), nano(1), TTL)
        .await
        .is_err());
    assert!(c.append_entry(&entry(1), 10).await.is_err());
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "four operations, each bounded by 500 ms: {:?}",
        started.elapsed()
    );
    redis.restart();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match c.ping().await {
            Ok(()) => break,
            Err(e) if Instant::now() > deadline => panic!("no reconnection within 10 s: {e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    c.put_answer(&[1; 32], b"back", TTL).await.unwrap();
    assert_eq!(
        c.get_answer(&[1; 32]).await.unwrap().as_deref(),
        Some(&b"back"[..])
    );
}

#[tokio::test]
async fn a_client_for_an_absent_server_is_made_and_fails_fast() {
    let port = frugal_tests::free_addr().port();
    let c = Arc::new(client(&format!("redis://127.0.0.1:{port}"), "t"));
    let started = Instant::now();
    assert!(c.ping().await.is_err());
    assert!(started.elapsed() < Duration::from_secs(2));
    assert!(SharedClient::new(&SharedConfig {
        url: "http://not-redis".into(),
        key_prefix: "t".into(),
        timeout: Duration::from_millis(50),
    })
    .is_err());
}
