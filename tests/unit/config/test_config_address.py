import pytest

from bascule.config import BindAddress, parse_address


@pytest.mark.parametrize(
    ("text", "host", "port"),
    [
        ("127.0.0.1:8080", "127.0.0.1", 8080),
        ("0.0.0.0:80", "0.0.0.0", 80),
        ("localhost:8080", "localhost", 8080),
        ("api.internal:65535", "api.internal", 65535),
        ("[::1]:8080", "::1", 8080),
        ("[::]:8080", "::", 8080),
    ],
)
def test_addresses_split_into_a_bindable_host_and_int_port(text: str, host: str, port: int) -> None:
    assert parse_address(text) == (host, port)
    assert str(BindAddress(host, port)) == text


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        ("8080", "expected host:port"),
        (":8080", "host is missing; use 0.0.0.0:8080"),
        ("::1:8080", "in brackets"),
        ("[::g]:80", "not a valid IPv6"),
        ("host:0", "from 1 to 65535"),
        ("host:65536", "from 1 to 65535"),
        ("host:http", "from 1 to 65535"),
        ("bad host:80", "not a valid host name"),
    ],
)
def test_bad_addresses_say_what_to_write(text: str, complaint: str) -> None:
    with pytest.raises(ValueError, match=complaint):
        parse_address(text)
