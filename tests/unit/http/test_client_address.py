"""Who the client is behind trusted proxies, and that nobody else can choose it."""

import pytest

from bascule.http.client_address import TrustedProxies

TRUSTED = TrustedProxies(["10.0.0.0/8", "::1/128"])


def test_an_untrusted_peer_is_the_client_whatever_it_claims():
    assert TRUSTED.client(b"203.0.113.9", b"1.2.3.4", None) == b"203.0.113.9"
    assert TRUSTED.client(b"203.0.113.9", b"", b"for=1.2.3.4") == b"203.0.113.9"


def test_a_trusted_peer_is_believed():
    assert TRUSTED.client(b"10.0.0.5", b"198.51.100.7", None) == b"198.51.100.7"


def test_the_chain_is_read_from_the_right_skipping_trusted_hops():
    # the client forged the first entry; the trusted 10.1.1.1 appended the real one
    chain = b"6.6.6.6, 198.51.100.7, 10.1.1.1"
    assert TRUSTED.client(b"10.0.0.5", chain, None) == b"198.51.100.7"


def test_when_every_hop_is_trusted_the_leftmost_is_the_client():
    assert TRUSTED.client(b"10.0.0.5", b"10.9.9.9, 10.1.1.1", None) == b"10.9.9.9"


def test_a_trusted_peer_without_a_header_is_the_client():
    assert TRUSTED.client(b"10.0.0.5", b"", None) == b"10.0.0.5"


def test_garbage_in_the_chain_stops_at_the_last_address_we_can_vouch_for():
    assert TRUSTED.client(b"10.0.0.5", b"198.51.100.7, unknown", None) == b"10.0.0.5"


@pytest.mark.parametrize(
    ("forwarded", "client"),
    [
        (b"for=198.51.100.7;proto=https", b"198.51.100.7"),
        (b'for="[2001:db8::1]:4711"', b"2001:db8::1"),
        (b"for=198.51.100.7:5555, for=10.2.2.2", b"198.51.100.7"),
        (b"For=198.51.100.7", b"198.51.100.7"),
    ],
)
def test_forwarded_header_when_there_is_no_x_forwarded_for(forwarded, client):
    assert TRUSTED.client(b"10.0.0.5", b"", forwarded) == client


def test_x_forwarded_for_wins_over_forwarded():
    assert TRUSTED.client(b"::1", b"198.51.100.1", b"for=198.51.100.2") == b"198.51.100.1"


def test_ipv4_mapped_peers_are_matched_as_ipv4():
    assert TRUSTED.trusts(b"::ffff:10.0.0.5")
    assert not TRUSTED.trusts(b"::ffff:11.0.0.5")


def test_no_trusted_proxies_is_false_and_trusts_nobody():
    nobody = TrustedProxies([])
    assert not nobody
    assert nobody.client(b"10.0.0.5", b"1.2.3.4", None) == b"10.0.0.5"
