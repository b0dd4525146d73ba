"""What the operators' counter readers say after a few packets, on both targets:
`nstat` (the SNMP MIB counters of net/ipv4/proc.c, counted where ip_input.c,
ip_forward.c, ip_output.c, icmp.c and udp.c count them), `ip -s link` (the
device's counters) and /proc/net/softnet_stat (packets the receive softirq
processed). The DUT namespace is fresh, so its MIB counters start at 0;
softnet_stat is the whole host's, so the lab's processed column counts other
namespaces' packets too, and only its growth by at least ours is asserted. The
device counters of `ip -s link` start at 0 only where the ports are new devices
for each test (capability "fresh_devices": the mock, the netns lab; a lab DUT's
NICs count since they came up).
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest
from scapy.layers.inet import ICMP, IP, UDP
from scapy.layers.l2 import Ether

# what a fresh DUT prints, recorded from the lab by tests/golden/record_proc_net
GOLDEN = Path(__file__).resolve().parent.parent / "tests" / "golden" / "proc_net"
FRESH_DUT_READINGS = {"snmp": "cat /proc/net/snmp", "netstat": "cat /proc/net/netstat",
                      "snmp6": "cat /proc/net/snmp6", "nstat-az": "nstat -az"}


def nstat(target, *patterns: str) -> dict[str, int]:
    """`nstat -a` counters (absolute, non-zero), by name."""
    lines = target.sh(["nstat", "-a", *patterns]).splitlines()
    assert lines[0] == "#kernel"
    return {name: int(value) for name, value, _ in (line.split() for line in lines[1:])}


def softnet_processed(target) -> int:
    return sum(int(line.split()[0], 16) for line in target.sh("cat /proc/net/softnet_stat").splitlines())


@pytest.mark.parametrize("reading", FRESH_DUT_READINGS)
def test_a_fresh_dut_prints_its_counters_as_linux_6_18_does(target, reading):
    """Byte for byte what the lab's kernel printed (every MIB name, in its
    order, all 0; Forwarding 2 and DefaultTTL 64)."""
    printed = target.sh(FRESH_DUT_READINGS[reading])
    golden = GOLDEN / reading
    if os.environ.get("PJ_RECORD_GOLDEN") and target.name == "dut":
        golden.write_text(printed)
    assert printed == golden.read_text()


def test_udp_to_a_closed_port_counts_in_ip_udp_and_icmp_mibs(target, hosts):
    """Three datagrams to a closed port: each received and delivered (InDelivers
    counts after the protocol handler, even when UDP found no socket), each a
    UDP NoPorts, each answered with a port unreachable sent as a local packet."""
    h0 = hosts[0]
    for seq in range(3):
        target.send(h0.port, h0.to_dut(id=seq) / UDP(sport=1234, dport=9999) / b"anyone?")
        target.expect(h0.port, h0.icmp_error(3, 3, h0.to_dut(id=seq) / UDP(sport=1234, dport=9999) / b"anyone?"))
    assert nstat(target, "Ip*", "Udp*", "Icmp*") == {
        "IpInReceives": 3, "IpInDelivers": 3, "IpOutRequests": 3, "IpOutTransmits": 3,
        "IcmpOutMsgs": 3, "IcmpOutDestUnreachs": 3, "IcmpMsgOutType3": 3, "UdpNoPorts": 3,
        "IpExtInOctets": 3 * 35, "IpExtOutOctets": 3 * 63, "IpExtInNoECTPkts": 3}


def test_forwarded_packets_count_forw_datagrams_not_out_requests(target, router):
    """Forwarding counts InReceives, ForwDatagrams and OutTransmits, never
    InDelivers or OutRequests (those are the host's own)."""
    h0, h1 = router[0], router[1]
    for seq in range(2):
        target.send(h0.port, h0.to_dut(dst=h1.ip, id=seq, ttl=64) / UDP(sport=1, dport=2) / b"through")
        target.collect(h1.port)
    assert nstat(target, "Ip*") == {"IpInReceives": 2, "IpForwDatagrams": 2, "IpOutTransmits": 2,
                                    "IpExtInOctets": 2 * 35, "IpExtOutOctets": 2 * 35, "IpExtInNoECTPkts": 2}


def test_echo_request_counts_icmp_in_and_out_by_type(target, hosts):
    h2 = hosts[2]
    target.send(h2.port, h2.to_dut() / ICMP(type=8, id=1, seq=1) / b"ping")
    target.collect(h2.port)
    assert nstat(target, "Icmp*") == {"IcmpInMsgs": 1, "IcmpInEchos": 1, "IcmpOutMsgs": 1, "IcmpOutEchoReps": 1,
                                      "IcmpMsgInType8": 1, "IcmpMsgOutType0": 1}


def test_nstat_without_a_flag_shows_what_changed_since_its_last_run(target, hosts):
    h0 = hosts[0]
    nstat(target)
    target.sh("nstat")
    target.send(h0.port, h0.to_dut(ttl=1) / UDP(sport=1234, dport=9999) / b"anyone?")
    target.collect(h0.port)
    assert "IpInReceives                    1                  0.0\n" in target.sh("nstat")
    assert target.sh("nstat IpInReceives") == "#kernel\n"


@pytest.mark.requires("fresh_devices")  # a lab DUT's NICs count since they came up
def test_ip_s_link_counts_the_ports_packets_and_softnet_the_processed_ones(target, hosts):
    h0 = hosts[0]
    before = softnet_processed(target)
    for seq in range(4):
        target.send(h0.port, h0.to_dut(id=seq) / ICMP(type=8, id=1, seq=seq) / b"ping")
        target.collect(h0.port)
    rx, tx = _link_counters(target.sh("ip -s link show dev p0"))
    assert (rx["packets"], rx["bytes"]) == (4, 4 * 46) and (tx["packets"], tx["bytes"]) == (4, 4 * 46)
    assert softnet_processed(target) - before >= 4


def _link_counters(text: str) -> tuple[dict[str, int], dict[str, int]]:
    lines = text.splitlines()
    rx_at = next(i for i, line in enumerate(lines) if line.strip().startswith("RX:"))
    rx = dict(zip(lines[rx_at].split()[1:], map(int, lines[rx_at + 1].split())))
    tx = dict(zip(lines[rx_at + 2].split()[1:], map(int, lines[rx_at + 3].split())))
    return rx, tx


@pytest.mark.requires("fresh_devices")  # a lab DUT's NICs count since they came up
def test_ip_s_s_link_adds_error_counters_otherhost_drops_and_carrier_transitions(target, hosts):
    """A packet to another host's MAC address is counted on the port and dropped
    in ip_rcv_core() as OTHERHOST (the "otherhost" column appears when non-zero);
    a port's carrier went off when its veth was created and on when it came up."""
    h0 = hosts[0]
    stray = Ether(src=h0.mac, dst="02:00:00:00:00:99") / IP(src=h0.ip, dst=h0.dut_ip) / UDP(sport=1, dport=2) / \
        (b"x" * 32)
    target.send(h0.port, stray)
    target.expect_nothing()
    lines = target.sh("ip -s -s link show dev p0").splitlines()[2:]
    assert lines == [
        "    RX:  bytes packets errors dropped  missed   mcast           ",
        "            74       1      0       0       0       0 ",
        "    RX errors:  length    crc   frame    fifo overrun otherhost",
        "                     0      0       0       0       0         1 ",
        "    TX:  bytes packets errors dropped carrier collsns           ",
        "             0       0      0       0       0       0 ",
        "    TX errors: aborted   fifo  window heartbt transns",
        "                     0      0       0       0       2 "]


def test_a_reverse_path_filter_drop_counts_in_tcpext(target, router):
    """ip_rcv_finish_core(): a route lookup refused with -EXDEV (rp_filter) is
    LINUX_MIB_IPRPFILTER, TcpExtIPReversePathFilter; the packet was received,
    never delivered nor forwarded."""
    h0, h2 = router[0], router[2]
    target.sh("sysctl -w net.ipv4.conf.all.rp_filter=1")
    target.send(h0.port, h0.to_dut(src="10.0.1.77", dst=h2.ip) / UDP(sport=1, dport=2) / b"spoof")
    target.expect_nothing()
    assert nstat(target, "Ip*", "TcpExt*") == {"IpInReceives": 1, "IpExtInOctets": 33, "IpExtInNoECTPkts": 1,
                                               "TcpExtIPReversePathFilter": 1}
