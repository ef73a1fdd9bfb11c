"""Request ids and traceparent as pure functions of a request head."""

from __future__ import annotations

import os
import re

import pytest

from bascule.http.head import RequestHead
from bascule.http.tracing import (
    IDS_PER_BLOCK,
    as_received,
    identify,
    new_request_id,
    next_traceparent,
)

TRACE = b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def head(*lines: bytes) -> RequestHead:
    raw = b"GET / HTTP/1.1\r\nHost: a\r\n" + b"".join(line + b"\r\n" for line in lines) + b"\r\n"
    return RequestHead(raw, "1.1", b"GET", b"/")


def test_ids_are_32_hex_digits_and_differ() -> None:
    ids = {new_request_id() for _ in range(10 * IDS_PER_BLOCK + 7)}  # across ten blocks
    assert len(ids) == 10 * IDS_PER_BLOCK + 7
    assert all(re.fullmatch(rb"[0-9a-f]{32}", i) for i in ids)


def test_a_forked_process_makes_ids_of_its_own() -> None:
    """The ids still unused in the parent's block are not the child's next ids."""
    new_request_id()  # the parent now holds a block with ids to come
    reader, writer = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: send its next ids and leave at once
        os.write(writer, b"".join(new_request_id() for _ in range(3)))
        os._exit(0)
    os.close(writer)
    _, status = os.waitpid(pid, 0)
    assert status == 0
    child = os.read(reader, 96)
    os.close(reader)
    parent = b"".join(new_request_id() for _ in range(3))
    assert len(child) == 96
    assert child != parent


def test_a_valid_traceparent_keeps_its_trace_and_flags_with_a_new_span() -> None:
    nxt = next_traceparent(TRACE)
    assert nxt is not None
    assert nxt[:36] == TRACE[:36]
    assert nxt[-3:] == b"-01"
    assert nxt[36:52] != TRACE[36:52]


@pytest.mark.parametrize(
    "value",
    [
        None,
        b"",
        b"01" + TRACE[2:],  # another version
        b"00-" + b"0" * 32 + TRACE[35:],  # all-zero trace id
        TRACE[:36] + b"0" * 16 + b"-01",  # all-zero parent id
        TRACE.upper(),  # hex must be lower-case
        TRACE + b"-extra",
    ],
)
def test_an_invalid_traceparent_is_not_carried_on(value: bytes | None) -> None:
    assert next_traceparent(value) is None


def test_identify_keeps_a_trusted_id_as_sent_and_replaces_the_rest() -> None:
    given = head(b"X-Request-Id: LB-Case-Kept")
    assert identify(given, trusted=True)[0] == b"LB-Case-Kept"
    replaced, lines, _ = identify(given, trusted=False)
    assert replaced != b"LB-Case-Kept"
    assert lines == b"\r\nX-Request-Id: " + replaced
    _, lines, hop = identify(head(b"traceparent: " + TRACE), trusted=False)
    assert hop is not None
    assert hop.sampled
    assert (hop.trace_id, hop.parent_id) == (TRACE[3:35], TRACE[36:52])
    assert lines.count(b"\r\n") == 2
    assert b"\r\ntraceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-" in lines


def test_as_received_passes_both_headers_unchanged() -> None:
    lines = as_received(head(b"X-Request-Id: Abc", b"traceparent: " + TRACE))
    assert lines == b"\r\nX-Request-Id: Abc\r\ntraceparent: " + TRACE
    assert as_received(head()) == b""
