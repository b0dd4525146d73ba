"""TCP connection tracking (net/netfilter/nf_conntrack_proto_tcp.c, Linux 6.x).

nf_conntrack_tcp_packet() is `tcp_packet()` here: tcp_error() refuses truncated
segments, bad checksums at PREROUTING (nf_conntrack_checksum) and invalid flag
combinations; tcp_new() starts an entry from a SYN, or mid-stream from any other
valid segment while nf_conntrack_tcp_loose is 1 (then both directions are
be-liberal and SACK is assumed); the tcp_conntracks[dir][index][state] table
gives the next state, sIG packets pass untouched (annotated to resync on a
SYN/ACK), sIV ones are INVALID; tcp_in_window() checks the segment against the
windows seen (td_end, td_maxend, td_maxwin, td_scale): INVALID when SEQ is over
the receiver's window or the ACK acknowledges data not seen, IGNORE (pass with
the entry, no update) for retransmitted or overly delayed segments and for one
overshooting the window by less than the window (its end is kept, so that the
peer's ACK of it is in window); with nf_conntrack_tcp_be_liberal (or a
picked-up connection) every window failure passes. INVALID is -NF_ACCEPT: the
packet goes on without an entry (ct state invalid), the entry unchanged.
TCP options: tcp_options() takes window scale (clamped to 14) and SACK_PERM
from a SYN or SYN/ACK that has options (one without any keeps the flags of the
side's earlier SYN); scaling counts only when both SYNs carried it. tcp_sack()
reads SACK blocks only when the segment's receiver sent SACK_PERM: the highest
right edge (`sack`) stands for the ACK in the upper and lower ACK bounds and
widens the sender's td_maxwin and the receiver's td_maxend. Both parsers stop
at EOL, at an option of length < 2 or longer than the header; tcp_sack() skips
SACK options that are not 2 + 8n bytes long.
An in-window RST closes (CLOSE, 10 s), an out-of-window one is INVALID; a RST
before any reply deletes the entry. A SYN on a closed or TIME_WAIT entry
kills it and starts again (-NF_REPEAT). Timeouts come from the namespace's
nf_conntrack_tcp_timeout_* sysctls, shortened to max_retrans after
nf_conntrack_tcp_max_retrans retransmissions and to unacknowledged while data is
unacknowledged. ASSURED: a valid ACK in ESTABLISHED after SYN_RECV, or a reply
to a picked-up connection.
An entry whose sequence numbers are adjusted (nf_conntrack_seqadj.py: SYN
proxy) has the receiver's offset taken off ACK and SACK (nf_ct_seq_offset()).
Left out: timeout policies (nfct timeout objects), the invalid-packet log (nf_tcp_log_invalid()
only returns its verdict; the mock's journey shows why a packet was INVALID).
"""
from __future__ import annotations

from harness.mockkernel.netfilter.nf_conntrack import (IP_CT_DIR_ORIGINAL, IP_CT_DIR_REPLY, IPS_ASSURED,
                                                       IPS_SEEN_REPLY, NfConn, nf_ct_kill, nf_ct_set_status)
from harness.mockkernel.netfilter.core import NF_INET_PRE_ROUTING
from harness.mockkernel.netfilter.nf_conntrack_seqadj import nf_ct_seq_offset
from harness.mockkernel.netfilter.utils import nf_ip_checksum
from harness.mockkernel.wire import ipv4, ipv6, tcp
from harness.mockkernel.wire.checksum import checksum
from harness.mockkernel.wire.tcp import (TCP_HLEN, TCPHDR_ACK, TCPHDR_CWR, TCPHDR_ECE, TCPHDR_FIN, TCPHDR_PSH,
                                         TCPHDR_RST, TCPHDR_SYN, TCPHDR_URG, TCPOLEN_SACK_BASE,
                                         TCPOLEN_SACK_PERBLOCK, TCPOLEN_SACK_PERM, TCPOLEN_WINDOW, TCPOPT_SACK,
                                         TCPOPT_SACK_PERM, TCPOPT_WINDOW)

# enum tcp_conntrack; sIV (TCP_CONNTRACK_MAX) and sIG are table verdicts,
# RETRANS and UNACK only timeout slots
(sNO, sSS, sSR, sES, sFW, sCW, sLA, sTW, sCL, sS2, sIV, sIG) = range(12)
TCP_CONNTRACK_NAMES = ("NONE", "SYN_SENT", "SYN_RECV", "ESTABLISHED", "FIN_WAIT", "CLOSE_WAIT",
                       "LAST_ACK", "TIME_WAIT", "CLOSE", "SYN_SENT2")
# the timeout sysctl of each state, and of the RETRANS and UNACK slots
TIMEOUT_SYSCTLS = ("", "syn_sent", "syn_recv", "established", "fin_wait", "close_wait", "last_ack",
                   "time_wait", "close", "syn_sent", "max_retrans", "unacknowledged")
TIMEOUT_RETRANS, TIMEOUT_UNACK = 10, 11
SYSCTL = "net.netfilter.nf_conntrack_tcp_"

# enum tcp_bit_set: which row of the table a segment uses
TCP_SYN_SET, TCP_SYNACK_SET, TCP_FIN_SET, TCP_ACK_SET, TCP_RST_SET, TCP_NONE_SET = range(6)

# tcp_conntracks[dir][index][state], as in the kernel (sNO sSS sSR sES sFW sCW sLA sTW sCL sS2)
tcp_conntracks = (
    (  # ORIGINAL
        (sSS, sSS, sIG, sIG, sIG, sIG, sIG, sSS, sSS, sS2),  # syn
        (sIV, sIV, sSR, sIV, sIV, sIV, sIV, sIV, sIV, sSR),  # synack
        (sIV, sIV, sFW, sFW, sLA, sLA, sLA, sTW, sCL, sIV),  # fin
        (sES, sIV, sES, sES, sCW, sCW, sTW, sTW, sCL, sIV),  # ack
        (sIV, sCL, sCL, sCL, sCL, sCL, sCL, sCL, sCL, sCL),  # rst
        (sIV,) * 10,                                          # none
    ),
    (  # REPLY
        (sIV, sS2, sIV, sIV, sIV, sIV, sIV, sSS, sIV, sS2),  # syn
        (sIV, sSR, sIG, sIG, sIG, sIG, sIG, sIG, sIG, sSR),  # synack
        (sIV, sIV, sFW, sFW, sLA, sLA, sLA, sTW, sCL, sIV),  # fin
        (sIV, sIG, sSR, sES, sCW, sCW, sTW, sTW, sCL, sIG),  # ack
        (sIV, sCL, sCL, sCL, sCL, sCL, sCL, sCL, sCL, sCL),  # rst
        (sIV,) * 10,                                          # none
    ),
)

# tcp_valid_flags[]: PSH, ECE and CWR are always valid
TCP_VALID_FLAGS = frozenset({TCPHDR_SYN, TCPHDR_SYN | TCPHDR_URG, TCPHDR_SYN | TCPHDR_ACK, TCPHDR_RST,
                             TCPHDR_RST | TCPHDR_ACK, TCPHDR_FIN | TCPHDR_ACK,
                             TCPHDR_FIN | TCPHDR_ACK | TCPHDR_URG, TCPHDR_ACK, TCPHDR_ACK | TCPHDR_URG})

# ip_ct_tcp_state.flags (uapi nf_conntrack_tcp.h) and last_flags
IP_CT_TCP_FLAG_WINDOW_SCALE, IP_CT_TCP_FLAG_SACK_PERM, IP_CT_TCP_FLAG_CLOSE_INIT = 0x01, 0x02, 0x04
IP_CT_TCP_FLAG_BE_LIBERAL, IP_CT_TCP_FLAG_DATA_UNACKNOWLEDGED, IP_CT_TCP_FLAG_MAXACK_SET = 0x08, 0x10, 0x20
IP_CT_EXP_CHALLENGE_ACK, IP_CT_TCP_SIMULTANEOUS_OPEN = 0x40, 0x80
TCP_MAX_WSCALE = 14
MAXACKWINCONST = 66000

# tcp_in_window() results
NFCT_TCP_IGNORE, NFCT_TCP_INVALID, NFCT_TCP_ACCEPT = range(3)
# tcp_packet() results beyond NF_ACCEPT: the packet is INVALID, or the entry was
# killed and the lookup must be repeated
TCP_INVALID, TCP_REPEAT, TCP_ACCEPT = "invalid", "repeat", "accept"
U32 = 0xFFFFFFFF


def before(seq1: int, seq2: int) -> bool:
    return ((seq1 - seq2) & U32) >= 0x80000000


def after(seq1: int, seq2: int) -> bool:
    return before(seq2, seq1)


class IpCtTcpState:
    """struct ip_ct_tcp_state: what one direction has sent."""

    __slots__ = ("td_end", "td_maxend", "td_maxwin", "td_maxack", "td_scale", "flags")

    def __init__(self) -> None:
        self.td_end = self.td_maxend = self.td_maxwin = self.td_maxack = self.td_scale = self.flags = 0

    def reset(self) -> None:
        """nf_ct_tcp_state_reset()."""
        self.td_end = self.td_maxend = self.td_maxwin = self.td_maxack = self.td_scale = 0
        self.flags &= IP_CT_TCP_FLAG_BE_LIBERAL


class IpCtTcp:
    """struct ip_ct_tcp (ct->proto.tcp)."""

    __slots__ = ("seen", "state", "last_dir", "retrans", "last_index", "last_seq", "last_ack", "last_end",
                 "last_win", "last_wscale", "last_flags")

    def __init__(self) -> None:
        self.seen = (IpCtTcpState(), IpCtTcpState())
        self.state = sNO
        self.last_dir = self.retrans = self.last_seq = self.last_ack = self.last_end = 0
        self.last_win = self.last_wscale = self.last_flags = 0
        self.last_index = TCP_NONE_SET

    @property
    def state_name(self) -> str:
        return TCP_CONNTRACK_NAMES[self.state]


class Segment:
    """The TCP header fields the tracker reads (one load of each header), where
    the header is, and how long the segment is (tcplen, from tot_len, or for
    IPv6 from the payload length past the extension headers)."""

    __slots__ = ("th", "tcplen", "doff", "flags", "seq", "ack_seq", "window", "end", "ipv6")

    def __init__(self, buf: bytearray, nh: int, ipv6_th: int = 0) -> None:
        if ipv6_th:
            self.ipv6 = True
            self.th = th = ipv6_th
            self.tcplen = ipv6.IPV6_HLEN + ipv6.Ipv6Packet(buf, nh).payload_len - (th - nh)
        else:
            self.ipv6 = False
            ver_ihl, tot_len = ipv4.IHL_TOT_LEN.unpack_from(buf, nh)
            hlen = ipv4.HEADER_LEN[ver_ihl]
            self.th = th = nh + hlen
            self.tcplen = tot_len - hlen
        self.seq, self.ack_seq, doff, self.flags, self.window = tcp.SEGMENT_FIELDS.unpack_from(buf, th)
        self.doff = tcp.DATA_OFFSET_LEN[doff]
        self.end = (self.seq + self.tcplen - self.doff + (1 if self.flags & TCPHDR_SYN else 0)
                    + (1 if self.flags & TCPHDR_FIN else 0)) & U32

    @property
    def syn(self) -> bool:
        return bool(self.flags & TCPHDR_SYN)

    @property
    def ack(self) -> bool:
        return bool(self.flags & TCPHDR_ACK)

    @property
    def rst(self) -> bool:
        return bool(self.flags & TCPHDR_RST)


def get_conntrack_index(seg: Segment) -> int:
    flags = seg.flags
    if flags & TCPHDR_RST:
        return TCP_RST_SET
    if flags & TCPHDR_SYN:
        return TCP_SYNACK_SET if flags & TCPHDR_ACK else TCP_SYN_SET
    if flags & TCPHDR_FIN:
        return TCP_FIN_SET
    if flags & TCPHDR_ACK:
        return TCP_ACK_SET
    return TCP_NONE_SET


def tcp_options(buf: bytearray, seg: Segment, state: IpCtTcpState) -> None:
    """tcp_options(): the window scale and SACK-permitted options of a SYN. A
    header without options leaves the state alone; else only BE_LIBERAL of the
    flags is kept. A window scale over TCP_MAX_WSCALE (14) counts as 14."""
    if seg.doff == TCP_HLEN:
        return
    state.td_scale = 0
    state.flags &= IP_CT_TCP_FLAG_BE_LIBERAL
    for opcode, ptr, opsize in tcp.options(buf, seg.th, seg.doff):
        if opcode == TCPOPT_SACK_PERM and opsize == TCPOLEN_SACK_PERM:
            state.flags |= IP_CT_TCP_FLAG_SACK_PERM
        elif opcode == TCPOPT_WINDOW and opsize == TCPOLEN_WINDOW:
            state.td_scale = min(tcp.option_byte(buf, ptr), TCP_MAX_WSCALE)
            state.flags |= IP_CT_TCP_FLAG_WINDOW_SCALE


def tcp_sack(buf: bytearray, seg: Segment, sack: int) -> int:
    """tcp_sack(): the highest right edge of the first well-formed SACK option's
    blocks if after `sack`, else `sack`. Options of another size than 2 + 8n
    bytes (n >= 1) are skipped; a timestamp-only header is not walked."""
    th = seg.th
    if seg.doff == TCP_HLEN or tcp.only_aligned_timestamp(buf, th, seg.doff):
        return sack
    for opcode, ptr, opsize in tcp.options(buf, th, seg.doff):
        if opcode == TCPOPT_SACK and opsize >= TCPOLEN_SACK_BASE + TCPOLEN_SACK_PERBLOCK \
                and (opsize - TCPOLEN_SACK_BASE) % TCPOLEN_SACK_PERBLOCK == 0:
            for right in tcp.sack_right_edges(buf, ptr, opsize):
                if after(right, sack):
                    sack = right
            break
    return sack


def tcp_init_sender(buf: bytearray, seg: Segment, sender: IpCtTcpState, receiver: IpCtTcpState,
                    direction: int) -> None:
    """A SYN/ACK answering a SYN, or a SYN from the reply direction."""
    sender.td_end = sender.td_maxend = seg.end
    sender.td_maxwin = seg.window or 1
    tcp_options(buf, seg, sender)
    # RFC 1323: scaling only when both ends sent the option
    if direction == IP_CT_DIR_REPLY and not (sender.flags & IP_CT_TCP_FLAG_WINDOW_SCALE
                                             and receiver.flags & IP_CT_TCP_FLAG_WINDOW_SCALE):
        sender.td_scale = receiver.td_scale = 0


def _maxackwindow(sender: IpCtTcpState) -> int:
    return sender.td_maxwin if sender.td_maxwin > MAXACKWINCONST else MAXACKWINCONST


def nf_tcp_log_invalid(net, sender: IpCtTcpState, verdict: int) -> int:
    """A window failure passes when this side or the namespace is be-liberal."""
    if sender.flags & IP_CT_TCP_FLAG_BE_LIBERAL or net.sysctl.values[SYSCTL + "be_liberal"]:
        return NFCT_TCP_ACCEPT
    return verdict


def tcp_in_window(net, ct: NfConn, direction: int, index: int, buf: bytearray, seg: Segment) -> tuple[int, str]:
    """(NFCT_TCP_*, why): the segment against the windows seen so far."""
    state = ct.proto
    sender, receiver = state.seen[direction], state.seen[1 - direction]
    seq, ack, win, end = seg.seq, seg.ack_seq, seg.window, seg.end
    sack = tcp_sack(buf, seg, ack) if receiver.flags & IP_CT_TCP_FLAG_SACK_PERM else ack
    if ct.seqadj is not None:  # the receiver's sequence numbers are shifted (SYN proxy)
        receiver_offset = nf_ct_seq_offset(ct, 1 - direction, (ack - 1) & U32)
        ack, sack = (ack - receiver_offset) & U32, (sack - receiver_offset) & U32

    if sender.td_maxwin == 0:
        if seg.syn:
            tcp_init_sender(buf, seg, sender, receiver, direction)
            if not seg.ack:
                return NFCT_TCP_ACCEPT, ""  # simultaneous open
        else:
            # mid-stream: the history is lost, use what the packet says
            sender.td_end = end
            swin = (win << sender.td_scale) & U32
            sender.td_maxwin = swin or 1
            sender.td_maxend = (end + sender.td_maxwin) & U32
            if receiver.td_maxwin == 0:
                receiver.td_end = receiver.td_maxend = sack
            elif sack == (receiver.td_end + 1) & U32:
                receiver.td_end = (receiver.td_end + 1) & U32  # a reply to a keepalive
    elif seg.syn and after(end, sender.td_end) and state.state in (sSS, sSR):
        # RFC 793: a reinitialized TCP uses higher sequence numbers
        tcp_init_sender(buf, seg, sender, receiver, direction)
        if direction == IP_CT_DIR_REPLY and not seg.ack:
            return NFCT_TCP_ACCEPT, ""

    if not seg.ack:
        ack = sack = receiver.td_end
    elif seg.flags & (TCPHDR_ACK | TCPHDR_RST) == TCPHDR_ACK | TCPHDR_RST and ack == 0:
        ack = sack = receiver.td_end  # broken stacks: RST+ACK with a zero ack
    if seg.rst and seq == 0 and state.state == sSS:
        seq = end = sender.td_end  # a RST answering a SYN

    # the lower bounds for data (II) and for (s)ack (IV) of the kernel's comment
    seq_lower = (sender.td_end - receiver.td_maxwin - 1) & U32
    ack_lower = (receiver.td_end - _maxackwindow(sender) - 1) & U32
    if not before(seq, (sender.td_maxend + 1) & U32):
        overshot = (end - sender.td_maxend + 1) & U32
        if receiver.td_maxwin and after(end, seq_lower) and after(sack, ack_lower) and \
                overshot <= receiver.td_maxwin and before(sack, (receiver.td_end + 1) & U32):
            # more bytes than the receive window allows: let a later ACK catch up
            sender.td_end = end
            sender.flags |= IP_CT_TCP_FLAG_DATA_UNACKNOWLEDGED
            return nf_tcp_log_invalid(net, sender, NFCT_TCP_IGNORE), f"{overshot} bytes more than expected"
        return (nf_tcp_log_invalid(net, sender, NFCT_TCP_INVALID),
                f"SEQ is over upper bound {(sender.td_maxend + 1) & U32} (over the window of the receiver)")
    if not before(sack, (receiver.td_end + 1) & U32):
        return (nf_tcp_log_invalid(net, sender, NFCT_TCP_INVALID),
                f"ACK is over upper bound {(receiver.td_end + 1) & U32} (ACKed data not seen yet)")
    if receiver.td_maxwin and not after(end, seq_lower):
        return (nf_tcp_log_invalid(net, sender, NFCT_TCP_IGNORE),
                f"SEQ is under lower bound {seq_lower} (already ACKed data retransmitted)")
    if not after(sack, ack_lower):
        return (nf_tcp_log_invalid(net, sender, NFCT_TCP_IGNORE),
                f"ignored ACK under lower bound {ack_lower} (possible overly delayed)")

    if not seg.syn:
        win = (win << sender.td_scale) & U32
    swin = (win + (sack - ack)) & U32
    if sender.td_maxwin < swin:
        sender.td_maxwin = swin
    if after(end, sender.td_end):
        sender.td_end = end
        sender.flags |= IP_CT_TCP_FLAG_DATA_UNACKNOWLEDGED
    if seg.ack:
        if not sender.flags & IP_CT_TCP_FLAG_MAXACK_SET:
            sender.td_maxack = ack
            sender.flags |= IP_CT_TCP_FLAG_MAXACK_SET
        elif after(ack, sender.td_maxack):
            sender.td_maxack = ack
    if receiver.td_maxwin != 0 and after(end, sender.td_maxend):
        receiver.td_maxwin = (receiver.td_maxwin + end - sender.td_maxend) & U32
    if after((sack + win) & U32, (receiver.td_maxend - 1) & U32):
        receiver.td_maxend = (sack + win + (1 if win == 0 else 0)) & U32
    if ack == receiver.td_end:
        receiver.flags &= ~IP_CT_TCP_FLAG_DATA_UNACKNOWLEDGED

    if index == TCP_ACK_SET:  # retransmissions
        if (state.last_dir, state.last_seq, state.last_ack, state.last_end, state.last_win) == \
                (direction, seq, ack, end, seg.window):
            state.retrans += 1
        else:
            state.last_dir, state.last_seq, state.last_ack = direction, seq, ack
            state.last_end, state.last_win, state.retrans = end, seg.window, 0
    return NFCT_TCP_ACCEPT, ""


def tcp_error(skb, seg: Segment, hook_is_prerouting: bool) -> str:
    """Why the segment cannot be tracked at all ("" if it can)."""
    if seg.doff < TCP_HLEN or seg.tcplen < seg.doff:
        return "truncated packet"
    if hook_is_prerouting and skb.net.sysctl.values["net.netfilter.nf_conntrack_checksum"]:
        if not _checksum_ok(skb, seg):
            return "bad checksum"
    if seg.flags & ~(TCPHDR_ECE | TCPHDR_CWR | TCPHDR_PSH) not in TCP_VALID_FLAGS:
        return "invalid tcp flag combination"
    return ""


def _checksum_ok(skb, seg: Segment) -> bool:
    """nf_checksum(): the segment against its IPv6 pseudo-header, or IPv4's
    nf_ip_checksum() (which keeps the sum it took: netfilter/utils.py)."""
    nh, end = skb.network_header, seg.th + seg.tcplen
    if seg.ipv6:
        return not checksum(memoryview(skb.buf)[seg.th:end],
                            ipv6.pseudo_header_sum(skb.buf, nh, ipv6.NEXTHDR_TCP, seg.tcplen))
    return nf_ip_checksum(skb, NF_INET_PRE_ROUTING)


def tcp_new(net, ct: NfConn, buf: bytearray, seg: Segment) -> bool:
    """A first segment: a SYN, or (tcp_loose) a pick-up in the middle of a connection."""
    new_state = tcp_conntracks[0][get_conntrack_index(seg)][sNO]
    if new_state >= sIV:
        return False
    ct.proto = tcp = IpCtTcp()
    first = tcp.seen[0]
    first.td_end = seg.end
    first.td_maxwin = seg.window or 1
    if new_state == sSS:
        first.td_maxend = first.td_end
        tcp_options(buf, seg, first)
    elif not net.sysctl.values[SYSCTL + "loose"]:
        ct.proto = None
        return False
    else:
        first.td_maxend = (first.td_end + first.td_maxwin) & U32
        # SACK and liberal window checking are assumed: the scaling is unknown
        tcp.seen[0].flags = tcp.seen[1].flags = IP_CT_TCP_FLAG_SACK_PERM | IP_CT_TCP_FLAG_BE_LIBERAL
    tcp.last_index = TCP_NONE_SET
    return True


def tcp_can_early_drop(ct: NfConn) -> bool:
    return ct.proto is not None and ct.proto.state in (sFW, sLA, sTW, sCL, sCW)


def nf_conntrack_tcp_established(ct: NfConn) -> bool:
    return ct.proto.state == sES and bool(ct.status & IPS_ASSURED)


def timeout_of(net, slot: int) -> int:
    return net.sysctl.values[SYSCTL + "timeout_" + TIMEOUT_SYSCTLS[slot]]


def tcp_packet(skb, ct: NfConn, direction: int, confirmed: bool, prerouting: bool,
               ipv6_th: int = 0) -> tuple[str, str]:
    """nf_conntrack_tcp_packet(): (TCP_ACCEPT, "") or (TCP_ACCEPT, why ignored),
    (TCP_INVALID, why) or (TCP_REPEAT, why). Accepting also sets the state, the
    timeout and ASSURED; a RST before any reply deletes the entry (the caller
    sees `ct.timeout` in the past). `ipv6_th`: an IPv6 segment's header offset.
    A packet with its ports but not a whole TCP header (skb_header_pointer() of
    the header fails) is INVALID, and the kernel logs nothing for it."""
    net = skb.net
    buf = skb.buf
    th = ipv6_th or skb.network_header + ipv4.HEADER_LEN[buf[skb.network_header]]
    if th + TCP_HLEN > skb.tail:
        return TCP_INVALID, "no whole TCP header"
    seg = Segment(buf, skb.network_header, ipv6_th)
    why = tcp_error(skb, seg, prerouting)
    if why:
        return TCP_INVALID, why
    if not confirmed and not tcp_new(net, ct, buf, seg):
        return TCP_INVALID, "invalid new" if seg.flags & (TCPHDR_SYN | TCPHDR_RST | TCPHDR_FIN) or \
            not seg.flags & TCPHDR_ACK else "mid-stream pick-up refused (nf_conntrack_tcp_loose=0)"
    tcp = ct.proto
    old_state = tcp.state
    index = get_conntrack_index(seg)
    new_state = tcp_conntracks[direction][index][old_state]
    skip_window = False

    if new_state == sSS and old_state >= sTW:
        if (tcp.seen[direction].flags | tcp.seen[1 - direction].flags) & IP_CT_TCP_FLAG_CLOSE_INIT or \
                (tcp.last_dir == direction and tcp.last_index == TCP_RST_SET):
            nf_ct_kill(net, ct)  # reopening a closed or aborted connection
            return TCP_REPEAT, "reopening " + TCP_CONNTRACK_NAMES[old_state]
        new_state = sIG
    if new_state == sIG:
        if index == TCP_SYNACK_SET and tcp.last_index == TCP_SYN_SET and tcp.last_dir != direction \
                and seg.ack_seq == tcp.last_end:
            # the SYN/ACK answers a SYN we ignored: client and server agree, resync
            old_state, new_state = sSS, sSR
            last = tcp.seen[tcp.last_dir]
            last.td_end = last.td_maxend = tcp.last_end
            last.td_maxwin = tcp.last_win or 1
            last.td_scale = tcp.last_wscale
            tcp.last_flags &= ~IP_CT_EXP_CHALLENGE_ACK
            last.flags = tcp.last_flags
            tcp.seen[direction].reset()
        else:
            tcp.last_index, tcp.last_dir, tcp.last_seq = index, direction, seg.seq
            tcp.last_end, tcp.last_win = seg.end, seg.window
            if index == TCP_SYN_SET and direction == IP_CT_DIR_ORIGINAL:
                seen = IpCtTcpState()
                tcp_options(buf, seg, seen)
                tcp.last_flags = seen.flags & (IP_CT_TCP_FLAG_WINDOW_SCALE | IP_CT_TCP_FLAG_SACK_PERM)
                tcp.last_wscale = seen.td_scale if seen.flags & IP_CT_TCP_FLAG_WINDOW_SCALE else 0
                if old_state == sLA:
                    tcp.last_flags |= IP_CT_EXP_CHALLENGE_ACK
            if old_state == sSS and index == TCP_ACK_SET and direction == IP_CT_DIR_REPLY:
                tcp.last_ack = seg.ack_seq  # a possible challenge ACK to the SYN
            return TCP_ACCEPT, f"packet (index {index}) in dir {direction} ignored, state " \
                               f"{TCP_CONNTRACK_NAMES[old_state]}"
    elif new_state == sIV:
        return TCP_INVALID, f"packet (index {index}) in dir {direction} invalid, state " \
                            f"{TCP_CONNTRACK_NAMES[old_state]}"
    elif new_state == sTW:
        if old_state == sLA and index == TCP_ACK_SET and tcp.last_dir != direction and \
                tcp.last_index == TCP_SYN_SET and tcp.last_flags & IP_CT_EXP_CHALLENGE_ACK:
            tcp.last_flags &= ~IP_CT_EXP_CHALLENGE_ACK  # an RFC 5961 challenge ACK
            return TCP_ACCEPT, "challenge-ack ignored"
    elif new_state == sS2:
        tcp.last_flags |= IP_CT_TCP_SIMULTANEOUS_OPEN
    elif new_state == sSR:
        if direction == IP_CT_DIR_REPLY and index == TCP_ACK_SET and tcp.last_flags & IP_CT_TCP_SIMULTANEOUS_OPEN:
            new_state = sES
    elif new_state == sCL and index == TCP_RST_SET:
        new_state, skip_window, invalid = _rst_in_close(net, ct, direction, seg, old_state, new_state)
        if invalid:
            return TCP_INVALID, "invalid rst"

    if not skip_window:
        verdict, why = tcp_in_window(net, ct, direction, index, buf, seg)
        if verdict == NFCT_TCP_IGNORE:
            return TCP_ACCEPT, why
        if verdict == NFCT_TCP_INVALID:
            nf_tcp_handle_invalid(net, ct, direction, index)
            return TCP_INVALID, why

    tcp.last_index, tcp.last_dir = index, direction
    tcp.state = new_state
    if old_state != new_state and new_state == sFW:
        tcp.seen[direction].flags |= IP_CT_TCP_FLAG_CLOSE_INIT

    state_timeout = timeout_of(net, new_state)
    if tcp.retrans >= net.sysctl.values[SYSCTL + "max_retrans"] and state_timeout > timeout_of(net, TIMEOUT_RETRANS):
        timeout = timeout_of(net, TIMEOUT_RETRANS)
    elif index == TCP_RST_SET:
        timeout = timeout_of(net, sCL)
    elif (tcp.seen[0].flags | tcp.seen[1].flags) & IP_CT_TCP_FLAG_DATA_UNACKNOWLEDGED and \
            state_timeout > timeout_of(net, TIMEOUT_UNACK):
        timeout = timeout_of(net, TIMEOUT_UNACK)
    elif tcp.last_win == 0 and state_timeout > timeout_of(net, TIMEOUT_RETRANS):
        timeout = timeout_of(net, TIMEOUT_RETRANS)
    else:
        timeout = state_timeout

    if not ct.status & IPS_SEEN_REPLY:
        if seg.rst:
            # the only reply is a RST: no connection to keep
            nf_ct_kill(net, ct)
            return TCP_ACCEPT, ""
        if index == TCP_SYN_SET and old_state == sSS:
            return TCP_ACCEPT, ""  # a retransmitted SYN does not renew the timeout
        if new_state == sES and timeout > timeout_of(net, TIMEOUT_UNACK):
            timeout = timeout_of(net, TIMEOUT_UNACK)  # picked up: no 5-day timeout before a reply
    elif not ct.status & IPS_ASSURED and old_state in (sSR, sES) and new_state == sES:
        nf_ct_set_status(ct, IPS_ASSURED)
    ct.timeout = net.clock.now + timeout
    return TCP_ACCEPT, ""


def _rst_in_close(net, ct: NfConn, direction: int, seg: Segment, old_state: int,
                  new_state: int) -> tuple[int, bool, bool]:
    """The RST cases of tcp_packet(): (new state, skip the window check, invalid)."""
    tcp = ct.proto
    if tcp_can_early_drop(ct):
        return new_state, True, False  # closing: the tuple may be reused already
    other = tcp.seen[1 - direction]
    if other.flags & IP_CT_TCP_FLAG_MAXACK_SET and tcp.last_index != TCP_SYN_SET:
        seq = seg.seq
        if seq == 0 and not nf_conntrack_tcp_established(ct):
            return new_state, False, False  # likely answering a SYN we let through
        if before(seq, other.td_maxack) and not net.sysctl.values[SYSCTL + "ignore_invalid_rst"]:
            return new_state, False, True
        if not nf_conntrack_tcp_established(ct) or seq == other.td_maxack:
            return new_state, False, False
        if tcp.last_index == TCP_ACK_SET and tcp.last_dir == direction and seq == tcp.last_end:
            return new_state, False, False  # the RST ends a train of this side's segments
        new_state = old_state  # not exact: keep the state for a possible challenge ACK
    return _rst_answers_ignored(ct, seg, old_state, new_state)


def _rst_answers_ignored(ct: NfConn, seg: Segment, old_state: int, new_state: int) -> tuple[int, bool, bool]:
    """A RST answering a SYN or ACK we let through unchecked skips the window check."""
    tcp = ct.proto
    if ((ct.status & IPS_SEEN_REPLY and tcp.last_index == TCP_SYN_SET)
            or (not ct.status & IPS_ASSURED and tcp.last_index == TCP_ACK_SET)) \
            and seg.ack_seq == tcp.last_end:
        return new_state, True, False
    if old_state == sSS and tcp.last_index == TCP_ACK_SET and tcp.last_dir == IP_CT_DIR_REPLY \
            and seg.seq == tcp.last_ack:
        return new_state, True, False  # a reset answering a challenge ACK we let through
    return new_state, False, False


def nf_tcp_handle_invalid(net, ct: NfConn, direction: int, index: int) -> None:
    """An out-of-window FIN or RST answering one from the other side shortens an
    assured entry's timeout to unacknowledged: the ends are out of sync."""
    tcp = ct.proto
    if not ct.status & IPS_ASSURED or index not in (TCP_RST_SET, TCP_FIN_SET):
        return
    if tcp.last_dir != direction and tcp.last_index in (TCP_FIN_SET, TCP_RST_SET):
        expires = ct.timeout - net.clock.now
        if expires < 120:
            return
        timeout = timeout_of(net, TIMEOUT_UNACK)
        if expires > timeout:
            ct.timeout = net.clock.now + timeout
    else:
        tcp.last_index, tcp.last_dir = index, direction
