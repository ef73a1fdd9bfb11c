"""The access log's other format (for http and tcp listeners), and its file reopened on
SIGUSR1 (logrotate)."""

from __future__ import annotations

import re
import signal
import socket
import time
from pathlib import Path

from e2e.backends import fixed, named, refused_port
from e2e.proxy import Proxy, config, free_port, wait_until
from e2e.supervised import get, listening, running
from e2e.tcp_backends import connect, read_all, tcp_config
from e2e.tcp_backends import echo as tcp_echo
from e2e.wire import Wire

COMBINED = re.compile(
    r"^127\.0\.0\.1 - - \[\d\d/\w{3}/\d{4}:\d\d:\d\d:\d\d \+0000\] "
    r'"(?P<request>[^"]*)" (?P<status>\d{3}) (?P<bytes>\d+) '
    r'"(?P<referer>[^"]*)" "(?P<agent>[^"]*)"$'
)


def test_the_combined_format_is_nginx_s(backend, tmp_path):
    log = tmp_path / "access.log"
    cfg = config(backend(fixed(200, b"hello")))
    proxy = Proxy({**cfg, "access_log": {"path": str(log), "format": "combined"}}, log)
    try:
        with Wire(proxy.port) as wire:
            wire.request(
                b"GET /a?b=1 HTTP/1.1\r\nHost: x\r\nReferer: http://r/\r\n"
                b'User-Agent: curl/8 "quoted"\r\n\r\n'
            )
            wire.request(b"GET /b HTTP/1.0\r\nHost: x\r\n\r\n")
        assert wait_until(lambda: len(log.read_text().splitlines()) == 2)
    finally:
        proxy.stop()
    first, second = (COMBINED.match(line) for line in log.read_text().splitlines())
    assert first is not None
    assert second is not None
    assert first.group("request", "status", "bytes") == ("GET /a?b=1 HTTP/1.1", "200", "5")
    assert first.group("referer", "agent") == ("http://r/", r"curl/8 \x22quoted\x22")
    assert second.group("request", "referer", "agent") == ("GET /b HTTP/1.0", "-", "-")


def test_sigusr1_reopens_the_log_file_after_logrotate_moved_it(backend, tmp_path):
    port, log = free_port(), tmp_path / "access.log"
    cfg = config(backend(named("a")), **listening(port))
    with running({**cfg, "workers": 2, "access_log": {"path": str(log)}}, tmp_path) as bascule:
        assert wait_until(lambda: len(bascule.workers()) == 2, timeout=10)
        for _ in range(4):
            get(port)
        assert wait_until(lambda: log.exists() and log.read_text().count("\n") >= 4, timeout=5)
        rotated = tmp_path / "access.log.1"
        log.rename(rotated)  # logrotate's move; the workers still write to the moved file
        bascule.proc.send_signal(signal.SIGUSR1)
        time.sleep(0.5)
        for _ in range(6):
            get(port)
        assert wait_until(lambda: log.exists() and log.read_text().count("\n") >= 6, timeout=5)
        assert bascule.proc.poll() is None  # nobody died of the signal
    assert len(rotated.read_text().splitlines()) >= 5  # the /ready checks and the first 4
    assert all('"path":"/"' in line for line in Path(log).read_text().splitlines())
    assert "SIGUSR1: the workers reopen their access logs" in bascule.log


def test_a_tcp_connection_is_logged_in_the_combined_format_too(backend, tmp_path):
    """As nginx's stream $status: 200 for a connection that ended well, 502 when no target
    could be reached; the request field names the listener and the (last) target tried."""
    log = tmp_path / "access.log"
    target = backend(tcp_echo, raw=True)
    cfg = tcp_config(target)
    proxy = Proxy({**cfg, "access_log": {"path": str(log), "format": "combined"}}, log)
    try:
        with connect(proxy.port) as sock:
            sock.sendall(b"ping")
            sock.shutdown(socket.SHUT_WR)
            assert read_all(sock) == b"ping"
        assert wait_until(lambda: len(log.read_text().splitlines()) == 1)
    finally:
        proxy.stop()
    line = COMBINED.match(log.read_text().strip())
    assert line is not None, log.read_text()
    assert line.group("request", "status", "bytes", "referer", "agent") == (
        f"TCP tcp {target.address}",
        "200",
        "4",
        "-",
        "-",
    )


def test_a_tcp_connection_no_target_took_is_502_in_the_combined_format(tmp_path):
    log = tmp_path / "access.log"
    dead = refused_port()
    cfg = tcp_config(dead)
    proxy = Proxy({**cfg, "access_log": {"path": str(log), "format": "combined"}}, log)
    try:
        with connect(proxy.port) as sock:
            assert read_all(sock) == b""
        assert wait_until(lambda: len(log.read_text().splitlines()) == 1)
    finally:
        proxy.stop()
    line = COMBINED.match(log.read_text().strip())
    assert line is not None, log.read_text()
    assert line.group("request", "status", "bytes") == (f"TCP tcp 127.0.0.1:{dead}", "502", "0")
