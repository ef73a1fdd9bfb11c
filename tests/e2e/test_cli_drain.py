"""The real CLI: `python -m bascule run`, SIGTERM with a request in flight drains it."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading

import httpx

from e2e.backends import slow_head
from e2e.proxy import accepts, config, free_port, wait_until


def test_sigterm_drains_in_flight_request_and_exits_0(backend, tmp_path):
    server = backend(slow_head(1.0, body=b"finished"))
    port = free_port()
    cfg = config(server, listener={"bind": f"127.0.0.1:{port}"})
    cfg["drain_timeout"] = "10s"
    cfg["access_log"] = {"path": str(tmp_path / "access.log")}
    path = tmp_path / "bascule.yaml"
    path.write_text(json.dumps(cfg))
    proc = subprocess.Popen(
        [sys.executable, "-m", "bascule", "run", "-c", str(path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        assert wait_until(lambda: accepts(port), timeout=10), proc.stderr
        result: dict = {}

        def ask() -> None:
            result["response"] = httpx.get(f"http://127.0.0.1:{port}/slow", timeout=10)

        client = threading.Thread(target=ask)
        client.start()
        assert wait_until(lambda: len(server.requests) == 1, timeout=5)
        proc.send_signal(signal.SIGTERM)
        client.join(10)
        assert proc.wait(10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
        proc.stderr.close()
    response = result["response"]
    assert (response.status_code, response.content) == (200, b"finished")
    assert response.headers["connection"] == "close"  # draining: no keep-alive
    assert not accepts(port)
