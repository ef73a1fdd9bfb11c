"""geo: the client's region from CIDRs or a MaxMind database, then the fallback order."""

from __future__ import annotations

from collections import Counter

import pytest
from balancing_support import Clock, Node
from mmdb_fixture import write_mmdb

from bascule.balancing import BalancerSettings, MmdbRegions, PickContext, RegionLookup, create

NETWORKS = {
    "eu-west": ["10.1.0.0/16", "2001:db8:e0::/44"],
    "eu-west-dublin": ["10.1.2.0/24"],
    "us-east": ["10.2.0.0/16", "2001:db8::/32"],
}


@pytest.mark.parametrize(
    ("address", "region"),
    [
        (b"10.1.9.9", "eu-west"),
        (b"10.1.2.3", "eu-west-dublin"),  # the longer prefix wins
        (b"10.2.0.1", "us-east"),
        (b"10.3.0.1", None),
        (b"2001:db8:e1::7", "eu-west"),  # /44 inside the /32
        (b"2001:db8:1::7", "us-east"),
        (b"2001:DB8:E0::1", "eu-west"),
        (b"fe80::1%eth0", None),
        (b"::ffff:10.1.2.3", "eu-west-dublin"),  # IPv4-mapped is IPv4
        (b"not an address", None),
        (b"10.1.2", None),
        (b"", None),
        (b"\xff\xfe", None),
    ],
)
def test_the_longest_matching_prefix_gives_the_region(address, region):
    assert RegionLookup(NETWORKS).region_of(address) == region


def test_a_network_in_two_regions_is_refused():
    with pytest.raises(ValueError, match=r"10\.1\.0\.0/16 is in two regions"):
        RegionLookup({"a": ["10.1.0.0/16"], "b": ["10.1.0.0/16"]})


def test_repeated_lookups_are_answered_from_the_cache():
    lookup = RegionLookup(NETWORKS)
    assert lookup.region_of(b"10.1.2.3") == "eu-west-dublin"
    assert lookup.region_of(b"10.1.2.3") == "eu-west-dublin"
    for i in range(5000):  # more than the cache holds: it starts over, still right
        lookup.region_of(f"10.2.{i // 250}.{i % 250}".encode())
    assert lookup.region_of(b"10.1.9.9") == "eu-west"


def make_targets(clock: Clock) -> dict[str, Node]:
    from bascule.balancing import TargetState

    layout = [("eu1", "eu-west", 3), ("eu2", "eu-west", 1), ("us1", "us-east", 1)]
    layout += [("ap1", "ap-south", 1), ("bare", None, 1)]
    return {
        name: Node(name, weight, region=region, state=TargetState(clock=clock))
        for name, region, weight in layout
    }


def geo(targets, **settings):
    settings.setdefault("regions", RegionLookup(NETWORKS))
    return create(BalancerSettings("geo", **settings), list(targets.values()))


def test_clients_go_to_their_region_round_robin_by_weight():
    targets = make_targets(Clock())
    balancer = geo(targets)
    picks = [balancer.pick(PickContext(client_ip=b"10.1.9.9")).name for _ in range(8)]
    assert Counter(picks) == {"eu1": 6, "eu2": 2}
    assert picks[:4] == ["eu1", "eu1", "eu2", "eu1"]  # smooth, as round_robin


def test_then_the_fallback_regions_in_order_then_any_target():
    targets = make_targets(Clock())
    balancer = geo(targets, fallback={"eu-west": ("ap-south", "us-east")})
    eu = PickContext(client_ip=b"10.1.9.9")
    targets["eu1"].state.set_available(False)
    targets["eu2"].state.set_available(False)
    assert {balancer.pick(eu).name for _ in range(5)} == {"ap1"}
    targets["ap1"].state.set_available(False)
    assert {balancer.pick(eu).name for _ in range(5)} == {"us1"}
    targets["us1"].state.set_available(False)
    assert {balancer.pick(eu).name for _ in range(5)} == {"bare"}
    order = [t.name for t in balancer.candidates(PickContext(client_ip=b"10.1.9.9"))]
    assert order == ["bare"]


def test_the_candidate_order_is_own_region_then_fallbacks_then_the_rest():
    targets = make_targets(Clock())
    balancer = geo(targets, fallback={"eu-west": ("us-east",)})
    order = [t.name for t in balancer.candidates(PickContext(client_ip=b"10.1.9.9"))]
    assert order[:2] in (["eu1", "eu2"], ["eu2", "eu1"])
    assert order[2] == "us1"
    assert sorted(order[3:]) == ["ap1", "bare"]


def test_a_client_of_unknown_or_unserved_region_goes_anywhere():
    targets = make_targets(Clock())
    balancer = geo(targets)
    anywhere = Counter(balancer.pick(PickContext(client_ip=b"192.0.2.1")).name for _ in range(7))
    assert anywhere == {"eu1": 3, "eu2": 1, "us1": 1, "ap1": 1, "bare": 1}
    dublin = {balancer.pick(PickContext(client_ip=b"10.1.2.3")).name for _ in range(7)}
    assert dublin == {"eu1", "eu2", "us1", "ap1", "bare"}  # no target in eu-west-dublin


def test_a_fallback_to_a_region_without_targets_is_skipped():
    targets = make_targets(Clock())
    balancer = geo(targets, fallback={"eu-west-dublin": ("eu-west",)})
    assert {balancer.pick(PickContext(client_ip=b"10.1.2.3")).name for _ in range(8)} == {
        "eu1",
        "eu2",
    }


@pytest.fixture
def database(tmp_path):
    return write_mmdb(
        tmp_path / "regions.mmdb",
        {
            "192.0.2.0/24": {"country": {"iso_code": "DE"}, "continent": {"code": "EU"}},
            "198.51.100.0/24": {"country": {"iso_code": "US"}, "continent": {"code": "NA"}},
            "2001:db8:1::/48": {
                "country": {"iso_code": "FR"},
                "subdivisions": [{"iso_code": "IDF"}],
            },
            "203.0.113.0/24": {"location": {"accuracy_radius": 100}},
        },
    )


def test_a_maxmind_database_gives_the_region_of_addresses_no_cidr_covers(database):
    source = MmdbRegions(str(database), regions={"eu-west": ["DE", "FR"], "us-east": ["US"]})
    lookup = RegionLookup({"lab": ["192.0.2.128/25"]}, source)
    assert lookup.region_of(b"192.0.2.1") == "eu-west"
    assert lookup.region_of(b"192.0.2.200") == "lab"  # CIDRs first
    assert lookup.region_of(b"198.51.100.9") == "us-east"
    assert lookup.region_of(b"2001:db8:1::42") == "eu-west"
    assert lookup.region_of(b"::ffff:198.51.100.9") == "us-east"
    assert lookup.region_of(b"203.0.113.5") is None  # a record without the field
    assert lookup.region_of(b"100.64.0.1") is None  # not in the database
    source.close()


@pytest.mark.parametrize(
    ("field", "address", "region"),
    [
        ("country.iso_code", b"192.0.2.1", "DE"),
        ("continent.code", b"192.0.2.1", "EU"),
        ("subdivisions.0.iso_code", b"2001:db8:1::1", "IDF"),
        ("subdivisions.1.iso_code", b"2001:db8:1::1", None),
        ("country", b"192.0.2.1", None),  # a mapping, not a name
        ("location.accuracy_radius", b"203.0.113.1", None),  # a number, not a name
    ],
)
def test_the_field_path_chooses_which_value_names_the_region(database, field, address, region):
    source = MmdbRegions(str(database), field=field)
    assert RegionLookup(source=source).region_of(address) == region
    source.close()


def test_geo_with_a_database_end_to_end(database):
    clock = Clock()
    targets = make_targets(clock)
    regions = RegionLookup(source=MmdbRegions(str(database), regions={"us-east": ["US"]}))
    balancer = geo(targets, regions=regions)
    assert {balancer.pick(PickContext(client_ip=b"198.51.100.7")).name for _ in range(3)} == {"us1"}


def test_a_missing_database_file_is_an_error_at_build(tmp_path):
    with pytest.raises(FileNotFoundError):
        MmdbRegions(str(tmp_path / "absent.mmdb"))
