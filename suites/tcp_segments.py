"""TCP segments between a tester host and a socket on the DUT, written out literally
from what Linux sends, with masks for what Linux makes unpredictable.

The tester's SYNs offer MSS 1460, SACK and window scale 7 but no timestamps, so the
DUT's segments carry no TSval (a clock plus a random offset) unless a test asks for
it. The DUT's receive buffer limits are pinned by DUT_SYSCTLS (tcp_rmem 4096 131072
33554432, Linux's defaults), so its window scale is 10 on every host: the smallest
that lets 65535 scaled cover 32 MiB (tcp_select_initial_window()).
"""
from __future__ import annotations

from dataclasses import dataclass

from scapy.layers.inet import IP, TCP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Ether
from scapy.packet import Packet

from harness.packets import Mask
from harness.testing import Host

# The SYN options a Linux client sends, less timestamps (tcp_syn_options() order).
SYN_OPTIONS = [("MSS", 1460), ("SAckOK", b""), ("WScale", 7)]
# Linux's SYN-ACK to them (tcp_synack_options(): MSS, then SACK_PERM and WSCALE
# each padded with NOPs when no timestamp shares their word).
SYN_ACK_OPTIONS = [("MSS", 1460), ("NOP", None), ("NOP", None), ("SAckOK", b""), ("NOP", None), ("WScale", 10)]
# The receive window of a new connection: tcp_select_initial_window() takes the space
# of tcp_rmem[1] (131072) less its overhead (tcp_win_from_space(), the default scaling
# ratio: half), 65536, rounded down to whole MSS (1460): 44 segments.
INITIAL_WINDOW = 64240
# The window after the handshake (__tcp_select_window()): rcv_ssthresh (64240) aligned
# up to 1 << rcv_wscale (10), 64512, advertised shifted right by 10.
SCALED_WINDOW = 63
# The tester's own window after the handshake: 502 << 7, as a Linux peer offers it.
PEER_WINDOW = 502


def syn_ack_mask(frame: Packet) -> Mask:
    """A SYN-ACK from a listener: sent by ip_build_and_send_pkt() with DF and IP ID 0;
    only its sequence number, the ISN, is unpredictable."""
    return Mask(frame).ignore(TCP, "seq", "the ISN: secure_tcp_seq(), a keyed hash of the 4-tuple and a clock") \
        .ignore(TCP, "chksum", "covers the ISN")


def socket_segment_mask(frame: Packet) -> Mask:
    """A segment of an established socket (ip_queue_xmit() with DF): its IP ID counts up
    from a random start per connection (inet_id = get_random_u16() when it is made)."""
    return Mask(frame).ignore(IP, "id", "inet_id starts at a random value per connection") \
        .ignore(IP, "chksum", "covers the IP ID")


def syn_mask(frame: Packet, tsval_offset: int) -> Mask:
    """A SYN from connect(): random IP ID and ISN, and TSval (at byte `tsval_offset` of
    the frame) the ms clock plus a random offset per connection (secure_tcp_ts_off())."""
    return socket_segment_mask(frame).ignore(TCP, "seq", "the ISN: secure_tcp_seq()") \
        .ignore(TCP, "chksum", "covers the ISN and TSval") \
        .ignore_bytes(tsval_offset, 4, "TSval: the ms clock plus a random offset per connection")


def next_segment(target, host: Host, what: str, within: float | None = None) -> Ether:
    """The next frame the DUT sends `host`, for a segment it may send again (a FIN or
    data not yet acknowledged: frame_left()'s wait for more would see the retransmission),
    or that a timer sends (a delayed ACK: `within` that many seconds of the target's time;
    default its positive timeout)."""
    got = target.next_frame(host.port, target.now() + (target.positive_timeout if within is None else within))
    if got is None:
        raise AssertionError(f"expected {what} on {host.port.name} ({target.name}): nothing left it")
    return Ether(got[0])


@dataclass
class Peer:
    """A TCP endpoint on tester host `host`, port `port`, talking to the DUT's socket at
    `dut_port` on the host's DUT address: `seq` is the next sequence number it sends,
    `ack` the next it expects from the DUT (0 until it learnt the DUT's ISN)."""

    host: Host
    port: int
    dut_port: int
    seq: int = 1000
    ack: int = 0
    window: int = PEER_WINDOW

    def segment(self, flags: str, payload: bytes = b"", **fields) -> Packet:
        fields = {"seq": self.seq, "ack": self.ack if "A" in flags else 0, "window": self.window, **fields}
        return self.host.to_dut(id=0, flags="DF") / TCP(sport=self.port, dport=self.dut_port, flags=flags,
                                                         **fields) / payload

    def send(self, target, flags: str, payload: bytes = b"", **fields) -> None:
        """Send a segment; the sequence number moves past its payload, SYN and FIN."""
        target.send(self.host.port, self.segment(flags, payload, **fields))
        self.seq += len(payload) + ("S" in flags) + ("F" in flags)

    def from_dut(self, flags: str, payload: bytes = b"", window: int = SCALED_WINDOW, **fields) -> Packet:
        """What the DUT's socket sends this peer, its sequence numbers from `ack`."""
        fields = {"seq": self.ack, "ack": self.seq if "A" in flags else 0, **fields}
        return self.host.from_dut(src=self.host.dut_ip, dst=self.host.ip, ttl=64, flags="DF") / \
            TCP(sport=self.dut_port, dport=self.port, flags=flags, window=window, **fields) / payload

    def expect(self, target, flags: str, payload: bytes = b"", **fields) -> Packet:
        """Expect the DUT's next segment to this peer (socket_segment_mask()); `ack`
        moves past its payload and FIN."""
        got = target.expect(self.host.port, socket_segment_mask(self.from_dut(flags, payload, **fields)))
        self.ack += len(payload) + ("F" in flags)
        return got

    def syn(self, target, window: int = INITIAL_WINDOW, options=tuple(SYN_ACK_OPTIONS)) -> None:
        """Send the SYN (SYN_OPTIONS) and expect the SYN-ACK with `window` and `options`
        (default: Linux's) back, learning the DUT's ISN (syn_ack_mask())."""
        self.send(target, "S", options=SYN_OPTIONS, window=INITIAL_WINDOW)
        syn_ack = self.host.from_dut(src=self.host.dut_ip, dst=self.host.ip, ttl=64, flags="DF", id=0) / \
            TCP(sport=self.dut_port, dport=self.port, flags="SA", seq=0, ack=self.seq, window=window,
                options=list(options))
        self.ack = Ether(target.expect(self.host.port, syn_ack_mask(syn_ack)))[TCP].seq + 1

    def connect(self, target, window: int = INITIAL_WINDOW, options=tuple(SYN_ACK_OPTIONS)) -> None:
        """The three-way handshake with a listener on the DUT: SYN, the SYN-ACK (syn()), ACK."""
        self.syn(target, window, options)
        self.send(target, "A")


# Over IPv6 the MSS is the MTU less 60 (the 40-byte IPv6 header): Linux's SYN-ACK
# offers 1440, and the initial window is 65536 rounded down to whole MSS (45 x 1440).
SYN_ACK_OPTIONS6 = [("MSS", 1440), *SYN_ACK_OPTIONS[1:]]
INITIAL_WINDOW6 = 64800
# rcv_ssthresh 64800 aligned up to 1 << 10: 65536, advertised shifted right by 10
SCALED_WINDOW6 = 64


def flowlabel_mask(frame: Packet) -> Mask:
    """A segment of a DUT socket over IPv6: its flow label is ip6_make_flowlabel()'s,
    from the connection's random sk_txhash (auto_flowlabels 1); no IP ID to mask."""
    return Mask(frame).ignore(IPv6, "fl", "the flow label: from sk_txhash, random per connection")


@dataclass
class Peer6(Peer):
    """Peer over IPv6: the host's and the DUT's 2001:db8:N:: addresses."""


    def segment(self, flags: str, payload: bytes = b"", **fields) -> Packet:
        fields = {"seq": self.seq, "ack": self.ack if "A" in flags else 0, "window": self.window, **fields}
        return self.host.to_dut6() / TCP(sport=self.port, dport=self.dut_port, flags=flags, **fields) / payload

    def from_dut(self, flags: str, payload: bytes = b"", window: int = SCALED_WINDOW6, **fields) -> Packet:
        fields = {"seq": self.ack, "ack": self.seq if "A" in flags else 0, **fields}
        return self.host.from_dut6(src=self.host.dut_ip6, dst=self.host.ip6, hlim=64) / \
            TCP(sport=self.dut_port, dport=self.port, flags=flags, window=window, **fields) / payload

    def expect(self, target, flags: str, payload: bytes = b"", **fields) -> Packet:
        got = target.expect(self.host.port, flowlabel_mask(self.from_dut(flags, payload, **fields)))
        self.ack += len(payload) + ("F" in flags)
        return got

    def syn(self, target, window: int = INITIAL_WINDOW6, options=tuple(SYN_ACK_OPTIONS6)) -> None:
        self.send(target, "S", options=SYN_OPTIONS, window=INITIAL_WINDOW)
        syn_ack = self.from_dut("SA", seq=0, window=window, options=list(options))
        mask = flowlabel_mask(syn_ack).ignore(TCP, "seq", "the ISN: secure_tcpv6_seq()") \
            .ignore(TCP, "chksum", "covers the ISN")
        self.ack = Ether(target.expect(self.host.port, mask))[TCP].seq + 1

    def connect(self, target, window: int = INITIAL_WINDOW6, options=tuple(SYN_ACK_OPTIONS6)) -> None:
        self.syn(target, window, options)
        self.send(target, "A")
