"""The mock's Linux bridge (harness/mockkernel/bridge/): what only virtual time or the
mock's own view shows, each pinned to the kernel function it models. What both targets
show is in suites/test_bridge.py."""
from __future__ import annotations

import pytest
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import STP, Dot1Q, Dot3, Ether

from harness.drivers.dutstate import Refused, command_effects
from harness.mockkernel.target import MockTarget
from harness.target import CommandError

A, B, C = "02:00:00:00:0a:01", "02:00:00:00:0b:02", "02:00:00:00:0c:03"


def frame(src: str, dst: str, ident: int = 1) -> Ether:
    return Ether(src=src, dst=dst) / IP(src="192.0.2.1", dst="192.0.2.2", id=ident) / UDP(sport=7, dport=9)


@pytest.fixture
def mock() -> MockTarget:
    target = MockTarget()
    target.sh("ip link add br0 type bridge mcast_snooping 0")
    for port in ("p0", "p1", "p2"):
        target.sh(f"ip link set {port} master br0")
    target.sh("ip link set br0 up")
    return target


def learned(target) -> list[str]:
    return target.sh("bridge fdb show br br0 dynamic").splitlines()


def test_a_flooded_frame_s_journey_shows_the_bridge_hops_newest_port_first(mock):
    """br_add_if() adds each port at the head of the port list: br_flood() leaves by p2 first."""
    mock.send("p0", frame(A, B))
    hops = [str(hop) for hop in mock.journeys()[0].hops[3:]]
    assert hops == ["BRIDGE[br_handle_frame] -> br0 (p0 forwarding)", "BRIDGE[br_flood] -> p2 p1 (unknown unicast)",
                    "NIC_TX[p2] -> XMIT", "NIC_TX[p1] -> XMIT"]


def test_a_learned_entry_lives_exactly_ageing_time_on_the_virtual_clock(mock):
    mock.sh("ip link set br0 type bridge ageing_time 1000")
    mock.send("p0", frame(A, B))
    mock.wait(9.999)
    assert learned(mock) == [f"{A} dev p0 master br0 "]
    mock.wait(0.001)
    assert learned(mock) == []


def test_a_frame_seen_again_restarts_its_entry_s_ageing(mock):
    mock.sh("ip link set br0 type bridge ageing_time 1000")
    mock.send("p0", frame(A, B))
    mock.wait(6)
    mock.send("p0", frame(A, B, ident=2))
    mock.wait(9)
    assert learned(mock) == [f"{A} dev p0 master br0 "]
    mock.wait(1)
    assert learned(mock) == []


def test_with_kernel_stp_a_new_port_listens_then_learns_then_forwards_forward_delay_apart():
    """br_make_forwarding() under BR_KERNEL_STP, br_forward_delay_timer_expired()."""
    target = MockTarget()
    target.sh("ip link add br0 type bridge stp_state 1 forward_delay 400 mcast_snooping 0")
    target.sh("ip link set p0 master br0")
    target.sh("ip link set p1 master br0")
    target.sh("ip link set br0 up")
    state = lambda: target.sh("bridge link show dev p0").split(" state ")[1].split()[0]  # noqa: E731
    assert state() == "listening"
    assert "NO-CARRIER" in target.sh("ip link show br0")
    target.send("p0", frame(A, B))
    assert [(d.reason, d.location) for d in target.drops()] == [("BRIDGE_INGRESS_STP_STATE", "br_handle_frame")]
    target.wait(4)
    assert state() == "learning"
    target.send("p0", frame(A, B, ident=2))
    assert learned(target) == [f"{A} dev p0 master br0 "]
    target.wait(4)
    assert state() == "forwarding"
    assert "NO-CARRIER" not in target.sh("ip link show br0")
    sent = frame(A, B, ident=3)
    target.send("p0", sent)
    target.expect("p1", sent)


def test_a_port_that_starts_forwarding_under_stp_is_a_topology_change_ageing_in_forward_delay():
    """br_topology_change_detection() on the root: BPDUs flag it and learned entries age
    in forward_delay (hold_time()) for forward_delay + max_age, then in ageing_time again."""
    target = MockTarget()
    target.sh("ip link add br0 type bridge stp_state 1 forward_delay 400 mcast_snooping 0")
    target.sh("ip link set p0 master br0")
    target.sh("ip link set p1 master br0")
    target.sh("ip link set br0 up")
    target.wait(8)  # both ports forwarding: the change lasts until 8 + 4 + 20 = 32 s
    target.collect("p0")
    target.send("p0", frame(A, B))
    target.wait(3.9)
    assert learned(target) == [f"{A} dev p0 master br0 "]
    target.wait(0.1)
    assert learned(target) == []
    assert Dot3(target.collect("p1")[-1])[STP].bpduflags == 0x01
    target.wait(20)
    assert Dot3(target.collect("p1")[-1])[STP].bpduflags == 0x00
    target.send("p0", frame(A, B, ident=2))
    target.wait(10)
    assert learned(target) == [f"{A} dev p0 master br0 "]


def test_forward_delay_out_of_range_while_stp_runs_is_erange():
    target = MockTarget()
    with pytest.raises(CommandError, match="Numerical result out of range"):
        target.sh("ip link add br0 type bridge stp_state 1 forward_delay 100")


def test_a_port_going_down_is_disabled_and_forgets_what_it_learned(mock):
    mock.send("p1", frame(B, A))
    mock.sh("ip link set p1 down")
    assert "state disabled" in mock.sh("bridge link show dev p1")
    assert learned(mock) == []
    mock.sh("ip link set p1 up")
    assert "state forwarding" in mock.sh("bridge link show dev p1")


def test_a_bridge_deleted_takes_its_routes_addresses_and_sysctls(mock):
    mock.sh("ip addr add 10.9.0.1/24 dev br0")
    assert "10.9.0.0/24 dev br0" in mock.sh("ip route")
    assert mock.sh("sysctl -n net.ipv4.conf.br0.forwarding") == "0\n"
    mock.sh("ip link del br0")
    assert "br0" not in mock.sh("ip route show table all")
    with pytest.raises(CommandError, match="cannot stat"):
        mock.sh("sysctl -n net.ipv4.conf.br0.forwarding")
    assert "master" not in mock.sh("ip link show")


def test_the_lab_ports_cannot_be_deleted_on_the_mock(mock):
    with pytest.raises(CommandError, match="not modelled"):
        mock.sh("ip link del p0")


def test_a_bridge_cannot_be_enslaved_to_a_bridge():
    target = MockTarget()
    target.sh("ip link add br0 type bridge")
    target.sh("ip link add br1 type bridge")
    with pytest.raises(CommandError, match="Can not enslave a bridge to a bridge"):
        target.sh("ip link set br1 master br0")


def test_an_unknown_bridge_option_fails_as_iproute2_does():
    with pytest.raises(CommandError, match='bridge: unknown command "colour"'):
        MockTarget().sh("ip link add br0 type bridge colour 1")


@pytest.fixture
def vlans(mock) -> MockTarget:
    """p0 access port of VLAN 10, p1 a trunk of 10 and 20, p2 access port of VLAN 20."""
    mock.sh("ip link set br0 type bridge vlan_filtering 1")
    for command in ("bridge vlan add dev p0 vid 10 pvid untagged", "bridge vlan del dev p0 vid 1",
                    "bridge vlan add dev p1 vid 10", "bridge vlan add dev p1 vid 20",
                    "bridge vlan add dev p2 vid 20 pvid untagged", "bridge vlan del dev p2 vid 1"):
        mock.sh(command)
    return mock


def test_an_untagged_frame_joins_the_port_s_pvid_and_leaves_the_trunk_tagged(vlans):
    vlans.send("p0", frame(A, B))
    vlans.expect("p1", Ether(src=A, dst=B) / Dot1Q(vlan=10) / frame(A, B)[IP])
    vlans.expect_nothing()
    assert learned(vlans) == [f"{A} dev p0 vlan 10 master br0 "]


def test_a_tagged_frame_leaves_an_access_port_untagged(vlans):
    vlans.send("p1", Ether(src=B, dst=C) / Dot1Q(vlan=20) / frame(B, C)[IP])
    vlans.expect("p2", frame(B, C))
    vlans.expect_nothing()


def test_a_frame_of_a_vlan_the_port_lacks_is_dropped_at_ingress(vlans):
    vlans.send("p1", Ether(src=B, dst=C) / Dot1Q(vlan=30) / frame(B, C)[IP])
    vlans.expect_nothing()
    assert [(d.reason, d.location) for d in vlans.drops()] == [("NOT_SPECIFIED", "br_allowed_ingress")]


def test_an_untagged_frame_on_a_port_without_pvid_is_dropped(vlans):
    vlans.sh("bridge vlan add dev p1 vid 10")  # no pvid: p1 had VLAN 1 as PVID, still does
    vlans.sh("bridge vlan del dev p1 vid 1")
    vlans.send("p1", frame(B, A))
    vlans.expect_nothing()
    assert [(d.reason, d.location) for d in vlans.drops()] == [("NOT_SPECIFIED", "br_allowed_ingress")]


def test_the_lab_allow_list_knows_which_interfaces_a_bridge_command_changes():
    assert command_effects(["bridge", "fdb", "add", A, "dev", "p0", "master"]).touched == ["p0"]
    assert command_effects(["bridge", "link", "set", "dev", "p1", "state", "0"]).touched == ["p1"]
    assert command_effects(["bridge", "fdb", "show"]).touched == []
    with pytest.raises(Refused, match="another network namespace"):
        command_effects(["bridge", "-n", "x", "fdb", "show"])
