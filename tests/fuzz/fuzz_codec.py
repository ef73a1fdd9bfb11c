"""Coverage-guided fuzzing of the sans-IO HTTP codec (bascule.http.codec) with atheris.

Each input is fed to a fresh reader three ways: whole, cut at the fuzzer's split points, and
byte by byte; the leftovers of a finished message are fed next, as a server does. Checked:

(a) `feed()` raises nothing but HttpError, and its status is a 4xx or 5xx;
(b) the three feeds give the same merged events (Recorder.merged()) and the same outcome
    (the same HttpError status or none, the same answer from `eof()`);
(c) no ("body", b"") event is ever emitted (downstream, an empty chunk ends a chunked body);
(d) feeding terminates: each message ended consumes input (the leftover loop is capped), and
    a feed() that hangs is caught by libFuzzer's -timeout;
(e) the events are well formed, (info* head body* end)*, and every head reported is made of
    the bytes received, each after the one before (no head replayed, no body without a head).
A violation raises AssertionError, which atheris reports as a crash with the input saved.

Input format (all read from the front, through atheris.FuzzedDataProvider):
    byte 0           reader: 0 request, 1 response, 2 response to a HEAD request (mod 3)
    byte 1           n, the number of split points
    next 2n bytes    the split points, u16 little-endian, each taken mod len(message) + 1
    the rest         the message bytes
Seeds in this format are in tests/fuzz/corpus (made by tests/fuzz/make_corpus.py).

tests/fuzz/test_fuzz_codec.py runs this for BASCULE_FUZZ_SECONDS in the test suite. By hand,
longer (new inputs go to the first directory; a crash stops the run and is saved as crash-*):
    mkdir -p /tmp/codec-corpus && cp tests/fuzz/corpus/* /tmp/codec-corpus/
    .venv/bin/python tests/fuzz/fuzz_codec.py /tmp/codec-corpus -max_total_time=3600 \
        -timeout=10 -rss_limit_mb=2048
Replay one input (prints the failed assertion): .venv/bin/python tests/fuzz/fuzz_codec.py FILE
(libFuzzer's -fork, -jobs and -minimize_crash run argv[0] again: make a copy executable, with
a #! line naming .venv/bin/python, to use them.)
"""

from __future__ import annotations

import sys
from pathlib import Path

import atheris

sys.path.insert(0, str(Path(__file__).parents[1] / "unit" / "http"))

with atheris.instrument_imports(include=["bascule"]):
    from recorder import Event, Recorder, request_reader, response_reader

    from bascule.http.codec import RequestReader, ResponseReader
    from bascule.http.errors import HttpError

REQUEST, RESPONSE, HEAD_RESPONSE = 0, 1, 2
LIMIT = 1024  # the readers' max_header_bytes: small, for inputs to reach it (431, 414)

# (e) which events may come before each one; "end" stands for the start too
FOLLOWS = {
    "info": ("end", "info"),
    "head": ("end", "info"),
    "body": ("head", "body"),
    "end": ("head", "body"),
}
# What one way of feeding produced: merged events, HttpError status (or None), eof() result.
Outcome = tuple[list[Event], int | None, bool]


def run(kind: int, pieces: list[bytes]) -> Outcome:
    """Feed `pieces` to a new reader as a server would; check (a), (c), (d) and (e)."""
    reader: RequestReader | ResponseReader
    if kind == REQUEST:
        reader, rec = request_reader(max_header_bytes=LIMIT, max_uri_bytes=LIMIT // 4)
    else:
        reader, rec = response_reader(max_header_bytes=LIMIT)
    heads_only = reader if kind == HEAD_RESPONSE and isinstance(reader, ResponseReader) else None
    if heads_only:
        heads_only.expect_head_response()
    status: int | None = None
    closed = False
    try:
        for piece in pieces:
            data = piece
            # every message ended consumes at least one byte: len(piece) ends at most
            for _ in range(len(piece) + 1):
                if not data or reader.upgraded_at >= 0:  # upgraded: the rest is tunnelled
                    break
                rest = reader.feed(data)
                if rest is None:
                    break
                if heads_only:
                    heads_only.expect_head_response()  # the next response answers a HEAD too
                data = rest
            else:
                raise AssertionError(f"(d) feed keeps handing back bytes: {data[:60]!r}")
        if reader.upgraded_at < 0:
            closed = reader.eof()
    except HttpError as exc:
        if not 400 <= exc.status < 600:
            raise AssertionError(f"(a) HttpError with status {exc.status}: {exc}") from exc
        status = exc.status
    except Exception as exc:
        raise AssertionError(f"(a) feed raised {exc!r}, not an HttpError") from exc
    if ("body", b"") in rec.events:
        raise AssertionError(f"(c) an empty body chunk was emitted: {rec.events}")
    check_events(rec, b"".join(pieces))
    return rec.merged(), status, closed


def check_events(rec: Recorder, received: bytes) -> None:
    """(e): the events are (info* head body* end)*, and the heads are the bytes received."""
    before = "end"
    for event in rec.events:
        if before not in FOLLOWS[str(event[0])]:
            raise AssertionError(f"(e) {event[0]} after {before}: {rec.events}")
        before = str(event[0])
    start = 0
    for head in rec.heads:
        found = received.find(head.raw, start)
        if found < 0:
            raise AssertionError(f"(e) a head not from the bytes, in order: {head.raw[:80]!r}")
        start = found + len(head.raw)


def TestOneInput(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    kind = fdp.ConsumeUInt(1) % 3
    count = fdp.ConsumeUInt(1)
    points = [fdp.ConsumeUInt(2) for _ in range(count)]
    message = fdp.ConsumeBytes(fdp.remaining_bytes())
    cuts = sorted({p % (len(message) + 1) for p in points})
    pieces = [message[a:b] for a, b in zip([0, *cuts], [*cuts, len(message)], strict=True)]

    whole = run(kind, [message])
    split = run(kind, pieces)
    if split != whole:
        raise AssertionError(f"(b) split at {cuts}:\n  {split}\nwhole:\n  {whole}")
    one_by_one = run(kind, [message[i : i + 1] for i in range(len(message))])
    if one_by_one != whole:
        raise AssertionError(f"(b) byte by byte:\n  {one_by_one}\nwhole:\n  {whole}")


def main() -> None:
    atheris.Setup(sys.argv, TestOneInput)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
