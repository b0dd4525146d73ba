"""GSO on the mock's transmit path (ipv4/tcp_output.py tcp_write_xmit(),
core/gso.py, wire/tcp.py gso_segments()): TCP hands the IP layer one GSO skb
per burst, netfilter counts it once, and the port segments it unless it has
TSO (`ethtool -K tx on`). GRO on its receive path (core/gro.py): with
`ethtool -K gro on`, in-order segments of one flow in one poll go up as one. Expected values are written out by hand from the
kernel's rules (docs/kernel-facts.md, "veth offloads"): with a 10 ms RTT,
tcp_tso_autosize() gives 2 segments per skb (the pacing rate 2 x 1460 x 10 /
10 ms = 2896000 B/s is 2828 bytes per ms, under two MSS; 10 ms >> tcp_tso_rtt_log
9 adds nothing), as the netns lab's 2974-byte frames show."""
from __future__ import annotations

import pytest
from scapy.layers.inet import IP, TCP
from scapy.layers.l2 import Ether

from harness.mockkernel.ipv4 import tcp
from harness.mockkernel.kernel import Kernel
from harness.mockkernel.net import ip_to_int
from harness.mockkernel.target import sh
from harness.mockkernel.wire.tcp import gso_segments
from harness.target import CommandError

DUT, PEER = "10.0.0.1", "10.0.0.2"
PEER_MAC = "02:00:00:00:00:02"
MSS = 1460
COUNTERS = """table ip t {
    chain out { type filter hook output priority 0; counter; }
    chain post { type filter hook postrouting priority 0; counter; }
}
"""


def _connected(*commands: str) -> tuple[Kernel, tcp.TcpSock]:
    """A DUT socket connected to a peer behind p0 that answered the SYN 10 ms
    later with MSS 1460 and no other option; `commands` run first."""
    k = Kernel()
    for command in commands:
        sh(k, command.split())
    sh(k, ["ip", "addr", "add", f"{DUT}/24", "dev", "p0"])
    sh(k, ["ip", "neigh", "add", PEER, "lladdr", PEER_MAC, "dev", "p0", "nud", "permanent"])
    sh(k, ["nft", "-f", "-"], COUNTERS)
    sk = tcp.tcp_sock_create(k)
    tcp.tcp_v4_connect(sk, ip_to_int(PEER), 80)  # the SYN leaves; the socket call is what raises EINPROGRESS
    wire = k.nics["p0"].wire
    syn = Ether(wire.pop())
    k.clock.advance(0.01)
    synack = (Ether(dst=syn.src, src=PEER_MAC) / IP(src=PEER, dst=DUT)
              / TCP(sport=80, dport=syn[TCP].sport, flags="SA", seq=5000, ack=syn[TCP].seq + 1, window=65535,
                    options=[("MSS", MSS)]))
    k.receive("p0", [bytes(synack)])
    wire.clear()
    return k, sk


def _send_11_segments(k: Kernel, sk: tcp.TcpSock) -> list[Ether]:
    """11 MSS of data in one write: cwnd 10 lets 10 go at once."""
    assert tcp.tcp_sendmsg(sk, bytes(range(256)) * 62 + b"x" * (11 * MSS - 256 * 62)) == 11 * MSS
    frames = [Ether(frame) for frame in k.nics["p0"].wire]
    k.nics["p0"].wire.clear()
    return frames


def _counters(k: Kernel) -> list[str]:
    return [line.strip() for line in sh(k, ["nft", "list", "ruleset"]).splitlines() if "counter" in line]


def _checksums_hold(frame: Ether) -> bool:
    """scapy's own IP and TCP checksums over the frame equal the ones it carries."""
    rebuilt = frame.copy()
    del rebuilt[IP].chksum, rebuilt[TCP].chksum
    rebuilt = Ether(bytes(rebuilt))
    return (rebuilt[IP].chksum, rebuilt[TCP].chksum) == (frame[IP].chksum, frame[TCP].chksum)


def test_without_tso_the_port_sends_mss_segments_of_gso_skbs_netfilter_counted_once():
    k, sk = _connected()  # the ports have `ethtool -K tx off`, as on the lab: no TSO
    first_id, isn = sk.inet_id, sk.snd_nxt
    frames = _send_11_segments(k, sk)
    assert [len(f) for f in frames] == [14 + 20 + 20 + MSS] * 10
    assert [f[IP].id for f in frames] == [first_id + i for i in range(10)]
    assert [f[TCP].seq for f in frames] == [isn + i * MSS for i in range(10)]
    # five skbs of two segments, each pushed (the write's bursts end in PSH): PSH on every second
    assert [str(f[TCP].flags) for f in frames] == ["A", "PA"] * 5
    assert all(_checksums_hold(f) for f in frames)
    # SYN (60 bytes), ACK (40) and five skbs of 2 x 1460 + 40: 7 packets, 14900 bytes, at both hooks
    assert _counters(k) == ["counter packets 7 bytes 14900"] * 2
    assert (sk.segs_out, sk.data_segs_out) == (12, 10)
    assert k.nics["p0"].dev.stats.tx_packets == 12


def test_with_tx_and_tso_on_the_gso_skbs_leave_whole():
    k, sk = _connected("ethtool -K p0 tx on")
    first_id, isn = sk.inet_id, sk.snd_nxt
    frames = _send_11_segments(k, sk)
    assert [len(f) for f in frames] == [14 + 20 + 20 + 2 * MSS] * 5  # 2974 bytes, as the lab captures
    assert [f[IP].id for f in frames] == [first_id + 2 * i for i in range(5)]  # each skb took two IDs
    assert [f[TCP].seq for f in frames] == [isn + 2 * i * MSS for i in range(5)]
    assert {str(f[TCP].flags) for f in frames} == {"PA"}
    assert all(_checksums_hold(f) for f in frames)
    assert _counters(k) == ["counter packets 7 bytes 14900"] * 2


@pytest.mark.parametrize("offloads", ["tx on tso off", "tx on gso off", "tx on sg off"])
def test_tx_on_with_tso_gso_or_sg_off_segments_in_software(offloads):
    k, sk = _connected(f"ethtool -K p0 {offloads}")
    assert [len(f) for f in _send_11_segments(k, sk)] == [14 + 20 + 20 + MSS] * 10


def test_gso_max_segs_caps_the_segments_per_skb():
    k, sk = _connected("ethtool -K p0 tx on", "ip link set dev p0 gso_max_segs 1")
    frames = _send_11_segments(k, sk)
    assert [len(f) for f in frames] == [14 + 20 + 20 + MSS] * 10
    assert _counters(k) == ["counter packets 12 bytes 15100"] * 2  # SYN 60, ACK 40, 10 x 1500


def test_gso_max_segs_over_65535_is_refused_as_iproute2_refuses_it():
    k = Kernel()
    with pytest.raises(CommandError, match='argument "65536" is wrong: Invalid GSO max segments'):
        sh(k, ["ip", "link", "set", "dev", "p0", "gso_max_segs", "65536"])


def test_the_journey_names_skb_gso_segment():
    k, sk = _connected()
    k.tracer.journeys.clear()
    _send_11_segments(k, sk)
    hops = [str(hop) for journey in k.tracer.journeys for hop in journey.hops if hop.where == "skb_gso_segment"]
    assert len(hops) == 5
    assert "2 segments, gso_size=1460" in hops[0]


def test_segmenting_puts_cwr_on_the_first_and_fin_psh_on_the_last_with_ids_and_lengths_per_segment():
    packet = bytearray(bytes(IP(src=DUT, dst=PEER, id=100, flags="DF")
                             / TCP(sport=1, dport=2, seq=7, ack=9, flags="FPAC") / (b"a" * 2500)))
    segments = [IP(bytes(s)) for s in gso_segments(packet, 0, 20, len(packet), 1000)]
    assert [(s.id, s.len, s[TCP].seq, str(s[TCP].flags)) for s in segments] == [
        (100, 1040, 7, "AC"), (101, 1040, 1007, "A"), (102, 540, 2007, "FPA")]
    assert [bytes(s[TCP].payload) for s in segments] == [b"a" * 1000, b"a" * 1000, b"a" * 500]
    for s in segments:
        rebuilt = s.copy()
        del rebuilt.chksum, rebuilt[TCP].chksum
        rebuilt = IP(bytes(rebuilt))
        assert (rebuilt.chksum, rebuilt[TCP].chksum) == (s.chksum, s[TCP].chksum)


# --- GRO on receive: segments forwarded from p0 to p1, counted at prerouting

FORWARD_COUNTERS = """table ip t {
    chain pre { type filter hook prerouting priority 0; counter; }
}
"""


def _forwarder(*commands: str) -> Kernel:
    k = Kernel()
    sh(k, ["sysctl", "-qw", "net.ipv4.ip_forward=1"])
    sh(k, ["ip", "addr", "add", "10.0.0.1/24", "dev", "p0"])
    sh(k, ["ip", "addr", "add", "10.0.1.1/24", "dev", "p1"])
    sh(k, ["ip", "neigh", "add", "10.0.1.2", "lladdr", "02:00:00:00:01:02", "dev", "p1", "nud", "permanent"])
    sh(k, ["nft", "-f", "-"], FORWARD_COUNTERS)
    for command in commands:
        sh(k, command.split())
    return k


def _segment(k: Kernel, index: int, flags: str = "A", length: int = 1000, ident: int | None = None,
             seq: int | None = None, options=()) -> bytes:
    """The index-th 1000-byte segment of a flow from 10.0.0.2 to 10.0.1.2, IP IDs from 100."""
    return bytes(Ether(dst=k.nics["p0"].dev.mac, src="02:00:00:00:00:02")
                 / IP(src="10.0.0.2", dst="10.0.1.2", id=100 + index if ident is None else ident, flags="DF")
                 / TCP(sport=1000, dport=80, seq=1 + index * 1000 if seq is None else seq, ack=7, flags=flags,
                       window=500, options=list(options))
                 / (bytes([index]) * length))


def _forwarded(k: Kernel, frames: list[bytes]) -> tuple[list[str], list[Ether]]:
    k.receive("p0", frames)
    out = [Ether(frame) for frame in k.nics["p1"].wire]
    return _counters(k), out


def test_gro_off_by_default_forwards_each_segment_as_a_packet():
    k = _forwarder()
    counters, out = _forwarded(k, [_segment(k, 0), _segment(k, 1), _segment(k, 2, "PA")])
    assert counters == ["counter packets 3 bytes 3120"]
    assert len(out) == 3


def test_gro_merges_in_order_segments_of_a_poll_into_one_packet_segmented_again_on_the_way_out():
    k = _forwarder("ethtool -K p0 gro on")
    counters, out = _forwarded(k, [_segment(k, 0), _segment(k, 1), _segment(k, 2, "PA")])
    assert counters == ["counter packets 1 bytes 3040"]  # 20 + 20 + 3 x 1000
    assert [(len(f), f[IP].id, f[IP].ttl, f[TCP].seq, str(f[TCP].flags)) for f in out] == [
        (1054, 100, 63, 1, "A"), (1054, 101, 63, 1001, "A"), (1054, 102, 63, 2001, "PA")]
    assert [bytes(f[TCP].payload) for f in out] == [bytes([i]) * 1000 for i in range(3)]
    assert all(_checksums_hold(f) for f in out)
    hops = [str(hop) for journey in k.tracer.journeys for hop in journey.hops if hop.where == "napi_gro_receive"]
    assert hops == ["NAPI[napi_gro_receive] -> GRO (3 segments, gso_size=1000)",
                    "NAPI[napi_gro_receive] -> MERGED (into seq 1)", "NAPI[napi_gro_receive] -> MERGED (into seq 1)"]


def test_a_gro_packet_leaves_whole_through_a_port_with_tso():
    k = _forwarder("ethtool -K p0 gro on", "ethtool -K p1 tx on")
    _, out = _forwarded(k, [_segment(k, 0), _segment(k, 1), _segment(k, 2, "PA")])
    assert [(len(f), f[IP].id, str(f[TCP].flags)) for f in out] == [(14 + 40 + 3000, 100, "PA")]
    assert _checksums_hold(out[0])


@pytest.mark.parametrize(("case", "segments", "packets"), [
    ("a PSH flushes what it merged into; the next is held anew", [("A",), ("PA",), ("A",)], 2),
    ("a gap in seq flushes the held one", [("A",), ("A", {"seq": 5001})], 2),
    ("an IP ID that does not follow", [("A",), ("A", {"ident": 150})], 2),
    ("a longer segment than the first", [("A", {"length": 500}), ("A", {"seq": 501})], 2),
    ("a shorter segment merges and flushes", [("A",), ("A", {"length": 10}), ("A", {"seq": 1011})], 2),
    ("differing options", [("A", {"options": [("Timestamp", (1, 0))]}),
                           ("A", {"options": [("Timestamp", (2, 0))]})], 2),
    ("equal options merge", [("A", {"options": [("Timestamp", (1, 0))]}),
                             ("A", {"options": [("Timestamp", (1, 0))]})], 1),
    ("a pure ACK flushes the held segment and goes up alone", [("A",), ("A", {"length": 0, "seq": 1001})], 2),
    ("CWR is held anew", [("A",), ("AC",)], 2),
])
def test_gro_flush_rules(case, segments, packets):
    k = _forwarder("ethtool -K p0 gro on")
    frames = [_segment(k, index, flags, **(extra[0] if extra else {}))
              for index, (flags, *extra) in enumerate(segments)]
    counters, _ = _forwarded(k, frames)
    assert counters[0].startswith(f"counter packets {packets} "), case
