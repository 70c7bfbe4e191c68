"""Fixtures for the Python end-to-end tests: the built `frugal` binary as real processes."""

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def tools_required() -> bool:
    """Whether a missing tool fails the run instead of skipping: in CI (`CI` set) and under
    FRUGAL_REQUIRE_TOOLS=1 (scripts/test.sh), so a fresh machine never passes by skipping."""
    return bool(os.environ.get("CI")) or os.environ.get("FRUGAL_REQUIRE_TOOLS") == "1"


def require_tool(name: str, consequence: str) -> str:
    """The path of executable `name`, the venv's own first (scripts/setup.sh installs some
    there). Missing: the test fails when tools are required, else skips, saying why."""
    in_venv = Path(sys.executable).parent / name
    path = str(in_venv) if in_venv.exists() else shutil.which(name)
    if path is None:
        message = f"{name} is not installed: {consequence}"
        if tools_required():
            pytest.fail(f"{message} (required: CI or FRUGAL_REQUIRE_TOOLS=1 is set)", pytrace=False)
        pytest.skip(message)
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(url: str, timeout: float = 60.0, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process for {url} exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=1) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise TimeoutError(f"{url} not ready after {timeout}s")


@pytest.fixture(scope="session")
def frugal_bin() -> str:
    path = os.environ.get("FRUGAL_BIN") or str(REPO / "target" / "debug" / "frugal")
    if not Path(path).exists():
        pytest.fail(f"{path} is missing: run `cargo build -p frugal` (scripts/test.sh does)")
    return path


class Procs:
    """Starts processes and stops them all at the end of a test."""

    def __init__(self) -> None:
        self.procs: list[subprocess.Popen] = []

    def start(self, args: list[str]) -> subprocess.Popen:
        # Logs go to a file, never a pipe: a full pipe would block the process.
        log = tempfile.NamedTemporaryFile(prefix="frugal-e2e-", suffix=".log", delete=False)
        proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
        self.procs.append(proc)
        return proc

    def stop(self) -> None:
        for proc in self.procs:
            proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()


@pytest.fixture
def procs():
    p = Procs()
    yield p
    p.stop()


def policy_text(base_url: str, models: dict[str, str], default: str, extra: str = "") -> str:
    """A policy that maps aliases to upstream model names on one provider, plus `extra`
    top-level YAML."""
    lines = [
        "providers:",
        "  up:",
        f"    base_url: {base_url}",
        "    timeouts: { connect: 2s, request: 120s, first_byte: 120s, idle: 60s }",
        "models:",
    ]
    for alias, upstream in models.items():
        lines += [
            f"  {alias}:",
            "    provider: up",
            f"    upstream: {upstream}",
            "    price: { input_per_mtok: 0.15, output_per_mtok: 0.60 }",
        ]
    lines.append(f"default_model: {default}")
    return "\n".join(lines) + "\n" + extra


@pytest.fixture
def sidecar(frugal_bin, procs, tmp_path):
    """Returns start(base_url, models, default, extra="") -> sidecar base URL."""

    def start(base_url: str, models: dict[str, str], default: str, extra: str = "") -> str:
        policy = tmp_path / "policy.yaml"
        policy.write_text(policy_text(base_url, models, default, extra))
        port = free_port()
        proc = procs.start([frugal_bin, "serve", "--policy", str(policy), "--listen", f"127.0.0.1:{port}"])
        wait_ready(f"http://127.0.0.1:{port}/readyz", proc=proc)
        return f"http://127.0.0.1:{port}"

    return start


@pytest.fixture
def mock_upstream(frugal_bin, procs) -> str:
    port = free_port()
    proc = procs.start([frugal_bin, "mock-upstream", "--listen", f"127.0.0.1:{port}"])
    wait_ready(f"http://127.0.0.1:{port}/healthz", proc=proc)
    return f"http://127.0.0.1:{port}/v1"
