//! The shared tier's client against a real Redis: counters that two replicas share without
//! overspending, answers and the semantic stream, isolation by key, and faults (Redis down,
//! killed and back) that fail fast instead of failing requests.

use std::sync::Arc;
use std::time::{Duration, Instant};

use frugal_shared::stream::FROM_START;
use frugal_shared::{
    Amounts, Cap, Caps, Lifetimes, Reserve, SemanticEntry, SharedClient, SharedConfig, SharedError,
};
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
const LIVES: Lifetimes = Lifetimes {
    counter: TTL,
    lease: TTL,
};

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
        let hold = counter.new_hold();
        tasks.push(tokio::spawn(async move {
            let reserve = replica.reserve(&hold, caps, nano(30), LIVES).await;
            (hold, reserve)
        }));
    }
    let mut held = Vec::new();
    for task in tasks {
        let (hold, reserve) = task.await.unwrap();
        if let Reserve::Held { .. } = reserve.unwrap() {
            held.push(hold);
        }
    }
    assert_eq!(held.len(), 33, "1,000 holds 33 of 30 and not one more");
    // Settling to less frees room; settling a hold again frees nothing more.
    for hold in &held {
        a.settle(hold, nano(10), TTL).await.unwrap();
    }
    a.release(&held[0], TTL).await.unwrap();
    let (used, holding) = a.counted(&counter).await.unwrap();
    assert_eq!((used.cost_nano, holding.cost_nano), (330, 0));
    let last = counter.new_hold();
    match b.reserve(&last, caps, nano(670), LIVES).await.unwrap() {
        Reserve::Held { used, held } => {
            assert_eq!((used.cost_nano, held.cost_nano), (330, 670));
        }
        other => panic!("{other:?}"),
    }
    // Reserving the same hold again (a retry) holds nothing more.
    assert!(matches!(
        b.reserve(&last, caps, nano(670), LIVES).await.unwrap(),
        Reserve::Held { held, .. } if held.cost_nano == 670
    ));
    match a
        .reserve(&counter.new_hold(), caps, nano(1), LIVES)
        .await
        .unwrap()
    {
        Reserve::Refused { cap, used, held } => {
            assert_eq!((cap, used.cost_nano, held.cost_nano), (Cap::Cost, 330, 670));
        }
        other => panic!("{other:?}"),
    }
    b.release(&last, TTL).await.unwrap();
    assert!(matches!(
        a.reserve(&counter.new_hold(), caps, nano(670), LIVES)
            .await
            .unwrap(),
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
    let first = run.new_hold();
    assert!(matches!(
        c.reserve(&first, caps, want, LIVES).await.unwrap(),
        Reserve::Held { .. }
    ));
    assert!(matches!(
        c.reserve(&run.new_hold(), caps, want, LIVES).await.unwrap(),
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
            c.reserve(&other.new_hold(), caps, want, LIVES)
                .await
                .unwrap(),
            Reserve::Held { .. }
        ));
    }
    // Releasing twice never leaves a negative hold behind.
    c.release(&first, TTL).await.unwrap();
    c.release(&first, TTL).await.unwrap();
    let all = Amounts {
        cost_nano: 0,
        tokens: 100,
    };
    assert!(matches!(
        c.reserve(&run.new_hold(), caps, all, LIVES).await.unwrap(),
        Reserve::Held { .. }
    ));
}

#[tokio::test]
async fn a_hold_left_behind_stops_counting_when_its_lease_ends_and_a_renewed_one_does_not() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let c = client(&redis.url(), "t");
    let counter = c.budget_counter("acme", "day", 1);
    let caps = Caps {
        cost_nano: Some(100),
        tokens: None,
    };
    // A 1 s lease renewed every 400 ms: 600 ms of slack for a busy machine.
    let short = Lifetimes {
        counter: TTL,
        lease: Duration::from_millis(1000),
    };
    // A hold whose replica died: never settled, never renewed.
    let lost = counter.new_hold();
    assert!(matches!(
        c.reserve(&lost, caps, nano(60), short).await.unwrap(),
        Reserve::Held { .. }
    ));
    // A hold whose request is still running, renewed within its lease.
    let running = c.run_counter("acme", "long").new_hold();
    let run_caps = Caps {
        cost_nano: Some(100),
        tokens: None,
    };
    assert!(matches!(
        c.reserve(&running, run_caps, nano(60), short)
            .await
            .unwrap(),
        Reserve::Held { .. }
    ));
    assert!(matches!(
        c.reserve(&counter.new_hold(), caps, nano(60), short)
            .await
            .unwrap(),
        Reserve::Refused { .. }
    ));
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert!(c.renew(&running, short.lease).await.unwrap());
    }
    // 1.2 s on: the lost hold's lease ran out, the running one's did not.
    let next = counter.new_hold();
    match c.reserve(&next, caps, nano(60), short).await.unwrap() {
        Reserve::Held { used, held } => assert_eq!((used.cost_nano, held.cost_nano), (0, 60)),
        other => panic!("the lost hold still counts: {other:?}"),
    }
    assert!(matches!(
        c.reserve(&running.counter().new_hold(), run_caps, nano(60), short)
            .await
            .unwrap(),
        Reserve::Refused { .. }
    ));
    // The lost request settling late pays what it used and frees none of the new hold's room.
    c.settle(&lost, nano(25), TTL).await.unwrap();
    let (used, held) = c.counted(&counter).await.unwrap();
    assert_eq!((used.cost_nano, held.cost_nano), (25, 60));
    // A lease that ran out cannot be renewed: the request learns its hold is gone.
    tokio::time::sleep(Duration::from_millis(1300)).await;
    assert!(!c.renew(&next, short.lease).await.unwrap());
}

#[tokio::test]
async fn a_reserve_whose_reply_timed_out_is_undone_by_releasing_its_id() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let c = SharedClient::new(&SharedConfig {
        url: redis.url(),
        key_prefix: "t".into(),
        timeout: Duration::from_millis(100),
    })
    .unwrap();
    c.ping().await.unwrap();
    let counter = c.budget_counter("acme", "day", 1);
    let caps = Caps {
        cost_nano: Some(100),
        tokens: None,
    };
    // Redis has run the script before (so it answers EVALSHA, not NOSCRIPT, after a stall).
    let earlier = c.budget_counter("acme", "day", 0).new_hold();
    c.reserve(&earlier, caps, nano(1), LIVES).await.unwrap();
    // Redis stalls: the reserve times out here but runs in Redis once the pause ends.
    redis.pause(Duration::from_millis(600));
    let hold = counter.new_hold();
    assert!(matches!(
        c.reserve(&hold, caps, nano(60), LIVES).await,
        Err(SharedError::Timeout(_))
    ));
    tokio::time::sleep(Duration::from_millis(800)).await;
    let (_, held) = c.counted(&counter).await.unwrap();
    assert_eq!(
        held.cost_nano, 60,
        "Redis ran the reserve after the client gave up"
    );
    // Releasing by id undoes it (a release in a stall waits longer than a reserve: nobody
    // waits on it, and it must not be lost).
    c.release(&hold, TTL).await.unwrap();
    let (used, held) = c.counted(&counter).await.unwrap();
    assert_eq!((used.cost_nano, held.cost_nano), (0, 0));
    assert!(matches!(
        c.reserve(&counter.new_hold(), caps, nano(100), LIVES)
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
    let hold = c.budget_counter("acme", "day", 1).new_hold();
    assert!(c
        .reserve(&hold, Caps::default(), nano(1), LIVES)
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
