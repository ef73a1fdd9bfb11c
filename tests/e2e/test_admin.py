"""The admin listener of a real `bascule run` with two workers: the node's metrics as one
set of series (exact after known traffic, kept through a reload and a killed worker), its
status, and its answers to requests it does not serve."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import jsonschema
from prometheus_client.parser import text_string_to_metric_families

from e2e.backends import named, refused_port
from e2e.cache_support import Origin
from e2e.proxy import config, free_port, wait_until
from e2e.supervised import BASCULE, Instance, failures, get, listening, running, steady_load


def node(port: int, admin: int, *targets: Any) -> dict[str, Any]:
    return {
        **config(*targets, **listening(port)),
        "workers": 2,
        "admin": {"bind": f"127.0.0.1:{admin}"},
    }


def admin_get(admin: int, path: str, method: str = "GET", header: str = "") -> tuple[int, bytes]:
    """Status and body of one admin request (`header`: one more header line)."""
    lines = f"{method} {path} HTTP/1.1\r\nHost: admin\r\n" + (f"{header}\r\n" if header else "")
    with socket.create_connection(("127.0.0.1", admin), timeout=10) as sock:
        sock.sendall(f"{lines}\r\n".encode())
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status = int(head.split(b" ")[1])
    assert status != 401 or b"WWW-Authenticate: Bearer" in head
    return status, body


def samples(admin: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    status, body = admin_get(admin, "/metrics")
    assert status == 200
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(body.decode())
        for s in family.samples
    }


def app_requests(admin: int, target: str) -> float:
    key = (("code", "200"), ("listener", "public"), ("route", "app"), ("target", target))
    return samples(admin).get(("bascule_requests_total", (*key, ("upstream", "app"))), 0)


def reporting(admin: int) -> float:
    return samples(admin).get(("bascule_workers", ()), 0)


def started(bascule: Instance, admin: int) -> None:
    assert wait_until(lambda: len(bascule.workers()) == 2, timeout=10)
    assert wait_until(lambda: reporting(admin) == 2, timeout=10)


def test_metrics_count_every_request_of_every_worker_once(backend, tmp_path):
    port, admin = free_port(), free_port()
    a = backend(named("a"))
    with running(node(port, admin, a), tmp_path) as bascule:
        started(bascule, admin)
        before = app_requests(admin, a.address)
        answered = [get(port) for _ in range(60)]  # new connections: both workers serve
        assert all(r.endswith(b"a") for r in answered)
        assert wait_until(lambda: app_requests(admin, a.address) == before + 60, timeout=5)
        time.sleep(1.5)  # another round of snapshots: still exact
        assert app_requests(admin, a.address) == before + 60
        values = samples(admin)
        route = (("route", "app"), ("upstream", "app"))
        assert values["bascule_request_duration_seconds_count", route] >= 60
        assert values["bascule_bytes_sent_total", (("listener", "public"),)] >= 60
        assert values["bascule_target_up", (("target", a.address), ("upstream", "app"))] == 1


def test_counters_survive_a_reload_and_a_killed_worker(backend, tmp_path):
    port, admin = free_port(), free_port()
    a = backend(named("a"))
    cfg = node(port, admin, a)
    with running(cfg, tmp_path) as bascule:
        started(bascule, admin)
        for _ in range(30):
            get(port)
        assert wait_until(lambda: app_requests(admin, a.address) == 30, timeout=5)
        time.sleep(1.2)  # the snapshot a crash leaves behind is at most a second old
        victim = min(bascule.workers())
        os.kill(victim, signal.SIGKILL)
        assert wait_until(lambda: len(bascule.workers() - {victim}) == 2, timeout=10)
        assert app_requests(admin, a.address) == 30
        assert wait_until(lambda: reporting(admin) == 2, timeout=5)  # the dead one folded
        first = bascule.workers()
        bascule.write(cfg)
        bascule.reload()
        assert wait_until(lambda: not bascule.workers() & first, timeout=10)
        for _ in range(10):
            get(port)
        assert wait_until(lambda: app_requests(admin, a.address) == 40, timeout=5)
        assert reporting(admin) == 2  # the old generation's workers are folded too
        values = samples(admin)
        assert values["bascule_config_reloads_total", (("result", "ok"),)] == 1
        bascule.path.write_text("listeners: [{name: main, bind: 127.0.0.1:notaport}]\n")
        bascule.reload()
        assert wait_until(
            lambda: samples(admin)["bascule_config_reloads_total", (("result", "failed"),)] == 1,
            timeout=10,
        )
        assert app_requests(admin, a.address) == 40


@contextmanager
def serving(backend: Any, tmp_path: Path) -> Iterator[tuple[Instance, int]]:
    """Two workers in front of one target, and the admin port."""
    port, admin = free_port(), free_port()
    with running(node(port, admin, backend(named("a"))), tmp_path) as bascule:
        started(bascule, admin)
        yield bascule, admin


def test_status_describes_the_node(backend, tmp_path):
    with serving(backend, tmp_path) as (bascule, admin):
        status, body = admin_get(admin, "/api/status")
        assert status == 200
        document = json.loads(body)
        assert document["pid"] == bascule.proc.pid
        assert document["workers"] == {"configured": 2, "reporting": 2}
        assert document["config"]["file"] == str(bascule.path.resolve())
        assert len(document["config"]["sha256"]) == 64
        assert document["uptime_seconds"] > 0
        assert document["last_reload"] is None


def test_the_admin_listener_refuses_what_it_does_not_serve(backend, tmp_path):
    with serving(backend, tmp_path) as (_, admin):
        status, body = admin_get(admin, "/nope")
        assert status == 404
        assert "/metrics" in json.loads(body)["error"]
        assert admin_get(admin, "/metrics", "POST")[0] == 405
        head_status, head_body = admin_get(admin, "/api/status", "HEAD")
        assert (head_status, head_body) == (200, b"")
        with socket.create_connection(("127.0.0.1", admin), timeout=10) as sock:
            sock.sendall(b"NONSENSE\r\n\r\n")
            assert sock.recv(100).startswith(b"HTTP/1.1 400 ")
        assert admin_get(admin, "/api/status")[0] == 200  # still serving


def test_bascule_cache_purge_empties_every_workers_cache(backend, tmp_path):
    port, admin = free_port(), free_port()
    origin = Origin(("Cache-Control", "max-age=600"))
    cfg = node(port, admin, backend(origin.respond))
    cfg["routes"][1]["cache"] = {}  # the app route (the first answers /ready)
    with running(cfg, tmp_path) as bascule:
        started(bascule, admin)
        for _ in range(20):  # new connections: both workers fill their own cache
            get(port, "/page")
        assert all(b"Cache-Status: bascule; hit" in get(port, "/page") for _ in range(10))
        command = [*BASCULE, "cache", "purge", "http://x/page", "-c", str(bascule.path)]
        done = subprocess.run(command, capture_output=True, text=True, timeout=30)
        assert done.returncode == 0, done.stderr
        assert "purged 2 key(s) starting with 'http://x/page' (2 of 2 worker(s))" in done.stdout
        before = len(origin.seen)
        answers = [get(port, "/page") for _ in range(10)]
        assert any(b"fwd=uri-miss" in a for a in answers)
        assert len(origin.seen) > before
        assert admin_get(admin, "/api/cache/purge")[0] == 405
        assert admin_post(admin, "/api/cache/purge", b"not json")[0] == 400
        status, body = admin_post(admin, "/api/cache/purge", b'{"prefix": "http://none/"}')
        assert (status, json.loads(body)["keys"]) == (200, 0)


def test_cache_purge_needs_the_admin_listener(tmp_path):
    path = tmp_path / "bascule.yaml"
    path.write_text(json.dumps(config(1, **listening(free_port()))))
    done = subprocess.run(
        [*BASCULE, "cache", "purge", "http://", "-c", str(path)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 2
    assert "add admin.bind" in done.stderr


def admin_post(admin: int, path: str, body: bytes, method: str = "POST") -> tuple[int, bytes]:
    with socket.create_connection(("127.0.0.1", admin), timeout=10) as sock:
        head = f"{method} {path} HTTP/1.1\r\nHost: admin\r\nContent-Length: {len(body)}\r\n\r\n"
        sock.sendall(head.encode() + body)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head_bytes, _, answer = data.partition(b"\r\n\r\n")
    return int(head_bytes.split(b" ")[1]), answer


def test_upstreams_shows_every_target_with_its_recent_traffic(backend, tmp_path):
    port, admin = free_port(), free_port()
    a, b = backend(named("a")), backend(named("b"))
    cfg = node(port, admin, a, b)
    cfg["upstreams"]["app"]["health"] = {"tcp": {}, "interval": "100ms"}
    with running(cfg, tmp_path) as bascule:
        started(bascule, admin)
        for _ in range(40):
            get(port)
        time.sleep(1.2)  # a snapshot and a sample later

        def document() -> dict[str, Any]:
            status, body = admin_get(admin, "/api/upstreams")
            assert status == 200
            return json.loads(body)

        assert wait_until(lambda: sum_requests(document()) == 40, timeout=5)
        (upstream,) = document()["upstreams"]
        assert upstream["name"] == "app"
        targets = {t["name"]: t for t in upstream["targets"]}
        assert set(targets) == {a.address, b.address}
        for target in targets.values():
            assert (target["state"], target["weight"], target["held_by"]) == ("up", 1, [])
            assert 15 <= target["requests_total"] <= 25  # round robin in each worker
            assert target["requests_per_second"] > 0
            assert target["p50_ms"] is not None
            assert target["p50_ms"] <= target["p99_ms"]
            assert target["error_rate"] == 0.0
            assert target["health"]["status"] == "up"


def sum_requests(document: dict[str, Any]) -> int:
    return sum(t["requests_total"] for u in document["upstreams"] for t in u["targets"])


def admin_send(admin: int, method: str, path: str, body: bytes = b"") -> tuple[int, Any]:
    status, answer = admin_post(admin, path, body, method)
    return status, json.loads(answer)


def test_drain_enable_disable_and_weight_apply_to_every_worker(backend, tmp_path):
    port, admin = free_port(), free_port()
    a, b = backend(named("a", 0.005)), backend(named("b", 0.005))
    with running(node(port, admin, a, b), tmp_path) as bascule:
        started(bascule, admin)
        stop, results = threading.Event(), []
        threads = steady_load(port, stop, results)
        try:
            time.sleep(0.5)
            path = f"/api/upstreams/app/targets/{a.address}"
            status, answer = admin_send(admin, "POST", f"{path}/drain")
            assert (status, answer["hold"]) == (200, "draining")
            time.sleep(0.5)  # every worker has read it
            served = len(results)
            time.sleep(0.5)
            drained = [r for r in results[served:] if r.endswith(b"a")]
            assert drained == []  # no new request reached the drained target
            state = {t["name"]: t for t in upstreams(admin)["targets"]}
            assert state[a.address]["state"] == "draining"
            assert admin_send(admin, "POST", f"{path}/enable")[0] == 200
            assert wait_until(lambda: results[-1].endswith(b"a") or results[-2].endswith(b"a"))
            assert admin_send(admin, "POST", f"{path}/disable")[0] == 200
            assert wait_until(lambda: upstream_state(admin, a.address) == "disabled")
            assert admin_send(admin, "POST", f"{path}/enable")[0] == 200
            status, answer = admin_send(admin, "PUT", f"{path}/weight", b'{"weight": 4}')
            assert (status, answer["weight"]) == (200, 4)
            time.sleep(0.5)
            served = len(results)
            time.sleep(1.0)
            recent = results[served:]
            share = sum(r.endswith(b"a") for r in recent) / len(recent)
            assert 0.65 < share < 0.95  # 4:1
        finally:
            stop.set()
            for thread in threads:
                thread.join()
        assert failures(results) == []  # draining dropped nothing
        _, status_doc = admin_send(admin, "GET", "/api/status")
        assert status_doc["overrides"][f"app/{a.address}"] == {"hold": None, "weight": 4}
        bascule.write(node(port, admin, a, b))
        bascule.reload()
        assert wait_until(lambda: admin_send(admin, "GET", "/api/status")[1]["overrides"] == {})


def test_controls_refuse_unknown_targets_and_bad_bodies(backend, tmp_path):
    port, admin = free_port(), free_port()
    a = backend(named("a"))
    with running(node(port, admin, a), tmp_path) as bascule:
        started(bascule, admin)
        status, answer = admin_send(admin, "POST", "/api/upstreams/nope/targets/x/drain")
        assert (status, answer["error"]) == (404, "no upstream 'nope'")
        status, answer = admin_send(admin, "POST", "/api/upstreams/app/targets/10.9.9.9:1/drain")
        assert status == 404
        assert a.address in answer["error"]
        path = f"/api/upstreams/app/targets/{a.address}/weight"
        assert admin_send(admin, "PUT", path, b'{"weight": 0}')[0] == 400
        assert admin_send(admin, "PUT", path, b"heavy")[0] == 400
        assert admin_send(admin, "POST", path, b'{"weight": 2}')[0] == 405
        assert admin_send(admin, "GET", f"/api/upstreams/app/targets/{a.address}/drain")[0] == 405
        assert bascule.proc.poll() is None


def upstreams(admin: int) -> dict[str, Any]:
    (upstream,) = admin_send(admin, "GET", "/api/upstreams")[1]["upstreams"]
    return upstream


def upstream_state(admin: int, target: str) -> str:
    return {t["name"]: t["state"] for t in upstreams(admin)["targets"]}[target]


def test_a_token_file_guards_every_endpoint(backend, tmp_path):
    port, admin = free_port(), free_port()
    token = tmp_path / "admin.token"
    token.write_text("s3cret-admin-token-0123456789\n")
    cfg = node(port, admin, backend(named("a")))
    cfg["admin"]["token_file"] = str(token)
    with running(cfg, tmp_path) as bascule:
        assert wait_until(lambda: len(bascule.workers()) == 2, timeout=10)
        for path in ("/metrics", "/api/status", "/api/upstreams"):
            status, body = admin_get(admin, path)
            assert status == 401
            assert "Bearer" in json.loads(body)["error"]
        for header in ("Authorization: Bearer wrong", "Authorization: Basic czNjcmV0"):
            assert admin_get(admin, "/api/status", header=header)[0] == 401
        good = "Authorization: Bearer s3cret-admin-token-0123456789"
        assert admin_get(admin, "/api/status", header=good)[0] == 200
        command = [*BASCULE, "cache", "purge", "http://", "-c", str(bascule.path)]
        done = subprocess.run(command, capture_output=True, text=True, timeout=30)
        assert done.returncode == 0, done.stderr  # the command sends the token


def test_a_token_file_that_cannot_be_used_is_refused(tmp_path):
    short = tmp_path / "short.token"
    short.write_text("abc")
    for token_file, message in ((short, "at least 16 characters"), (tmp_path / "none", "none")):
        cfg = {**config(1, **listening(free_port())), "admin": {"token_file": str(token_file)}}
        path = tmp_path / "bascule.yaml"
        path.write_text(json.dumps(cfg))
        done = subprocess.run(
            [*BASCULE, "check", "-c", str(path)], capture_output=True, text=True, timeout=30
        )
        assert done.returncode == 2
        assert "admin.token_file cannot be used" in done.stderr
        assert message in done.stderr


def test_routes_and_a_reload_through_the_api(backend, tmp_path):
    port, admin = free_port(), free_port()
    cfg = node(port, admin, backend(named("a")))
    with running(cfg, tmp_path) as bascule:
        started(bascule, admin)
        for _ in range(5):
            get(port)
        time.sleep(1.2)
        status, document = admin_send(admin, "GET", "/api/routes")
        assert status == 200
        assert [r["name"] for r in document["routes"]] == ["ready", "app"]
        assert document["routes"][1]["upstream"] == "app"
        assert document["routes"][1]["requests_total"] == 5
        bascule.path.write_text("listeners: [{name: main, bind: 127.0.0.1:notaport}]\n")
        status, refused = admin_send(admin, "POST", "/api/reload")
        assert status == 400
        assert "listeners[0].bind" in refused["problems"]
        first = bascule.workers()
        bascule.write(cfg)
        status, accepted = admin_send(admin, "POST", "/api/reload")
        assert (status, accepted["reload"]) == (202, "started")
        assert wait_until(lambda: not bascule.workers() & first, timeout=10)

        def reloaded() -> bool:
            return admin_send(admin, "GET", "/api/status")[1]["reloads"]["ok"] == 1

        assert wait_until(reloaded, timeout=10)


def test_every_answer_matches_the_openapi_document(backend, tmp_path):
    port, admin = free_port(), free_port()
    a = backend(named("a"))
    cfg = node(port, admin, a)
    cfg["upstreams"]["app"]["health"] = {"tcp": {}, "interval": "100ms"}
    with running(cfg, tmp_path) as bascule:
        started(bascule, admin)
        get(port)
        status, document = admin_send(admin, "GET", "/api/openapi.json")
        assert status == 200
        assert document["openapi"] == "3.1.0"
        target = f"/api/upstreams/app/targets/{a.address}"
        calls = [
            ("GET", "/api/status", "/api/status", b""),
            ("GET", "/api/upstreams", "/api/upstreams", b""),
            ("GET", "/api/routes", "/api/routes", b""),
            ("POST", "/api/cache/purge", "/api/cache/purge", b'{"prefix": "x"}'),
            ("POST", "/api/cache/purge", "/api/cache/purge", b"[]"),
            ("POST", f"{target}/drain", "/api/upstreams/{upstream}/targets/{target}/drain", b""),
            ("POST", f"{target}/enable", "/api/upstreams/{upstream}/targets/{target}/enable", b""),
            (
                "POST",
                "/api/upstreams/app/targets/x:1/disable",
                "/api/upstreams/{upstream}/targets/{target}/disable",
                b"",
            ),
            (
                "PUT",
                f"{target}/weight",
                "/api/upstreams/{upstream}/targets/{target}/weight",
                b'{"weight": 2}',
            ),
            ("PUT", f"{target}/weight", "/api/upstreams/{upstream}/targets/{target}/weight", b"{}"),
            ("GET", "/api/openapi.json", "/api/openapi.json", b""),
        ]
        seen = set()
        for method, path, template, body in calls:
            status, answer = admin_send(admin, method, path, body)
            operation = document["paths"][template][method.lower()]
            assert str(status) in operation["responses"], (path, status)
            schema = operation["responses"][str(status)]["content"]["application/json"]["schema"]
            jsonschema.validate(answer, schema)
            seen.add(template)
        bascule.path.write_text("listeners: []\n")
        status, answer = admin_send(admin, "POST", "/api/reload")
        schema = document["paths"]["/api/reload"]["post"]["responses"][str(status)]
        jsonschema.validate(answer, schema["content"]["application/json"]["schema"])
        assert admin_get(admin, "/metrics")[0] == 200  # text, not JSON
        seen |= {"/api/reload", "/metrics"}
        assert seen == set(document["paths"])  # every documented path was exercised


def test_bascule_status_prints_the_node_and_its_targets(backend, tmp_path):
    port, admin = free_port(), free_port()
    a = backend(named("a"))
    with running(node(port, admin, a), tmp_path) as bascule:
        started(bascule, admin)
        for _ in range(10):
            get(port)
        command = [*BASCULE, "status", "-c", str(bascule.path)]
        done = subprocess.run(command, capture_output=True, text=True, timeout=30)
        assert done.returncode == 0, done.stderr
        lines = done.stdout.splitlines()
        assert lines[0].startswith("Bascule ")
        assert f"pid {bascule.proc.pid}" in lines[0]
        assert "2 worker(s)" in lines[0]
        assert any(line.startswith("upstream app") for line in lines)
        (row,) = [line for line in lines if a.address in line]
        assert row.split()[1] == "up"
    stopped = subprocess.run(command, capture_output=True, text=True, timeout=30)
    assert stopped.returncode == 1
    assert "no Bascule admin listener answered" in stopped.stderr


def test_retries_ejections_cache_and_connects_are_counted(backend, tmp_path):
    port, admin = free_port(), free_port()
    origin = Origin(("Cache-Control", "max-age=600"))
    good = backend(origin.respond)
    dead = refused_port()
    cfg = node(port, admin, good, dead)
    cfg["workers"] = 1
    cfg["upstreams"]["app"]["retries"] = {"attempts": 2}
    cfg["upstreams"]["app"]["outlier_detection"] = {"consecutive_failures": 1}
    cfg["routes"][1]["cache"] = {}
    with running(cfg, tmp_path):
        assert wait_until(lambda: reporting(admin) == 1, timeout=10)
        paths = [f"/p{n}" for n in range(6)] + ["/p0"] * 3  # six misses, three hits
        answers = [get(port, path) for path in paths]
        assert all(a.startswith(b"HTTP/1.1 200") for a in answers)

        def counted() -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
            return samples(admin)

        assert wait_until(
            lambda: counted().get(("bascule_ejections_total", (("upstream", "app"),))) == 1
        )
        values = counted()
        assert values["bascule_retries_total", (("upstream", "app"),)] == 1  # the one try on it
        hits = values["bascule_cache_requests_total", (("result", "hit"), ("route", "app"))]
        misses = values["bascule_cache_requests_total", (("result", "miss"), ("route", "app"))]
        assert (hits, misses) == (3, 6)
        connects = values["bascule_upstream_connect_duration_seconds_count", (("upstream", "app"),)]
        assert connects >= 1  # connections made to the good target (refused ones are not)
    assert len(origin.seen) == 6
