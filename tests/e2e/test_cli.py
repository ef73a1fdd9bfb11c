"""The CLI as an operator uses it: check, schema, run's refusals, and the built-in demo."""

from __future__ import annotations

import json
import resource
import shlex
import signal
import subprocess
import sys
from collections import Counter

import httpx
import pytest

from e2e.proxy import accepts, free_port, wait_until

BASCULE = [sys.executable, "-m", "bascule"]
VALID = """\
listeners:
  - {name: main, bind: "127.0.0.1:18080"}
routes:
  - {name: site, match: {path: /}, upstream: web}
upstreams:
  web:
    targets: [{address: "127.0.0.1:18081"}]
"""


def bascule(*args: str, timeout: float = 20) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*BASCULE, *args], capture_output=True, text=True, timeout=timeout)


def test_check_accepts_a_valid_file(tmp_path):
    path = tmp_path / "ok.yaml"
    path.write_text(VALID)
    result = bascule("check", "-c", str(path))
    assert result.returncode == 0, result.stderr
    assert "OK" in result.stdout


def test_check_lists_every_error_with_line_key_path_and_suggestion(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(
        VALID.replace("match: {path: /}", "match: {pth: /}").replace(
            "upstream: web", "upstream: webb"
        )
    )
    result = bascule("check", "-c", str(path))
    assert result.returncode == 2
    assert f"{path}:4:" in result.stderr
    assert "routes[0].match.pth" in result.stderr
    assert "did you mean 'path'" in result.stderr


def test_schema_is_json_schema_of_the_config():
    result = bascule("schema")
    assert result.returncode == 0
    schema = json.loads(result.stdout)
    assert {"listeners", "routes", "upstreams"} <= set(schema["properties"])


def test_demo_spreads_requests_over_three_backends_and_stops_on_sigterm():
    port = free_port()
    proc = subprocess.Popen(
        [*BASCULE, "demo", "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert wait_until(lambda: accepts(port), timeout=15), "the demo never accepted"
        with httpx.Client(base_url=f"http://127.0.0.1:{port}") as client:
            seen = Counter(client.get("/").json()["backend"] for _ in range(8))
            api = client.get("/api/users")
            health = client.get("/health")
        assert seen == {"backend-1": 4, "backend-2": 2, "backend-3": 2}  # weights 2:1:1
        assert api.json()["path"] == "/users"
        assert health.text == "ok\n"
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=15)
    assert proc.returncode == 0, err
    assert "curl" in err  # the printed lines to try
    assert sum(1 for line in out.splitlines() if line.startswith('{"time"')) == 10


def test_run_lifts_the_open_files_limit_to_the_hard_limit(tmp_path):
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard <= 64:
        pytest.skip("no finite hard limit above the one this test sets")
    port = free_port()
    path = tmp_path / "ok.yaml"
    path.write_text(VALID.replace("127.0.0.1:18080", f"127.0.0.1:{port}"))
    command = " ".join(shlex.quote(part) for part in [*BASCULE, "run", "-c", str(path)])
    proc = subprocess.Popen(
        ["sh", "-c", f"ulimit -Sn 64 && exec {command}"], stderr=subprocess.PIPE, text=True
    )
    try:
        assert wait_until(lambda: accepts(port), timeout=15), "bascule never accepted"
        limits = f"/proc/{proc.pid}/limits"
        with open(limits) as lines:
            row = next(line for line in lines if line.startswith("Max open files"))
        assert int(row.split()[3]) == hard
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=15)
    assert proc.returncode == 0, err
    assert f"open files limit: {hard}" in err
