"""Sticky sessions: keep a client on the target it started with.

Two ways, both ending in `PickContext.override` (the balancer never sees HTTP):

- `StickyCookie`: Bascule sets a cookie naming the target. The name is opaque (an HMAC of
  the target's address under a secret) and the whole value is signed, so a client can
  neither read the fleet's addresses from it nor forge one; any Bascule node holding the
  same secret and targets honours it, with no shared table.
- `LearnedSessions`: the application's own session cookie (JSESSIONID, PHPSESSID, ...) is
  remembered when a target sets it, and later requests carrying it go back there; a
  bounded table whose entries expire.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Generic, Protocol, TypeVar

from bascule.balancing import PickContext
from bascule.balancing.base import Weighted
from bascule.balancing.consistent_hash import ConsistentHash, hash_key
from bascule.http.cookies import cookie_value, set_cookie_pair
from bascule.http.head import RequestHead, ResponseHead

SECRET_FILE_NAME = "sticky-secret"


class Named(Protocol):
    @property
    def name(self) -> str: ...


T = TypeVar("T", bound=Named)


class Placeable(Named, Weighted, Protocol):
    """What a consistent-hash ring needs of a target."""


P = TypeVar("P", bound=Placeable)


def _b64(digest: bytes, length: int) -> bytes:
    return base64.urlsafe_b64encode(digest)[:length]


class StickyCookie(Generic[T]):
    """Issues and reads the signed cookie `<target>.<expiry>.<signature>`.

    `<target>` is 11 characters of HMAC(secret, address); `<expiry>` is the Unix time (hex)
    after which the cookie is stale, 0 for a session cookie; `<signature>` covers both.
    """

    __slots__ = ("_by_token", "_key", "_suffix", "_tokens", "name", "ttl")

    def __init__(
        self,
        name: str,
        secret: bytes,
        targets: Sequence[T],
        *,
        ttl: float | None = None,
        secure: bool = False,
        http_only: bool = True,
        same_site: str | None = "Lax",
        path: str = "/",
    ) -> None:
        self.name = name.encode()
        self.ttl = ttl
        self._key = secret
        self._tokens = {t: self._mac(b"target\0" + t.name.encode(), 11) for t in targets}
        self._by_token = {token: t for t, token in self._tokens.items()}
        attributes = [f"Path={path}"]
        if ttl is not None:
            attributes.append(f"Max-Age={int(ttl)}")
        if secure:
            attributes.append("Secure")
        if http_only:
            attributes.append("HttpOnly")
        if same_site is not None:
            attributes.append(f"SameSite={same_site}")
        self._suffix = ("; " + "; ".join(attributes)).encode()

    def _mac(self, message: bytes, length: int) -> bytes:
        return _b64(hmac.new(self._key, message, hashlib.sha256).digest(), length)

    def value(self, target: T, now: float) -> bytes:
        expiry = b"%x" % int(now + self.ttl) if self.ttl is not None else b"0"
        signed = self._tokens[target] + b"." + expiry
        return signed + b"." + self._mac(signed, 22)

    def set_cookie_line(self, target: T, now: float) -> bytes:
        """The "\\r\\nSet-Cookie: ..." header line that sends a client to `target`."""
        return b"\r\nSet-Cookie: " + self.name + b"=" + self.value(target, now) + self._suffix

    def target_of(self, value: bytes, now: float) -> T | None:
        """The target a cookie value names, or None if it is forged, stale or unknown."""
        signed, _, signature = value.rpartition(b".")
        if not hmac.compare_digest(self._mac(signed, 22), signature):
            return None
        token, _, expiry = signed.partition(b".")
        try:
            expires = int(expiry, 16)
        except ValueError:
            return None
        if expires and expires <= now:
            return None
        return self._by_token.get(token)


def load_secret(secret_file: str | None, state_dir: Path) -> bytes:
    """The signing secret: from `secret_file`, or kept in the state directory (made once,
    readable by the owner only, and reused by every later start so cookies stay valid)."""
    if secret_file is not None:
        return Path(secret_file).read_bytes().strip()
    path = state_dir / SECRET_FILE_NAME
    try:
        return path.read_bytes().strip()
    except FileNotFoundError:
        pass
    state_dir.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process made it first: use theirs
        return path.read_bytes().strip()
    with os.fdopen(fd, "wb") as out:
        out.write(secrets.token_hex(32).encode())
    return path.read_bytes().strip()


class LearnedSessions(Generic[T]):
    """Session id -> the target that issued it; at most `capacity` entries, each kept for
    `ttl` seconds after it was last used. The least recently used entry goes first."""

    __slots__ = ("_entries", "capacity", "ttl")

    def __init__(self, ttl: float, capacity: int) -> None:
        self.ttl = ttl
        self.capacity = capacity
        self._entries: OrderedDict[bytes, tuple[T, float]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def remember(self, session: bytes, target: T, now: float) -> None:
        entries = self._entries
        entries[session] = (target, now + self.ttl)
        entries.move_to_end(session)
        while len(entries) > self.capacity:
            entries.popitem(last=False)

    def target_for(self, session: bytes, now: float) -> T | None:
        entry = self._entries.get(session)
        if entry is None:
            return None
        target, expires = entry
        if expires <= now:
            del self._entries[session]
            return None
        self._entries[session] = (target, now + self.ttl)
        self._entries.move_to_end(session)
        return target


class Affinity(Protocol[T]):
    """A sticky method as the proxy uses it: which target a request is bound to, and what
    to tell the client or remember once a target answers."""

    def bound_target(self, head: RequestHead, client_ip: bytes) -> T | None:
        """The target this request's session is bound to, if any (the caller checks that
        it is available)."""
        ...

    def response_lines(self, target: T, bound: T | None) -> bytes:
        """Header lines ("\\r\\nName: value") to add to the response `target` gave, when
        the request was bound to `bound`."""
        ...

    def learn(self, head: ResponseHead, target: T) -> None:
        """Take note of a response from `target` (only `LearnedAffinity` does)."""
        ...


class CookieAffinity(Generic[T]):
    """`sticky: {cookie: ...}`: read our cookie; issue it when it is missing or no longer
    names the target that answered (forged, stale, or its target down or gone)."""

    __slots__ = ("_cookie", "_wall")

    def __init__(self, cookie: StickyCookie[T], wall_clock: Callable[[], float] = time.time):
        self._cookie = cookie
        self._wall = wall_clock  # cookies carry Unix times: several nodes must agree on them

    def bound_target(self, head: RequestHead, client_ip: bytes) -> T | None:
        header = head.header(b"cookie")
        if header is None:
            return None
        value = cookie_value(header, self._cookie.name)
        return None if value is None else self._cookie.target_of(value, self._wall())

    def response_lines(self, target: T, bound: T | None) -> bytes:
        if target is bound:
            return b""
        return self._cookie.set_cookie_line(target, self._wall())

    def learn(self, head: ResponseHead, target: T) -> None:
        pass


class HashAffinity(Generic[P]):
    """`sticky: {header: X-Session-Id}` or `{source_ip: true}`: the value is placed on a
    consistent-hash ring of the targets, so equal values meet on one target and a target
    leaving moves only its own sessions."""

    __slots__ = ("_header", "_ring")

    def __init__(self, targets: Sequence[P], header: bytes | None) -> None:
        self._header = header  # lower-case name; None: the client address
        self._ring = ConsistentHash(targets, key=hash_key)

    def bound_target(self, head: RequestHead, client_ip: bytes) -> P | None:
        value = client_ip if self._header is None else head.header(self._header)
        if not value:
            return None
        return self._ring.pick(PickContext(hash_key=value))

    def response_lines(self, target: P, bound: P | None) -> bytes:
        return b""

    def learn(self, head: ResponseHead, target: P) -> None:
        pass


class LearnedAffinity(Generic[T]):
    """`sticky: {learn: {cookie: JSESSIONID}}`: the application's session cookie leads
    back to the target that set it."""

    __slots__ = ("_clock", "_name", "_sessions")

    def __init__(
        self,
        cookie: str,
        sessions: LearnedSessions[T],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._name = cookie.encode()
        self._sessions = sessions
        self._clock = clock

    def bound_target(self, head: RequestHead, client_ip: bytes) -> T | None:
        header = head.header(b"cookie")
        if header is None:
            return None
        session = cookie_value(header, self._name)
        return None if session is None else self._sessions.target_for(session, self._clock())

    def response_lines(self, target: T, bound: T | None) -> bytes:
        return b""

    def learn(self, head: ResponseHead, target: T) -> None:
        for name, value in head.headers():
            if name.lower() == b"set-cookie":
                pair = set_cookie_pair(value)
                if pair is not None and pair[0] == self._name and pair[1]:
                    self._sessions.remember(pair[1], target, self._clock())
