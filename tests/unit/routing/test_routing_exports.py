"""The routing package's public surface, pinned so a change to it is deliberate."""

import bascule.routing


def test_routing_exports_exactly_its_public_api() -> None:
    assert sorted(bascule.routing.__all__) == [
        "Action",
        "HeaderLookup",
        "ProxyTo",
        "Redirect",
        "Respond",
        "Route",
        "Router",
        "normalize_host",
    ]
    for name in bascule.routing.__all__:
        assert hasattr(bascule.routing, name)
