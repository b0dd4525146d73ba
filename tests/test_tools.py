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


# ethtool: what the lab's veth cannot show (it has no link setter, separate RX
# and TX queues up to the CPUs' count, and no RSS); the command-line errors both
# share are in tests/test_mock_commands.py
def test_ethtool_s_sets_speed_and_duplex_and_refuses_autonegotiation(target):
    target.sh("ethtool -s p0 speed 1000 duplex half autoneg off")
    shown = target.sh("ethtool p0")
    assert "\tSpeed: 1000Mb/s\n\tDuplex: Half\n\tAuto-negotiation: off\n" in shown
    assert target.kernel.dev_by_name("p0").speed == 1000  # what the line-rate model serialises at
    with pytest.raises(CommandError, match="netlink error: Invalid argument") as refused:
        target.sh("ethtool -s p0 autoneg on")
    assert refused.value.returncode == 75
    with pytest.raises(CommandError, match="netlink error: Operation not supported"):
        target.sh("ethtool -s lo speed 10")


def test_ethtool_channels_are_combined_queue_pairs_up_to_eight(target):
    target.sh("ethtool -L p0 combined 4")
    assert target.sh("ethtool -l p0").endswith("Current hardware settings:\nRX:\t\tn/a\nTX:\t\tn/a\n"
                                               "Other:\t\tn/a\nCombined:\t4\n")
    assert "Pre-set maximums:\nRX:\t\tn/a\nTX:\t\tn/a\nOther:\t\tn/a\nCombined:\t8\n" in target.sh("ethtool -l p0")
    for command, message in (
            ("ethtool -L p0 combined 9", "requested channel count exceeds maximum (offset 32)"),
            ("ethtool -L p0 tx 1 rx 1", "requested channel count exceeds maximum (offset 40)"),  # rx first
            ("ethtool -L p0 tx 0 combined 0", "no RX or TX channel being configured (offset 40)")):
        with pytest.raises(CommandError, match=message.replace("(", r"\(").replace(")", r"\)")):
            target.sh(command)
    assert target.kernel.dev_by_name("p0").channels == 4


def indirection_table(shown: str) -> list[int]:
    lines = shown.splitlines()
    return [int(queue) for line in lines[1:lines.index("RSS hash key:")] for queue in line.split(":")[1].split()]


def test_ethtool_x_shows_the_default_table_over_the_channels_and_the_boots_key(target):
    """ethtool_rxfh_indir_default(): entry i -> queue i % rings; the key is the
    kernel's netdev_rss_key, the same for every port, 40 bytes."""
    target.sh("ethtool -L p0 combined 3")
    shown = target.sh("ethtool -x p0")
    assert shown.startswith("RX flow hash indirection table for p0 with 3 RX ring(s):\n"
                            "    0:      0     1     2     0     1     2     0     1\n")
    assert indirection_table(shown) == [i % 3 for i in range(128)]
    key = shown.splitlines()[-5]
    assert len(key.split(":")) == 40 and key == target.sh("ethtool -x p1").splitlines()[-5]
    assert shown.endswith("RSS hash function:\n    toeplitz: on\n    xor: off\n    crc32: off\n")
    target.sh("ethtool -L p0 combined 2")  # a default table follows the channels
    assert indirection_table(target.sh("ethtool -x p0")) == [i % 2 for i in range(128)]


def test_ethtool_x_equal_weight_start_hkey_and_default(target):
    target.sh("ethtool -L p0 combined 4")
    target.sh("ethtool -X p0 equal 2 start 1")
    assert indirection_table(target.sh("ethtool -x p0")) == [1 + i % 2 for i in range(128)]
    target.sh("ethtool -X p0 weight 1 0 3")  # a quarter to queue 0, three quarters to queue 2
    assert indirection_table(target.sh("ethtool -x p0")) == [0] * 32 + [2] * 96
    with pytest.raises(CommandError, match=r"too low for existing indirection table \(2\)"):
        target.sh("ethtool -L p0 combined 2")
    target.sh("ethtool -X p0 hkey " + ":".join(["6d"] * 40))
    assert target.sh("ethtool -x p0").splitlines()[-5] == ":".join(["6d"] * 40)
    target.sh("ethtool -X p0 default")
    target.sh("ethtool -L p0 combined 2")
    assert indirection_table(target.sh("ethtool -x p0")) == [i % 2 for i in range(128)]


@pytest.mark.parametrize("command, message, returncode", [
    ("ethtool -X p0 equal 2", "Cannot set RX flow hash configuration: Invalid argument", 1),
    ("ethtool -X p0 weight 0 0", "At least one weight must be non-zero", 2),
    ("ethtool -X p0 weight 200", "Total weight exceeds the size of the indirection table", 2),
    ("ethtool -X p0 hkey 6d:5a", "Key is too short for device (2 < 40)", 2),
    ("ethtool -X p0 hkey " + ":".join(["6d"] * 41), "Key is too long for device (41 > 40)", 2),
    ("ethtool -X p0 hkey 6d-5a", "Invalid RSS hash key format", 2),
    ("ethtool -X p0 hfunc nope", "Unknown hash function: nope", 1),
    ("ethtool -X p0 hfunc xor", "Cannot set RX flow hash configuration: Operation not supported", 1),
    ("ethtool -X lo equal 1", "Cannot get RX ring count: Operation not supported", 1),
])
def test_ethtool_x_refusals_name_their_cause(target, command, message, returncode):
    """On one channel: a table sending to queue 1 is past the RX rings
    (ethtool_copy_validate_indir()); the NIC hashes with Toeplitz only."""
    with pytest.raises(CommandError) as refused:
        target.sh(command)
    assert str(refused.value).endswith(message) and refused.value.returncode == returncode


def test_ethtool_S_counts_each_rx_queue_in_use_after_a_line_rate_run(target):
    target.sh("sysctl -w net.ipv4.ip_forward=1")
    target.sh("ethtool -L p0 combined 2")
    stream = Stream.of("p0", frame(H1), rate=Rate(1_000_000.0), mode=Mode.SINGLE_BURST, count=300)
    target.traffic(Profile((stream,)))
    stats = dict(line.strip().split(": ") for line in target.sh("ethtool -S p0").splitlines()[1:])
    queue = target.kernel.nics["p0"].rx_queue  # one flow: one queue has it all
    busy = 0 if queue(0).packets else 1
    assert stats[f"rx_queue_{busy}_packets"] == "300" and stats[f"rx_queue_{1 - busy}_packets"] == "0"
    assert stats[f"rx_queue_{busy}_bytes"] == str(300 * 60) and stats["rx_packets"] == "300"
    assert "rx_queue_2_packets" not in stats
