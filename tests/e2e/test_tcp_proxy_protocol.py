"""PROXY protocol on tcp listeners: the exact bytes sent to targets (v1, v2), and headers
accepted from a trusted balancer in front, refused from anyone else."""

from __future__ import annotations

import logging
import socket
import struct

import pytest

from bascule.tcp.proxy_protocol import SIGNATURE_V2
from e2e.proxy import wait_until
from e2e.tcp_backends import Recorder, closed_at_once, connect, echo, tcp_config


@pytest.fixture
def tcp_log(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.INFO, logger="bascule.tcp")
    return caplog


def send_and_close(port: int, data: bytes) -> int:
    """Send `data` and close; returns the client's own port."""
    with connect(port) as sock:
        sock.sendall(data)
        client_port = sock.getsockname()[1]
        sock.shutdown(socket.SHUT_WR)
        sock.recv(1)
    return int(client_port)


def test_v1_header_goes_first_to_the_target(backend, bascule):
    recorder = Recorder()
    proxy = bascule(tcp_config(backend(recorder, raw=True), upstream={"proxy_protocol": "v1"}))
    client_port = send_and_close(proxy.port, b"hello")
    assert wait_until(lambda: bool(recorder.received) and recorder.received[0].endswith(b"hello"))
    assert recorder.received == [
        b"PROXY TCP4 127.0.0.1 127.0.0.1 %d %d\r\nhello" % (client_port, proxy.port)
    ]


def test_v2_header_goes_first_to_the_target(backend, bascule):
    recorder = Recorder()
    proxy = bascule(tcp_config(backend(recorder, raw=True), upstream={"proxy_protocol": "v2"}))
    client_port = send_and_close(proxy.port, b"hello")
    assert wait_until(lambda: bool(recorder.received) and recorder.received[0].endswith(b"hello"))
    addresses = socket.inet_aton("127.0.0.1") * 2 + struct.pack("!HH", client_port, proxy.port)
    assert recorder.received == [
        SIGNATURE_V2 + b"\x21\x11\x00\x0c" + addresses + b"hello",
    ]


def trusting(*targets, **listener):
    return tcp_config(
        *targets,
        listener={"proxy_protocol": "accept", **listener},
        trusted_proxies=["127.0.0.1/32"],
    )


def test_a_v1_header_from_a_trusted_balancer_names_the_client(backend, bascule):
    recorder = Recorder()
    config = trusting(backend(recorder, raw=True))
    config["upstreams"]["app"]["proxy_protocol"] = "v1"
    proxy = bascule(config)
    send_and_close(proxy.port, b"PROXY TCP4 203.0.113.7 192.0.2.1 40000 443\r\nhello")
    assert wait_until(lambda: bool(recorder.received) and recorder.received[0].endswith(b"hello"))
    # The header is read, not passed on; the one sent names the client it named.
    assert recorder.received == [b"PROXY TCP4 203.0.113.7 192.0.2.1 40000 443\r\nhello"]
    line = proxy.last_log()
    assert line["client"] == "203.0.113.7"
    assert line["bytes_in"] == 5


def test_a_v2_header_from_a_trusted_balancer_names_the_client(backend, bascule):
    recorder = Recorder()
    proxy = bascule(trusting(backend(recorder, raw=True)))
    header = SIGNATURE_V2 + b"\x21\x21\x00\x24"
    header += socket.inet_pton(socket.AF_INET6, "2001:db8::7")
    header += socket.inet_pton(socket.AF_INET6, "2001:db8::1")
    header += struct.pack("!HH", 40000, 443)
    send_and_close(proxy.port, header + b"hello")
    assert wait_until(lambda: recorder.received == [b"hello"])
    assert proxy.last_log()["client"] == "2001:db8::7"


def test_a_header_split_into_single_bytes_is_read(backend, bascule):
    target = backend(echo, raw=True)
    proxy = bascule(trusting(target))
    with connect(proxy.port) as sock:
        for byte in b"PROXY TCP4 203.0.113.7 192.0.2.1 40000 443\r\n":
            sock.send(bytes((byte,)))
        sock.sendall(b"ping")
        assert sock.recv(4) == b"ping"


def test_an_untrusted_peer_is_refused(backend, bascule, tcp_log):
    target = backend(echo, raw=True)
    proxy = bascule(
        tcp_config(target, listener={"proxy_protocol": "accept"}, trusted_proxies=["10.0.0.0/8"])
    )
    with connect(proxy.port) as sock:
        sock.sendall(b"PROXY TCP4 203.0.113.7 192.0.2.1 40000 443\r\nhello")
        assert closed_at_once(sock)
    assert target.connections == 0
    assert "is not in trusted_proxies" in proxy.last_log()["error"]
    assert any("not in trusted_proxies" in m for m in tcp_log.messages)


@pytest.mark.parametrize(
    "garbage",
    [
        b"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
        b"PROXY TCP4 not-an-address 192.0.2.1 1 2\r\n",
        b"PROXY " + b"9" * 200,
        SIGNATURE_V2 + b"\x31\x11\x00\x0c" + b"\x00" * 12,
        b"\x00\xff" * 64,
    ],
)
def test_garbage_instead_of_a_header_closes_cleanly(backend, bascule, tcp_log, garbage):
    target = backend(echo, raw=True)
    proxy = bascule(trusting(target))
    with connect(proxy.port) as sock:
        sock.sendall(garbage)
        assert closed_at_once(sock)
    assert target.connections == 0
    assert "proxy_protocol: " in proxy.last_log()["error"]
    # and the listener still serves
    with connect(proxy.port) as sock:
        sock.sendall(b"PROXY UNKNOWN\r\nping")
        assert sock.recv(4) == b"ping"


def test_a_header_that_never_comes_times_out(backend, bascule):
    proxy = bascule(trusting(backend(echo, raw=True), timeouts={"preread": "200ms"}))
    with connect(proxy.port) as sock:
        sock.sendall(b"PROXY TCP4 1.2.3.4")
        assert closed_at_once(sock, timeout=2)
    assert "within 0.2s (timeouts.preread)" in proxy.last_log()["error"]
