"""IPv6 fragments through conntrack (nf_defrag_ipv6), on both targets.

With an `inet` ruleset using conntrack, the DUT reassembles IPv6 fragments at
PREROUTING priority -400 (nf_ct_frag6_gather()), so conntrack and every chain
see the whole datagram once; a forwarded datagram leaves cut where it came in
cut (ip6_fragment()'s fast path over the fragments kept), refragmented even
when it would fit whole, and refused with packet too big when one of its
fragments does not fit the egress MTU (IP6CB(skb)->frag_max_size). Seen on
6.18 (docs/kernel-facts.md, "nf_defrag_ipv6").
"""
from __future__ import annotations

import ipaddress
import re
from socket import AF_INET6

import pytest
from scapy.layers.inet import UDP
from scapy.packet import Raw
from scapy.layers.inet6 import ICMPv6PacketTooBig, ICMPv6TimeExceeded, IPv6, IPv6ExtHdrFragment

from harness.packets import Mask
from harness.testing import counted, drops

pytestmark = pytest.mark.requires("nftables", "conntrack")

STATEFUL_FORWARD = """table inet filter {
\tchain forward {
\t\ttype filter hook forward priority filter; policy drop;
\t\tct state established,related counter accept comment "established"
\t\tudp dport 7777 ct state new counter accept comment "new"
\t}
\tchain input {
\t\ttype filter hook input priority filter; policy accept;
\t\tudp dport 7777 ct state new counter comment "new to the DUT"
\t}
}
"""
DATA = bytes(range(256)) * 12
SPORT, DPORT = 4444, 7777


def _udp(src: str, dst: str, length: int, dport: int = DPORT) -> bytes:
    """A UDP datagram of `length` bytes (header included), its checksum over the IPv6 pseudo-header."""
    return bytes(IPv6(src=src, dst=dst) / UDP(sport=SPORT, dport=dport) / DATA[:length - 8])[40:]


def _cut(udp: bytes, sizes: tuple[int, ...]) -> list[tuple[int, bytes, bool]]:
    """(offset, data, more fragments) of each piece: `sizes`, then the rest."""
    pieces, offset = [], 0
    for size in (*sizes, len(udp) - sum(sizes)):
        pieces.append((offset, udp[offset:offset + size], offset + size < len(udp)))
        offset += size
    return pieces


def _fragments(host, dst: str, udp: bytes, sizes: tuple[int, ...], ident: int) -> list:
    return [host.to_dut6(dst=dst) / IPv6ExtHdrFragment(nh=17, offset=offset // 8, m=int(more), id=ident) / data
            for offset, data, more in _cut(udp, sizes)]


def _forwarded(h0, h1, udp: bytes, sizes: tuple[int, ...]) -> list[Mask]:
    """What leaves toward h1 from h0: the same pieces, hop limit 63, a new identification."""
    return [Mask(h1.from_dut6(src=h0.ip6, dst=h1.ip6, hlim=63) /
                 IPv6ExtHdrFragment(nh=17, offset=offset // 8, m=int(more), id=0) / data)
            .ignore(IPv6ExtHdrFragment, "id", "ipv6_select_ident(): a keyed hash of the addresses")
            for offset, data, more in _cut(udp, sizes)]


def _untimed(line: str, fields_before: int) -> str:
    """The line with its timeout (seconds left, after `fields_before` fields) as T:
    the entry's timer runs in the DUT's time, which the lab's frames take too."""
    return re.sub(rf"^((?:\S+\s+){{{fields_before}}})\d+ ", r"\1T ", line)


def _full(address: str) -> str:
    """%pI6: eight groups of four hex digits."""
    return ":".join(f"{int(group, 16):04x}" for group in ipaddress.IPv6Address(address).exploded.split(":"))


def _identifications(frames: list[bytes]) -> set[bytes]:
    return {frame[14 + 40 + 4:14 + 40 + 8] for frame in frames}


@pytest.mark.parametrize("sizes", [(1000, 600), (600, 1000, 56), (1448,)],
                         ids=["1000, 600 and the rest", "uneven: 600, 1000, 56 and the rest", "1448 and the rest"])
def test_a_forwarded_datagram_is_tracked_whole_and_leaves_cut_where_it_came_in_cut(target, router6, sizes):
    h0, h1, _ = router6
    target.sh("nft -f -", stdin=STATEFUL_FORWARD)
    udp = _udp(h0.ip6, h1.ip6, 3000 if len(sizes) > 1 else 2000)
    target.send(h0.port, _fragments(h0, h1.ip6, udp, sizes, ident=0x1234))
    got = [target.expect(h1.port, mask) for mask in _forwarded(h0, h1, udp, sizes)]
    assert len(_identifications(got)) == 1, "one identification for all fragments"
    target.expect_nothing()
    assert counted(target, '"new"') == 1, "the forward chain saw one datagram, not its fragments"
    assert drops(target) == []


def test_the_datagram_is_one_entry_in_conntrack_l_f_ipv6_and_in_proc_net_nf_conntrack(target, router6):
    """conntrack-tools 1.4.7 prints addresses as inet_ntop() does, the kernel's
    ct_seq_show() in full (%pI6), with its family and zone."""
    h0, h1, _ = router6
    target.sh("nft -f -", stdin=STATEFUL_FORWARD)
    udp = _udp(h0.ip6, h1.ip6, 3000)
    target.send(h0.port, _fragments(h0, h1.ip6, udp, (1000, 600), ident=0x21))
    for mask in _forwarded(h0, h1, udp, (1000, 600)):
        target.expect(h1.port, mask)
    listing = target.sh("conntrack -L -f ipv6").splitlines()
    assert target.sh("conntrack -L -s " + h0.ip6).splitlines() == listing, "the address names the family"
    assert [_untimed(line, 2) for line in listing] == [
        f"udp      17 T src={h0.ip6} dst={h1.ip6} sport={SPORT} dport={DPORT} [UNREPLIED] "
        f"src={h1.ip6} dst={h0.ip6} sport={DPORT} dport={SPORT} mark=0 use=1"]
    proc = [line for line in target.sh("cat /proc/net/nf_conntrack").splitlines() if line.startswith("ipv6")]
    a, b = _full(h0.ip6), _full(h1.ip6)
    assert [_untimed(line, 4) for line in proc] == [
        f"ipv6     10 udp      17 T src={a} dst={b} sport={SPORT} dport={DPORT} [UNREPLIED] "
        f"src={b} dst={a} sport={DPORT} dport={SPORT} mark=0 zone=0 use=2"]


def test_a_datagram_that_would_fit_whole_still_leaves_in_its_fragments(target, router6):
    """__ip6_finish_output(): longer than frag_max_size (its largest fragment), so ip6_fragment()."""
    h0, h1, _ = router6
    target.sh("nft -f -", stdin=STATEFUL_FORWARD)
    udp = _udp(h0.ip6, h1.ip6, 1000)
    target.send(h0.port, _fragments(h0, h1.ip6, udp, (600,), ident=0x99))
    for mask in _forwarded(h0, h1, udp, (600,)):
        target.expect(h1.port, mask)
    target.expect_nothing()


def test_the_reply_to_a_fragmented_datagram_is_established(target, router6):
    h0, h1, _ = router6
    target.sh("nft -f -", stdin=STATEFUL_FORWARD)
    udp = _udp(h0.ip6, h1.ip6, 3000)
    target.send(h0.port, _fragments(h0, h1.ip6, udp, (1000, 600), ident=0x4242))
    for mask in _forwarded(h0, h1, udp, (1000, 600)):
        target.expect(h1.port, mask)
    reply = h1.to_dut6(src=h1.ip6, dst=h0.ip6) / UDP(sport=DPORT, dport=SPORT) / b"answer"
    target.send(h1.port, reply)
    target.expect(h0.port, h0.from_dut6(src=h1.ip6, dst=h0.ip6, hlim=63) / UDP(sport=DPORT, dport=SPORT) / b"answer")
    assert (counted(target, '"new"'), counted(target, '"established"')) == (1, 1)


def test_a_fragment_over_the_egress_mtu_gets_packet_too_big_quoting_the_whole_datagram(target, router6):
    """ip6_pkt_too_big(): frag_max_size (1496) > the MTU (1280); the error quotes
    the reassembled datagram, hop limit not yet decremented."""
    h0, h1, _ = router6
    target.sh("nft -f -", stdin=STATEFUL_FORWARD)
    target.sh(f"ip link set {h1.port.name} mtu 1280")
    udp = _udp(h0.ip6, h1.ip6, 2000)
    target.send(h0.port, _fragments(h0, h1.ip6, udp, (1448,), ident=0x55))
    whole = h0.to_dut6(dst=h1.ip6, nh=17) / Raw(udp)
    target.expect(h0.port, h0.icmp6_error(ICMPv6PacketTooBig(mtu=1280), whole))
    target.expect_nothing()
    assert drops(target) == [("PKT_TOO_BIG", "IP_FORWARD", "ip6_forward")]
    assert counted(target, '"new"') == 0, "refused before the forward hook"


def test_fragments_to_a_dut_socket_are_reassembled_before_the_input_chain(target, hosts6):
    h0 = hosts6[0]
    target.sh("nft -f -", stdin=STATEFUL_FORWARD)
    sock = target.socket("udp", (h0.dut_ip6, DPORT), family=AF_INET6)
    udp = _udp(h0.ip6, h0.dut_ip6, 3000)
    target.send(h0.port, _fragments(h0, h0.dut_ip6, udp, (1000, 600), ident=0x77))
    assert sock.recv() == (udp[8:], (h0.ip6, SPORT))
    assert (counted(target, '"new to the DUT"'), counted(target, '"invalid to the DUT"')) == (1, 0)
    assert drops(target) == []


def test_an_incomplete_datagram_expires_after_nf_conntrack_frag6_timeout_with_time_exceeded(target, router6):
    """nf_ct_frag6_expire() -> ip6frag_expire_frag_queue(): the first fragment came,
    so its sender hears time exceeded (fragment reassembly), quoting it."""
    h0, h1, _ = router6
    target.sh("nft -f -", stdin=STATEFUL_FORWARD)
    target.sh("sysctl -w net.netfilter.nf_conntrack_frag6_timeout=1")
    udp = _udp(h0.ip6, h1.ip6, 3000)
    first, middle, _ = _fragments(h0, h1.ip6, udp, (1000, 600), ident=0x57)
    target.send(h0.port, [first, middle])
    target.expect_nothing()
    target.wait(1.5)
    target.expect(h0.port, h0.icmp6_error(ICMPv6TimeExceeded(code=1), first))
    target.expect_nothing()
    # the middle fragment's own drop (inet_frag_rbtree_purge) has no device, which
    # the lab's tracer attributes for IPv4 fragments only
    assert ("FRAG_REASM_TIMEOUT", "IP_DEFRAG", "nf_ct_frag6_expire") in drops(target)
    assert {(reason, stage) for reason, stage, _ in drops(target)} == {("FRAG_REASM_TIMEOUT", "IP_DEFRAG")}


def test_a_duplicate_fragment_is_freed_and_the_datagram_still_completes(target, router6):
    h0, h1, _ = router6
    target.sh("nft -f -", stdin=STATEFUL_FORWARD)
    udp = _udp(h0.ip6, h1.ip6, 3000)
    first, middle, last = _fragments(h0, h1.ip6, udp, (1000, 600), ident=0x58)
    target.send(h0.port, [first, middle, middle, last])
    for mask in _forwarded(h0, h1, udp, (1000, 600)):
        target.expect(h1.port, mask)
    target.expect_nothing()
    assert drops(target) == [("DUP_FRAG", "IP_DEFRAG", "nf_ct_frag6_gather")]


DNAT = """table inet nat {
\tchain prerouting {
\t\ttype nat hook prerouting priority dstnat; policy accept;
\t\tudp dport 7777 dnat ip6 to [2001:db8:1::2]:5353
\t}
}
"""


def test_a_fragmented_datagram_is_dnatted_whole_and_leaves_in_its_fragments(target, router6):
    """NAT66 on the reassembled datagram: the first fragment leaves with the new
    port and the checksum of the new pseudo-header; the reply is un-NATed."""
    h0, h1, _ = router6
    target.sh("nft -f -", stdin=DNAT)
    sent = _udp(h0.ip6, h0.dut_ip6, 3000)
    target.send(h0.port, _fragments(h0, h0.dut_ip6, sent, (1000, 600), ident=0x66))
    natted = _udp(h0.ip6, h1.ip6, 3000, dport=5353)
    for mask in _forwarded(h0, h1, natted, (1000, 600)):
        target.expect(h1.port, mask)
    target.send(h1.port, h1.to_dut6(src=h1.ip6, dst=h0.ip6) / UDP(sport=5353, dport=SPORT) / b"answer")
    target.expect(h0.port, h0.from_dut6(src=h0.dut_ip6, dst=h0.ip6, hlim=63) / UDP(sport=DPORT, dport=SPORT) /
                  b"answer")
    target.expect_nothing()
    assert drops(target) == []
