//! Hot reload: a valid policy change is picked up (also through a ConfigMap-style symlink swap),
//! a broken one is rejected while the old policy keeps serving, and in-flight requests finish on
//! the policy they started with.

use std::path::Path;
use std::time::{Duration, Instant};

use frugal_tests::{chat_body, policy_for, MockUpstream, Sidecar};
use serde_json::Value;

const POLL: Duration = Duration::from_millis(100);

async fn revision(sidecar: &Sidecar) -> u64 {
    let ready: Value = sidecar
        .client
        .get(sidecar.url("/readyz"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    ready["policy_revision"].as_u64().unwrap()
}

async fn wait_for_revision(sidecar: &Sidecar, wanted: u64) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while revision(sidecar).await != wanted {
        assert!(
            Instant::now() < deadline,
            "revision {wanted} never became live"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn write(path: &Path, text: &str) {
    // Write then rename, as editors and kubelet do, so a reader never sees half a file.
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

#[tokio::test]
async fn valid_change_is_applied_and_broken_reload_keeps_old_policy() {
    let (first, second) = (MockUpstream::start().await, MockUpstream::start().await);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("policy.yaml");
    write(&path, &policy_for(&first.base_url(), ""));
    let sidecar = Sidecar::start_watching(&path, POLL).await;
    assert_eq!(sidecar.chat(&chat_body("cheap", "one")).await.status(), 200);
    assert_eq!(first.total_calls(), 1);

    write(&path, &policy_for(&second.base_url(), ""));
    wait_for_revision(&sidecar, 2).await;
    assert_eq!(sidecar.chat(&chat_body("cheap", "two")).await.status(), 200);
    assert_eq!(
        (first.total_calls(), second.total_calls()),
        (1, 1),
        "the new upstream answers"
    );

    write(
        &path,
        "providers: {}\nmodels:\n  cheap: {provider: nowhere}\n",
    );
    tokio::time::sleep(POLL * 5).await;
    assert_eq!(
        revision(&sidecar).await,
        2,
        "the broken file is not applied"
    );
    assert_eq!(
        sidecar.chat(&chat_body("cheap", "three")).await.status(),
        200,
        "old policy keeps serving"
    );
    assert_eq!(second.total_calls(), 2);

    let forced = sidecar
        .client
        .post(sidecar.url("/v1/frugal/reload"))
        .send()
        .await
        .unwrap();
    assert_eq!(forced.status(), 422);
    let outcome: Value = forced.json().await.unwrap();
    assert_eq!(outcome["result"], "rejected");
    assert!(
        outcome["errors"].as_array().unwrap().len() >= 2,
        "{outcome}"
    );

    let metrics = sidecar.metrics().await;
    assert!(
        metrics.contains("frugal_policy_reloads_total{result=\"applied\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("frugal_policy_reloads_total{result=\"rejected\"} 2"),
        "{metrics}"
    );
}

#[cfg(unix)]
#[tokio::test]
async fn configmap_symlink_swap_is_picked_up() {
    use std::os::unix::fs::symlink;
    let (first, second) = (MockUpstream::start().await, MockUpstream::start().await);
    // kubelet's layout: policy.yaml -> ..data/policy.yaml, ..data -> ..2024_01_01_v1 (swapped atomically).
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let v1 = root.join("..v1");
    std::fs::create_dir(&v1).unwrap();
    std::fs::write(v1.join("policy.yaml"), policy_for(&first.base_url(), "")).unwrap();
    symlink("..v1", root.join("..data")).unwrap();
    symlink("..data/policy.yaml", root.join("policy.yaml")).unwrap();
    // File events are not relied on here: a long poll plus events must still notice the swap.
    let sidecar =
        Sidecar::start_watching(&root.join("policy.yaml"), Duration::from_millis(200)).await;
    assert_eq!(revision(&sidecar).await, 1);

    let v2 = root.join("..v2");
    std::fs::create_dir(&v2).unwrap();
    std::fs::write(v2.join("policy.yaml"), policy_for(&second.base_url(), "")).unwrap();
    symlink("..v2", root.join("..data_tmp")).unwrap();
    std::fs::rename(root.join("..data_tmp"), root.join("..data")).unwrap();
    wait_for_revision(&sidecar, 2).await;
    assert_eq!(sidecar.chat(&chat_body("cheap", "hi")).await.status(), 200);
    assert_eq!((first.total_calls(), second.total_calls()), (0, 1));
}

#[tokio::test]
async fn in_flight_request_finishes_on_the_policy_it_started_with() {
    let (first, second) = (MockUpstream::start().await, MockUpstream::start().await);
    first.always().delay(Duration::from_millis(800));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("policy.yaml");
    write(&path, &policy_for(&first.base_url(), ""));
    let sidecar = Sidecar::start_watching(&path, POLL).await;
    let (client, url) = (sidecar.client.clone(), sidecar.url("/v1/chat/completions"));
    let slow = tokio::spawn(async move {
        client
            .post(url)
            .json(&chat_body("cheap", "slow"))
            .send()
            .await
    });
    while first.total_calls() == 0 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    write(&path, &policy_for(&second.base_url(), ""));
    wait_for_revision(&sidecar, 2).await;
    let response = slow.await.unwrap().unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        (first.total_calls(), second.total_calls()),
        (1, 0),
        "finished on the old upstream"
    );
}

#[tokio::test]
async fn reload_endpoint_without_a_file_is_404() {
    let mock = MockUpstream::start().await;
    let sidecar = Sidecar::in_front_of(&mock).await;
    let response = sidecar
        .client
        .post(sidecar.url("/v1/frugal/reload"))
        .send()
        .await
        .unwrap();
    frugal_tests::expect_error(response, 404).await;
}

#[test]
fn committed_schema_is_current() {
    let committed = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../policies/schema.json"
    ))
    .expect(
        "policies/schema.json exists (regenerate: frugal policy schema > policies/schema.json)",
    );
    let current = serde_json::to_string_pretty(&frugal::policy::raw::json_schema()).unwrap();
    assert_eq!(
        committed.trim_end(),
        current,
        "policies/schema.json is stale: run `frugal policy schema > policies/schema.json`"
    );
}
