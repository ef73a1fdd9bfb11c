"""From the targets an upstream has to the addresses DNS now lists: which are kept (with
their state), added, removed or reweighted."""

from __future__ import annotations

import os

from bascule.upstream.discovery import Endpoint, HostsFile, parse_hosts, reconcile
from bascule.upstream.target import Target


def ep(ip: str, port: int = 80, weight: int = 1, entry: int = 0) -> Endpoint:
    return Endpoint(ip, port, weight, entry, "app.test")


def make(endpoint: Endpoint) -> Target:
    return Target(endpoint.ip, endpoint.port, endpoint.weight)


def test_targets_still_listed_keep_their_objects_and_state() -> None:
    a, b = Target("10.0.0.1", 80), Target("10.0.0.2", 80)
    a.state.start()

    change = reconcile([a, b], [ep("10.0.0.2"), ep("10.0.0.1"), ep("10.0.0.3")], make)

    assert change.targets[:2] == (b, a)
    assert change.targets[0] is b
    assert change.targets[1] is a
    assert change.targets[1].state.in_flight == 1
    (added,) = change.added
    assert added.name == "10.0.0.3:80"
    assert change.targets[2] is added
    assert change.removed == ()


def test_an_address_no_longer_listed_is_removed() -> None:
    a, b = Target("10.0.0.1", 80), Target("10.0.0.2", 80)

    change = reconcile([a, b], [ep("10.0.0.2")], make)

    assert change.targets == (b,)
    assert change.removed == (a,)
    assert change.added == ()


def test_the_same_set_in_another_order_is_no_change() -> None:
    a, b = Target("10.0.0.1", 80), Target("10.0.0.2", 80)

    change = reconcile([a, b], [ep("10.0.0.2"), ep("10.0.0.1")], make)

    assert not change


def test_a_new_weight_or_backup_flag_is_reported_for_the_kept_target() -> None:
    a, b = Target("10.0.0.1", 80, weight=1), Target("10.0.0.2", 80)
    heavier = ep("10.0.0.1", weight=5)
    standby = Endpoint("10.0.0.2", 80, 1, 0, "app.test", backup=True)

    change = reconcile([a, b], [heavier, standby], make)

    assert change
    assert change.retuned == ((a, heavier), (b, standby))
    assert change.targets == (a, b)


def test_an_address_listed_twice_is_one_target_the_first_listing_wins() -> None:
    made: list[Endpoint] = []

    def record(endpoint: Endpoint) -> Target:
        made.append(endpoint)
        return make(endpoint)

    change = reconcile(
        [], [ep("10.0.0.1", weight=3, entry=0), ep("10.0.0.1", weight=7, entry=1)], record
    )

    assert len(change.targets) == 1
    assert made == [ep("10.0.0.1", weight=3, entry=0)]


def test_ports_tell_targets_apart_on_one_address() -> None:
    change = reconcile([], [ep("10.0.0.1", 8081), ep("10.0.0.1", 8082)], make)

    assert [t.name for t in change.targets] == ["10.0.0.1:8081", "10.0.0.1:8082"]


def test_an_ipv6_endpoint_is_named_like_its_target() -> None:
    endpoint = ep("2001:db8::1", 8080)
    current = Target("2001:db8::1", 8080)

    assert endpoint.name == current.name == "[2001:db8::1]:8080"
    assert not reconcile([current], [endpoint], make)


def test_nothing_listed_removes_everything() -> None:
    a = Target("10.0.0.1", 80)

    change = reconcile([a], [], make)

    assert change.targets == ()
    assert change.removed == (a,)


def test_hosts_file_lines_give_each_name_its_addresses_in_order() -> None:
    text = """
    # comment
    127.0.0.1   localhost  Local.Test.   # trailing comment
    ::1         localhost ip6-localhost
    10.0.0.7    app.internal
    10.0.0.8    app.internal
    fe80::1%eth0 linklocal
    not-an-ip   broken
    127.0.0.1   localhost
    """

    names = parse_hosts(text)

    assert names["localhost"] == ["127.0.0.1", "::1"]
    assert names["local.test"] == ["127.0.0.1"]
    assert names["app.internal"] == ["10.0.0.7", "10.0.0.8"]
    assert names["linklocal"] == ["fe80::1%eth0"]
    assert "broken" not in names


def test_the_hosts_file_is_read_again_when_it_changes(tmp_path) -> None:
    path = tmp_path / "hosts"
    path.write_text("10.0.0.1 app.internal\n")
    hosts = HostsFile(str(path))
    assert hosts.addresses("APP.internal.") == ["10.0.0.1"]

    path.write_text("10.0.0.2 app.internal\n")
    os.utime(path, ns=(1, 1))  # a different mtime, whatever the clock's resolution

    assert hosts.addresses("app.internal") == ["10.0.0.2"]
    assert HostsFile(str(tmp_path / "missing")).addresses("app.internal") == []
