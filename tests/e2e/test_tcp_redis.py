"""A real redis-server behind a tcp listener, driven by redis-benchmark through Bascule."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from e2e.redis_server import RedisServer, binary
from e2e.tcp_backends import connect, read_all, tcp_config

REQUESTS = 20_000
CLIENTS = 20


@pytest.fixture
def redis(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path)
    yield server
    server.stop()


def test_redis_benchmark_through_bascule_has_no_errors(redis, bascule):
    proxy = bascule(tcp_config(redis.port, upstream={"balance": "least_conn"}))
    command = [
        binary("redis-benchmark"),
        "-h", "127.0.0.1",
        "-p", str(proxy.port),
        "-q",
        "-n", str(REQUESTS),
        "-c", str(CLIENTS),
        "-t", "set,get",
    ]  # fmt: skip
    done = subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert "error" not in output.lower(), output
    rates = re.findall(r"^(SET|GET): ([\d.]+) requests per second", output, re.MULTILINE)
    assert [name for name, _ in rates] == ["SET", "GET"], output
    # Every command went through: the keys redis-benchmark set are there.
    with connect(proxy.port) as sock:
        sock.sendall(b"DBSIZE\r\nQUIT\r\n")
        reply = read_all(sock)
    assert reply.startswith(b":1\r\n"), reply  # one key, "key:__rand_int__" without -r
    lines = proxy.log_lines(2 * CLIENTS + 1)
    assert len(lines) >= 2 * CLIENTS + 1
    assert all(line["error"] is None for line in lines)
    assert sum(line["bytes_out"] for line in lines) >= 2 * REQUESTS * len(b"+OK\r\n")
