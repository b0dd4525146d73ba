"""The operators' counter readers on the mock (cmd/nstat.py, cmd/cat.py over
ipv4/proc.py and core/net_procfs.py): what only the mock shows or only a unit
test can set up. What both targets show is in suites/test_counters.py."""
from __future__ import annotations

import pytest
from scapy.layers.inet import ICMP, IP, UDP
from scapy.layers.l2 import Ether

from harness.mockkernel.target import MockTarget
from harness.target import PORTS, CommandError
from harness.traffic import Mode, Profile, Rate, Stream

H0, DUT0, H1 = "10.0.0.2", "10.0.0.1", "10.0.1.2"


@pytest.fixture
def target() -> MockTarget:
    target = MockTarget()
    for port in PORTS[:2]:
        target.sh(f"ip addr add 10.0.{port.index}.1/24 dev {port.name}")
        target.sh(f"ip neigh replace 10.0.{port.index}.2 lladdr {port.peer_mac} dev {port.name} nud permanent")
    return target


def frame(dst: str = DUT0, **ip_fields) -> bytes:
    return bytes(Ether(src=PORTS[0].peer_mac, dst=PORTS[0].mac) / IP(src=H0, dst=dst, **ip_fields) /
                 UDP(sport=1000, dport=2000) / (b"x" * 18))


def nstat(target, *args: str) -> dict[str, int]:
    lines = target.sh(["nstat", *args]).splitlines()
    return {name: int(value) for name, value, _ in (line.split() for line in lines[1:])}


def test_a_line_rate_run_counts_the_mibs_and_softnet_for_every_packet_not_only_the_probes(target):
    """The engine probes a train's head through the functional path and applies
    the rest in bulk: the SNMP counters and softnet's processed come out as if
    every packet had gone through ip_forward()."""
    target.sh("sysctl -w net.ipv4.ip_forward=1")
    stream = Stream.of("p0", frame(H1), rate=Rate(1_000_000.0), mode=Mode.SINGLE_BURST, count=1000)
    result = target.traffic(Profile((stream,)))
    assert result.streams[0].ipackets == 1000
    assert nstat(target, "-a", "Ip*") == {"IpInReceives": 1000, "IpForwDatagrams": 1000, "IpOutTransmits": 1000,
                                          "IpExtInOctets": 46000, "IpExtOutOctets": 46000,
                                          "IpExtInNoECTPkts": 1000}
    assert sum(cpu.processed for cpu in target.kernel.softnet) == 1000


def test_ip_header_errors_count_where_ip_rcv_core_counts_them(target):
    """A bad checksum is InCsumErrors and InHdrErrors; tot_len over the packet
    InTruncatedPkts; a version 5 header InHdrErrors before any ECN class. Each
    is an InReceives."""
    good = bytearray(frame(tos=0x03))  # ECN CE
    bad_checksum = bytearray(good)
    bad_checksum[14 + 10] ^= 0xFF
    truncated = bytes(Ether(src=PORTS[0].peer_mac, dst=PORTS[0].mac) / IP(src=H0, dst=DUT0, len=200) / b"x")
    version_5 = bytearray(good)
    version_5[14] = 0x55
    target.send("p0", [bytes(good), bytes(bad_checksum), truncated, bytes(version_5)])
    assert nstat(target, "-a", "Ip*") == {
        "IpInReceives": 4, "IpInHdrErrors": 2, "IpInDelivers": 1, "IpOutRequests": 1, "IpOutTransmits": 1,
        "IpExtInTruncatedPkts": 1, "IpExtInCsumErrors": 1, "IpExtInOctets": 46 * 3 + 21,
        "IpExtOutOctets": 74, "IpExtInNoECTPkts": 1, "IpExtInCEPkts": 2}


def test_icmpmsg_lines_show_each_type_seen_in_and_out():
    target = MockTarget()
    target.sh("ip addr add 10.0.0.1/24 dev p0")
    target.sh(f"ip neigh replace {H0} lladdr {PORTS[0].peer_mac} dev p0 nud permanent")
    target.send("p0", bytes(Ether(src=PORTS[0].peer_mac, dst=PORTS[0].mac) / IP(src=H0, dst=DUT0) /
                            ICMP(type=8) / b"ping"))
    snmp = target.sh("cat /proc/net/snmp").splitlines()
    assert snmp[4:6] == ["IcmpMsg: InType8 OutType0", "IcmpMsg: 1 1"]
    assert snmp[3].split()[1:4] == ["1", "0", "0"]  # InMsgs InErrors InCsumErrors


def test_softnet_stat_prints_each_cpus_processed_in_hex_and_its_index(target):
    target.send("p0", [frame()] * 17)
    lines = target.sh("cat /proc/net/softnet_stat").splitlines()
    assert lines == ["00000011 " + "00000000 " * 11 + "00000000 00000000 00000000",
                     "00000000 " * 12 + "00000001 00000000 00000000"]


def test_nstat_history_zeros_reset_and_patterns(target):
    """nstat prints the change since its last run and remembers; -s leaves the
    history as it was, -r starts it anew, -n prints nothing, -z shows zeros,
    patterns are case-insensitive globs."""
    assert target.sh("nstat -n") == ""
    target.send("p0", [frame()] * 2)
    assert nstat(target, "-s", "ipinreceives") == {"IpInReceives": 2}
    assert nstat(target, "IpIn*") == {"IpInReceives": 2, "IpInDelivers": 2}
    assert nstat(target) == {}
    target.send("p0", frame())
    assert nstat(target, "-r", "IpInReceives") == {"IpInReceives": 3}
    assert nstat(target, "-z", "IpInReceives", "IpFragOKs") == {"IpInReceives": 0, "IpFragOKs": 0}


@pytest.mark.parametrize("command, message", [
    ("cat /etc/passwd", "`cat` reads only /proc/net/* and /proc/sys/* on a target, not '/etc/passwd'"),
    ("cat /proc/sys/net/ipv4/nope", "cat: /proc/sys/net/ipv4/nope: No such file or directory"),
    ("cat /proc/sys/net/ipv4", "cat: /proc/sys/net/ipv4: Is a directory"),
    ("cat /proc/net/dev", "not modelled"),
    ("nstat -q", "Usage: nstat [OPTION] [ PATTERN [ PATTERN ] ]"),
    ("nstat -j", "not modelled"),
])
def test_readers_refuse_what_they_cannot_read_naming_it(target, command, message):
    with pytest.raises(CommandError, match=message.replace("*", r"\*").replace("[", r"\[").replace("]", r"\]")):
        target.sh(command)


def test_cat_reads_a_sysctl_as_its_proc_file_prints_it(target):
    assert target.sh("cat /proc/sys/net/ipv4/ip_default_ttl /proc/sys/net/ipv4/ip_forward") == "64\n0\n"
