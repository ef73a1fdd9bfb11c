"""The command line's way to a running instance: its admin listener, as its config names
it (address and token file)."""

from __future__ import annotations

import http.client
import json
from pathlib import Path
from typing import Any

from bascule import config as cfg

__all__ = ["AdminClient", "AdminUnreachable"]


class AdminUnreachable(Exception):
    """No admin listener answered, or it answered something that is not JSON."""


class AdminClient:
    def __init__(self, admin: cfg.Admin) -> None:
        self.admin = admin

    def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        """Send one request; the status and the decoded JSON answer."""
        headers = {"Content-Type": "application/json"}
        try:
            if self.admin.token_file is not None:
                token = Path(self.admin.token_file).read_text().strip()
                headers["Authorization"] = f"Bearer {token}"
            bind = self.admin.bind
            connection = http.client.HTTPConnection(bind.host, bind.port, timeout=15)
            try:
                payload = None if body is None else json.dumps(body).encode()
                connection.request(method, path, payload, headers)
                response = connection.getresponse()
                return response.status, json.loads(response.read())
            finally:
                connection.close()
        except (OSError, ValueError) as exc:
            raise AdminUnreachable(f"no Bascule admin listener answered on {bind}: {exc}") from exc
