"""Sticky sessions end to end: signed cookies (across two Bascule processes), a session
header, the client address, and a learned application cookie."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from e2e.backends import fixed
from e2e.proxy import accepts, config, free_port, wait_until

COOKIE = "bascule_route"


def three(backend) -> list:
    return [backend(fixed(body=name.encode())) for name in ("a", "b", "c")]


@contextmanager
def bascule_process(cfg: dict[str, Any], tmp_path: Path, name: str) -> Iterator[str]:
    """A separate `bascule run` process on its own port; yields its base URL."""
    port = free_port()
    cfg = {**cfg, "listeners": [{"name": "public", "bind": f"127.0.0.1:{port}"}]}
    cfg["access_log"] = {"path": str(tmp_path / f"{name}.log")}
    path = tmp_path / f"{name}.yaml"
    path.write_text(json.dumps(cfg))
    proc = subprocess.Popen(
        [sys.executable, "-m", "bascule", "run", "-c", str(path)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        assert wait_until(lambda: accepts(port), timeout=10), "bascule did not start"
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(10)
        assert proc.stderr is not None
        proc.stderr.close()


def test_cookie_holds_for_100_requests_and_a_second_process_honours_it(backend, bascule, tmp_path):
    secret = tmp_path / "secret"
    secret.write_text("shared by every node\n")
    targets = three(backend)
    sticky = {"sticky": {"cookie": {"secret_file": str(secret), "ttl": "1h"}}}
    cfg = config(*targets, upstream=sticky)
    proxy = bascule(cfg)
    with httpx.Client(base_url=proxy.url()) as client:
        first = client.get("/")
        cookie = first.cookies[COOKIE]
        bodies = Counter(client.get("/").content for _ in range(100))
    assert bodies == Counter({first.content: 100})
    assert "Max-Age=3600" in first.headers["set-cookie"]
    assert "HttpOnly" in first.headers["set-cookie"]

    with (
        bascule_process(cfg, tmp_path, "second") as url,
        httpx.Client(base_url=url, cookies={COOKIE: cookie}) as client,
    ):
        responses = [client.get("/") for _ in range(20)]
    assert {r.content for r in responses} == {first.content}
    assert all("set-cookie" not in r.headers for r in responses)  # nothing to re-issue


def test_a_forged_cookie_is_ignored_and_replaced(backend, bascule, tmp_path):
    proxy = bascule(config(*three(backend), upstream={"sticky": {"cookie": {}}}))
    bodies = set()
    for n in range(6):
        response = httpx.get(proxy.url(), headers={"Cookie": f"{COOKIE}=forged.0.{n}"})
        assert response.cookies[COOKIE] != f"forged.0.{n}"
        bodies.add(response.content)
    assert bodies == {b"a", b"b", b"c"}  # balanced as if there were no cookie


def test_a_cookie_naming_a_target_no_longer_there_is_replaced(backend, bascule, tmp_path):
    secret = tmp_path / "secret"
    secret.write_text("s")
    a, b, c = three(backend)
    sticky = {"sticky": {"cookie": {"secret_file": str(secret)}}}
    url = bascule(config(a, b, c, upstream=sticky)).url()
    # round robin: one of three fresh clients lands on c
    (cookie,) = [r.cookies[COOKIE] for r in (httpx.get(url) for _ in range(3)) if r.content == b"c"]
    url = bascule(config(a, b, upstream=sticky)).url()
    response = httpx.get(url, headers={"Cookie": f"{COOKIE}={cookie}"})
    assert response.content in (b"a", b"b")
    renewed = response.cookies[COOKIE]
    assert renewed != cookie
    again = httpx.get(url, headers={"Cookie": f"{COOKIE}={renewed}"})  # the new one holds
    assert again.content == response.content


def test_the_secret_is_generated_once_in_the_state_dir(backend, bascule, tmp_path):
    state = tmp_path / "state"
    cfg = {**config(*three(backend), upstream={"sticky": {"cookie": {}}}), "state_dir": str(state)}
    with httpx.Client(base_url=bascule(cfg).url()) as client:
        first = client.get("/")
    with httpx.Client(base_url=bascule(cfg).url(), cookies=first.cookies) as client:
        assert client.get("/").content == first.content
    assert (state / "sticky-secret").stat().st_mode & 0o777 == 0o600


def test_a_session_header_sticks_and_spreads(backend, bascule):
    proxy = bascule(
        config(
            *three(backend), upstream={"balance": "least_conn", "sticky": {"header": "X-Session"}}
        )
    )
    seen: dict[str, set[bytes]] = {}
    with httpx.Client(base_url=proxy.url()) as client:
        for _ in range(3):
            for user in range(30):
                body = client.get("/", headers={"X-Session": f"user-{user}"}).content
                seen.setdefault(f"user-{user}", set()).add(body)
    assert all(len(bodies) == 1 for bodies in seen.values())
    assert {next(iter(b)) for b in seen.values()} == {b"a", b"b", b"c"}


def test_source_ip_sticks(backend, bascule):
    proxy = bascule(config(*three(backend), upstream={"sticky": {"source_ip": True}}))
    with httpx.Client(base_url=proxy.url()) as client:
        assert len({client.get("/").content for _ in range(20)}) == 1


def test_a_learned_application_session_returns_to_the_target_that_set_it(backend, bascule):
    def app(name: bytes):
        return fixed(body=name, headers=(("Set-Cookie", f"JSESSIONID=s-{name.decode()}; Path=/"),))

    a, b = backend(app(b"a")), backend(app(b"b"))
    proxy = bascule(config(a, b, upstream={"sticky": {"learn": {"cookie": "JSESSIONID"}}}))
    first = httpx.get(proxy.url())  # the target sets the session
    session = first.cookies["JSESSIONID"]
    with httpx.Client(base_url=proxy.url(), cookies={"JSESSIONID": session}) as client:
        bodies = {client.get("/").content for _ in range(10)}
    assert bodies == {first.content}
    assert session == f"s-{first.content.decode()}"
