"""From a loaded config to a working balancer: BalancerSettings.from_config and create."""

from __future__ import annotations

from textwrap import dedent

from balancing_support import Clock, Node
from mmdb_fixture import write_mmdb

from bascule.balancing import BalancerSettings, PickContext, TargetState, create
from bascule.config import load_text


def upstream_of(yaml: str):
    text = dedent(
        """\
        listeners: [{name: web, bind: "127.0.0.1:8080"}]
        routes: [{name: all, upstream: app}]
        upstreams:
          app:
        """
    ) + "\n".join("    " + line for line in dedent(yaml).splitlines())
    return load_text(text).config.upstreams["app"]


def targets_of(upstream, clock: Clock) -> list[Node]:
    return [
        Node(
            str(t.address),
            t.weight,
            region=t.region,
            priority=t.priority,
            max_load=t.max_load,
            state=TargetState(clock=clock),
        )
        for t in upstream.targets
    ]


def test_defaults_are_round_robin_without_slow_start():
    settings = BalancerSettings.from_config(upstream_of("targets: [{address: 'h:1'}]"))
    assert settings == BalancerSettings()


def test_every_balancing_key_reaches_the_settings(tmp_path):
    database = write_mmdb(tmp_path / "geo.mmdb", {"192.0.2.0/24": {"country": {"iso_code": "DE"}}})
    upstream = upstream_of(
        f"""\
        balance: geo
        slow_start: 45s
        targets:
          - {{address: "10.0.0.1:80", region: eu-west}}
          - {{address: "10.0.0.2:80", region: us-east}}
        geo:
          client_regions: {{us-east: [10.2.0.0/16]}}
          mmdb: {{path: "{database}", regions: {{eu-west: [DE]}}}}
          fallback: {{eu-west: [us-east]}}
        """
    )
    settings = BalancerSettings.from_config(upstream)
    assert settings.balance == "geo"
    assert settings.slow_start == 45.0
    assert settings.fallback == {"eu-west": ("us-east",)}
    assert settings.regions is not None
    assert settings.regions.region_of(b"192.0.2.9") == "eu-west"
    assert settings.regions.region_of(b"10.2.3.4") == "us-east"
    clock = Clock()
    targets = targets_of(upstream, clock)
    balancer = create(settings, targets, clock=clock)
    assert balancer.pick(PickContext(client_ip=b"192.0.2.9")) is targets[0]
    assert balancer.pick(PickContext(client_ip=b"10.2.3.4")) is targets[1]


def test_the_seed_example_config_gives_the_seed_tiers():
    upstream = upstream_of(
        """\
        balance: least_load
        load_header: X-Server-Load
        load_max_age: 10s
        targets:
          - {address: "10.0.0.1:8080", priority: 0, max_load: 50}   # A
          - {address: "10.0.0.2:8080", priority: 1, max_load: 75}   # B
          - {address: "10.0.0.3:8080", priority: 2}                 # C
        """
    )
    clock = Clock()
    a, b, c = targets_of(upstream, clock)
    balancer = create(BalancerSettings.from_config(upstream), [a, b, c], clock=clock)
    a.state.report_load(49)
    assert balancer.pick(PickContext()) is a
    a.state.report_load(50)
    b.state.report_load(74)
    assert balancer.pick(PickContext()) is b
    b.state.report_load(75)
    assert balancer.pick(PickContext()) is c


def test_hash_settings_carry_the_bound_and_the_parsed_key():
    upstream = upstream_of(
        """\
        balance: hash
        key: "$cookie_sid"
        bounded_load: 1.25
        targets: [{address: "h:1"}, {address: "h:2"}]
        """
    )
    assert BalancerSettings.from_config(upstream).bounded_load == 1.25
    assert upstream.hash_key is not None
