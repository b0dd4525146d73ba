"""TCP over IPv6 through conntrack and NAT66: an AF_INET6 socket on the DUT behind a
stateful `inet` ruleset (its segments after the SYN are `ct state established`), and a
connection to a port NAT66 moves (`dnat ip6 to [addr]:port` in prerouting: the
listener sees the new port, the peer only the one it asked for, un-NATed by
conntrack on the way out)."""
from __future__ import annotations

from socket import AF_INET6

from harness.testing import counted, drops
from tcp_segments import INITIAL_WINDOW, SYN_OPTIONS, Peer6

DUT_PORT, PEER_PORT = 8080, 40000

STATEFUL = """table inet host {
\tchain input {
\t\ttype filter hook input priority filter; policy accept;
\t\tct state established,related counter accept
\t\tmeta nfproto ipv6 tcp dport 8080 ct state new counter accept
\t\tmeta nfproto ipv6 counter drop
\t}
}
"""


def test_a_stateful_inet_ruleset_takes_the_syn_as_new_and_the_rest_of_the_connection_as_established(
        target, hosts6):
    """The SYN is `ct state new`, the ACK, the data and its ACK `established`; a SYN to
    another port with a listener behind it meets the drop rule (NETFILTER_DROP) unanswered."""
    h0 = hosts6[0]
    target.sh("nft -f -", stdin=STATEFUL)
    listener = target.socket("tcp", (h0.dut_ip6, DUT_PORT), family=AF_INET6)
    listener.listen(8)
    fenced = target.socket("tcp", (h0.dut_ip6, 8081), family=AF_INET6)
    fenced.listen(8)
    peer = Peer6(h0, PEER_PORT, DUT_PORT)
    peer.connect(target)
    peer.send(target, "PA", b"through")
    peer.expect(target, "A")
    conn, _ = listener.accept()
    assert conn.recv(100) == b"through"
    conn.send(b"back")
    peer.expect(target, "PA", b"back")
    peer.send(target, "A")
    assert (counted(target, "ct state new"), counted(target, "established,related")) == (1, 3)
    Peer6(h0, PEER_PORT + 1, 8081).send(target, "S", options=SYN_OPTIONS, window=INITIAL_WINDOW)
    target.expect_nothing()
    assert fenced.info().recv_q == 0
    assert counted(target, "counter drop") == 1
    assert [reason for reason, _, _ in drops(target)] == ["NETFILTER_DROP"]


NAT66 = """table inet nat {
\tchain prerouting {
\t\ttype nat hook prerouting priority dstnat; policy accept;
\t\ttcp dport 80 counter dnat ip6 to [2001:db8::1]:8080
\t}
}
"""


def test_nat66_moves_a_connection_to_the_listeners_port_and_its_replies_leave_from_the_one_asked_for(
        target, hosts6):
    """dnat ip6 to [2001:db8::1]:8080 for port 80: the listener on 8080 accepts the
    connection (its peer unchanged), and every segment the DUT sends back, the SYN-ACK
    first, leaves from port 80 (conntrack's reply un-NATed, nf_nat_ipv6_manip_pkt());
    only the SYN crosses the nat chain."""
    h0 = hosts6[0]
    target.sh("nft -f -", stdin=NAT66)
    listener = target.socket("tcp", (h0.dut_ip6, DUT_PORT), family=AF_INET6)
    listener.listen(8)
    peer = Peer6(h0, PEER_PORT, 80)
    peer.connect(target)
    peer.send(target, "PA", b"via nat66")
    peer.expect(target, "A")
    conn, address = listener.accept()
    assert address == (h0.ip6, PEER_PORT)
    assert conn.recv(100) == b"via nat66"
    conn.send(b"reply")
    peer.expect(target, "PA", b"reply")  # from port 80: Peer6 expects its dut_port as the source
    assert counted(target, "dnat ip6 to") == 1
    assert drops(target) == []
