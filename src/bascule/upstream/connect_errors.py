"""Why a new connection to a target failed, beyond the OSError the kernel gives.

In a module of their own: the connection pool is compiled by mypyc (hatch_build.py), which
cannot compile a subclass of OSError; these stay plain Python classes."""

from __future__ import annotations


class ConnectTimeout(Exception):
    pass


class TlsHandshakeError(OSError):
    """The target's TLS handshake failed (its certificate, or it does not speak TLS)."""
