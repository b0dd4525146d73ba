"""SYN proxy: nft's `synproxy` statement and object, iptables' `-j SYNPROXY`
(net/netfilter/nf_synproxy_core.c, nft_synproxy.c, xt_SYNPROXY.c).

The common recipe: SYNs to the protected port are not tracked (`notrack` in
raw prerouting), conntrack does not pick up connections mid-stream
(nf_conntrack_tcp_loose 0), so both the client's SYN (untracked) and its ACK
(invalid) reach `ct state invalid,untracked synproxy ...`. The DUT answers the
SYN itself, in the server's name, with a SYN cookie; the server sees nothing
until the client's ACK brings the cookie back; then the DUT sends the server
the client's SYN, completes the server's handshake when its SYN-ACK comes,
and opens the client's window; from then on every segment has its sequence
numbers and timestamps shifted between the two sides' spaces.

The tester plays client (h0) and server (h1, or a socket on the DUT) frame by
frame. The cookie (the proxy's ISN) and its TSval come from a keyed hash and
the clock: they are read from the DUT's SYN-ACK, never predicted; what they
must encode (the client's window scale and SACK-permitted in TSval's low 6
bits) and where they must come back (the server SYN's ACK field, the client
side's sequence numbers) is checked.
"""
from __future__ import annotations

import pytest
from scapy.layers.inet import IP, TCP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Ether

from harness.packets import Mask
from harness.testing import drops

pytestmark = pytest.mark.requires("nftables", "conntrack")

CLIENT_PORT, SERVER_PORT = 40000, 80
CLIENT_ISN, SERVER_ISN = 1000, 5000
# a Linux client's SYN options (tcp_syn_options() order), TSval 11
CLIENT_SYN_OPTIONS = [("MSS", 1460), ("SAckOK", b""), ("Timestamp", (11, 0)), ("NOP", None), ("WScale", 7)]
CLIENT_WINDOW, SERVER_WINDOW = 502, 65535
SERVER_WSCALE, SERVER_TSVAL = 5, 700
# the client's window scale (7) and SACK-permitted (1 << 4) the proxy's TSval carries
TSVAL_CLIENT_OPTIONS = 7 | 1 << 4

NFT_STATEMENT = """
table inet proxy {
    chain prerouting {
        type filter hook prerouting priority raw; policy accept;
        tcp dport 80 tcp flags syn notrack
    }
    chain forward {
        type filter hook forward priority filter; policy accept;
        tcp dport 80 ct state invalid,untracked synproxy mss 1460 wscale 7 timestamp sack-perm
        ct state invalid drop
    }
}
"""
NFT_OBJECT = """
table ip proxy {
    synproxy web {
        mss 1460
        wscale 7
        timestamp sack-perm
    }
    chain prerouting {
        type filter hook prerouting priority raw; policy accept;
        tcp dport 80 tcp flags syn notrack
    }
    chain forward {
        type filter hook forward priority filter; policy accept;
        tcp dport 80 ct state invalid,untracked synproxy name "web"
        ct state invalid drop
    }
}
"""
IPTABLES = [
    "iptables -t raw -A PREROUTING -p tcp --dport 80 --syn -j CT --notrack",
    "iptables -A FORWARD -p tcp --dport 80 -m conntrack --ctstate INVALID,UNTRACKED "
    "-j SYNPROXY --sack-perm --timestamp --wscale 7 --mss 1460",
    "iptables -A FORWARD -m conntrack --ctstate INVALID -j DROP",
]
NFT_INPUT = NFT_STATEMENT.replace("hook forward", "hook input").replace("chain forward", "chain input")


def _configure(target, ruleset) -> None:
    target.sh("sysctl -w net.netfilter.nf_conntrack_tcp_loose=0")
    if isinstance(ruleset, list):
        for command in ruleset:
            target.sh(command)
    else:
        target.sh("nft -f -", stdin=ruleset)


def _synproxy_stats(target) -> dict[str, int]:
    """/proc/net/stat/synproxy summed over its per-CPU lines (hex counters)."""
    header, *cpus = target.sh("cat /proc/net/stat/synproxy").splitlines()
    return {name: sum(int(line.split()[column], 16) for line in cpus)
            for column, name in enumerate(header.split()) if name != "entries"}


def _counted_since(target, before: dict[str, int]) -> dict[str, int]:
    after = _synproxy_stats(target)
    return {name: after[name] - before[name] for name in after if after[name] != before[name]}


def _tcp(sport: int, dport: int, flags: str, seq: int, ack: int, window: int, options, payload: bytes = b""):
    return TCP(sport=sport, dport=dport, flags=flags, seq=seq, ack=ack, window=window, options=options) / payload


def _timestamp(frame: Ether) -> tuple[int, int]:
    return dict(frame[TCP].options)["Timestamp"]


class Path:
    """Client h0 and server at `server_ip` (h1 behind the DUT, or the DUT itself),
    over IPv4 or IPv6: the frames each side sends and expects."""

    def __init__(self, client, server, v6: bool, server_ip: str | None = None):
        self.client, self.server, self.v6 = client, server, v6
        self.client_ip = client.ip6 if v6 else client.ip
        self.server_ip = server_ip or (server.ip6 if v6 else server.ip)

    @property
    def cookie_mss(self) -> int:
        """The client's MSS (1460) as the cookie brings it back: the largest entry of
        msstab (IPv4: 536 1300 1440 1460) or msstab6 (1220 1420 1440 8940) not above it."""
        return 1440 if self.v6 else 1460

    def _ip(self, src: str, dst: str, **fields):
        if self.v6:
            return IPv6(src=src, dst=dst, hlim=fields.get("ttl", 64))
        return IP(src=src, dst=dst, **fields)

    def from_client(self, segment) -> Ether:
        host = self.client
        return Ether(src=host.mac, dst=host.port.mac) / self._ip(self.client_ip, self.server_ip, id=1, ttl=64) / segment

    def from_server(self, segment) -> Ether:
        host = self.server
        return Ether(src=host.mac, dst=host.port.mac) / self._ip(self.server_ip, self.client_ip, id=2, ttl=64) / segment

    def proxy_to_client(self, segment) -> Ether:
        """What the proxy itself sends the client in the server's name: IP ID 0, DF, TTL 64."""
        host = self.client
        return Ether(src=host.port.mac, dst=host.mac) / \
            self._ip(self.server_ip, self.client_ip, id=0, flags="DF", ttl=64) / segment

    def proxy_to_server(self, segment) -> Ether:
        host = self.server
        return Ether(src=host.port.mac, dst=host.mac) / \
            self._ip(self.client_ip, self.server_ip, id=0, flags="DF", ttl=64) / segment

    def forwarded(self, host, src: str, dst: str, ident: int, segment) -> Ether:
        return Ether(src=host.port.mac, dst=host.mac) / self._ip(src, dst, id=ident, ttl=63) / segment


def _syn_ack_mask(frame: Ether, v6: bool) -> Mask:
    ip_header = 40 if v6 else 20
    return Mask(frame).ignore(TCP, "seq", "the cookie: a keyed hash of the 4-tuple, the minute and the MSS index") \
        .ignore(TCP, "chksum", "covers the cookie and TSval") \
        .ignore_bytes(14 + ip_header + 20 + 4 + 2 + 2, 4, "TSval: the ms clock, the client's options in 6 bits")


def _proxied_handshake(target, path: Path) -> tuple[int, int]:
    """Client SYN -> the proxy's SYN-ACK (nothing to the server) -> client ACK ->
    the server's SYN. Returns the cookie and the proxy's TSval."""
    target.send(path.client.port, path.from_client(
        _tcp(CLIENT_PORT, SERVER_PORT, "S", CLIENT_ISN, 0, 64240, CLIENT_SYN_OPTIONS)))
    syn_ack = path.proxy_to_client(_tcp(SERVER_PORT, CLIENT_PORT, "SA", 0, CLIENT_ISN + 1, 0, [
        ("MSS", 1460), ("SAckOK", b""), ("Timestamp", (0, 11)), ("NOP", None), ("WScale", 7)]))
    got = Ether(target.expect(path.client.port, _syn_ack_mask(syn_ack, path.v6)))
    target.expect_nothing()  # the server has seen nothing yet
    cookie, tsval = got[TCP].seq, _timestamp(got)[0]
    assert tsval & 0x3F == TSVAL_CLIENT_OPTIONS
    target.send(path.client.port, path.from_client(
        _tcp(CLIENT_PORT, SERVER_PORT, "A", CLIENT_ISN + 1, cookie + 1, CLIENT_WINDOW,
             [("NOP", None), ("NOP", None), ("Timestamp", (12, tsval))])))
    # the client's SYN again, its ACK field carrying the cookie; the MSS from the
    # cookie, window scale and SACK-permitted from the TSval the client echoed
    target.expect(path.server.port, path.proxy_to_server(
        _tcp(CLIENT_PORT, SERVER_PORT, "S", CLIENT_ISN, cookie, CLIENT_WINDOW,
             [("MSS", path.cookie_mss), ("SAckOK", b""), ("Timestamp", (12, tsval)), ("NOP", None), ("WScale", 7)])))
    target.expect_nothing([path.client.port])
    return cookie, tsval


def _server_answers(target, path: Path, cookie: int, tsval: int) -> None:
    """The server's SYN-ACK is taken by the proxy: the server gets the ACK of its
    handshake, the client an ACK opening its window in the cookie's sequence space."""
    target.send(path.server.port, path.from_server(
        _tcp(SERVER_PORT, CLIENT_PORT, "SA", SERVER_ISN, CLIENT_ISN + 1, SERVER_WINDOW,
             [("MSS", 1460), ("SAckOK", b""), ("Timestamp", (SERVER_TSVAL, 12)), ("NOP", None),
              ("WScale", SERVER_WSCALE)])))
    # the server's ACK leaves through POSTROUTING after tsoff (the server's TSval
    # less ours) is set, and synproxy_tstamp_adjust() adds tsoff to its TSecr too
    tsoff = (SERVER_TSVAL - tsval) & 0xFFFFFFFF
    target.expect(path.server.port, path.proxy_to_server(
        _tcp(CLIENT_PORT, SERVER_PORT, "A", CLIENT_ISN + 1, SERVER_ISN + 1, CLIENT_WINDOW,
             [("NOP", None), ("NOP", None), ("Timestamp", (12, (SERVER_TSVAL + tsoff) & 0xFFFFFFFF))])))
    target.expect(path.client.port, path.proxy_to_client(
        _tcp(SERVER_PORT, CLIENT_PORT, "A", cookie + 1, CLIENT_ISN + 1, SERVER_WINDOW >> SERVER_WSCALE,
             [("NOP", None), ("NOP", None), ("Timestamp", (tsval, 12))])))


@pytest.mark.parametrize("ruleset", [NFT_STATEMENT, NFT_OBJECT, IPTABLES],
                         ids=["nft-statement", "nft-object", "iptables"])
def test_a_forwarded_connection_is_opened_to_the_server_only_after_the_clients_ack_returns_the_cookie(
        target, router, ruleset):
    _configure(target, ruleset)
    before = _synproxy_stats(target)
    path = Path(router[0], router[1], v6=False)
    cookie, tsval = _proxied_handshake(target, path)
    _server_answers(target, path, cookie, tsval)
    assert _counted_since(target, before) == {"syn_received": 1, "cookie_valid": 1}


def test_data_after_the_handshake_crosses_with_sequence_numbers_and_timestamps_shifted(target, router):
    """nf_ct_seq_adjust() in nf_confirm(): the server's SEQ plus (cookie - its ISN)
    towards the client, the client's ACK less it towards the server;
    synproxy_tstamp_adjust(): the server's TSval less (its TSval - ours), the
    client's TSecr plus it."""
    _configure(target, NFT_STATEMENT)
    client, server = router[0], router[1]
    path = Path(client, server, v6=False)
    cookie, tsval = _proxied_handshake(target, path)
    _server_answers(target, path, cookie, tsval)
    offset, tsoff = cookie - SERVER_ISN, SERVER_TSVAL - tsval
    target.send(client.port, path.from_client(
        _tcp(CLIENT_PORT, SERVER_PORT, "PA", CLIENT_ISN + 1, cookie + 1, CLIENT_WINDOW,
             [("NOP", None), ("NOP", None), ("Timestamp", (13, tsval))], b"hello")))
    target.expect(server.port, path.forwarded(server, client.ip, server.ip, 1, _tcp(
        CLIENT_PORT, SERVER_PORT, "PA", CLIENT_ISN + 1, (cookie + 1 - offset) & 0xFFFFFFFF, CLIENT_WINDOW,
        [("NOP", None), ("NOP", None), ("Timestamp", (13, SERVER_TSVAL))], b"hello")))
    target.send(server.port, path.from_server(
        _tcp(SERVER_PORT, CLIENT_PORT, "PA", SERVER_ISN + 1, CLIENT_ISN + 6, 2047,
             [("NOP", None), ("NOP", None), ("Timestamp", (SERVER_TSVAL + 1, 13))], b"world")))
    target.expect(client.port, path.forwarded(client, server.ip, client.ip, 2, _tcp(
        SERVER_PORT, CLIENT_PORT, "PA", (SERVER_ISN + 1 + offset) & 0xFFFFFFFF, CLIENT_ISN + 6, 2047,
        [("NOP", None), ("NOP", None), ("Timestamp", ((SERVER_TSVAL + 1 - tsoff) & 0xFFFFFFFF, 13))], b"world")))
    target.expect_nothing()


def test_an_ack_with_a_bad_cookie_is_dropped_and_the_server_sees_nothing(target, router):
    _configure(target, NFT_STATEMENT)
    before = _synproxy_stats(target)
    path = Path(router[0], router[1], v6=False)
    target.send(path.client.port, path.from_client(
        _tcp(CLIENT_PORT, SERVER_PORT, "S", CLIENT_ISN, 0, 64240, CLIENT_SYN_OPTIONS)))
    got = Ether(target.frame_left(path.client.port, "the proxy's SYN-ACK"))
    cookie, tsval = got[TCP].seq, _timestamp(got)[0]
    target.send(path.client.port, path.from_client(
        _tcp(CLIENT_PORT, SERVER_PORT, "A", CLIENT_ISN + 1, (cookie + 2) & 0xFFFFFFFF, CLIENT_WINDOW,
             [("NOP", None), ("NOP", None), ("Timestamp", (12, tsval))])))
    target.expect_nothing()
    assert _counted_since(target, before) == {"syn_received": 1, "cookie_invalid": 1}


def test_without_timestamps_the_syn_ack_offers_only_the_mss(target, router):
    """nft_synproxy_tcp_options(): window scale and SACK-permitted ride in the
    TSval, so a client without timestamps is offered neither."""
    _configure(target, NFT_STATEMENT)
    path = Path(router[0], router[1], v6=False)
    target.send(path.client.port, path.from_client(
        _tcp(CLIENT_PORT, SERVER_PORT, "S", CLIENT_ISN, 0, 64240, [("MSS", 1400), ("SAckOK", b""), ("WScale", 7)])))
    syn_ack = path.proxy_to_client(_tcp(SERVER_PORT, CLIENT_PORT, "SA", 0, CLIENT_ISN + 1, 0, [("MSS", 1460)]))
    target.expect(path.client.port, Mask(syn_ack).ignore(TCP, "seq", "the cookie").ignore(TCP, "chksum", "covers it"))
    target.expect_nothing()


IP6TABLES = [command.replace("iptables", "ip6tables") for command in IPTABLES]


def test_ipv6_ip6tables_proxies_a_forwarded_connection_the_same_way(target, router6):
    """synproxy_tg6(): nf_ip6_checksum(), cookies of msstab6."""
    _configure(target, IP6TABLES)
    path = Path(router6[0], router6[1], v6=True)
    cookie, tsval = _proxied_handshake(target, path)
    _server_answers(target, path, cookie, tsval)


@pytest.mark.requires("drop_reasons")
def test_ipv6_nft_synproxy_drops_a_syn_whose_checksum_it_checks_as_ipv4(target, router6):
    """nft_synproxy_do_eval() checks the TCP checksum with nf_ip_checksum()
    whatever the family: for an IPv6 SYN that came without a verified checksum
    (CHECKSUM_NONE, as over veth) the sum of an IPv4 pseudo-header read from the
    IPv6 header is wrong, and the SYN is dropped (NF_DROP) unanswered."""
    _configure(target, NFT_STATEMENT)
    path = Path(router6[0], router6[1], v6=True)
    target.send(path.client.port, path.from_client(
        _tcp(CLIENT_PORT, SERVER_PORT, "S", CLIENT_ISN, 0, 64240, CLIENT_SYN_OPTIONS)))
    target.expect_nothing()
    assert drops(target) == [("NETFILTER_DROP", "NF_FORWARD", "nft_do_chain")]


@pytest.mark.requires("sockets")
def test_a_local_server_accepts_the_connection_and_exchanges_data_through_the_proxy(target, hosts):
    """In the input chain, for a socket on the DUT: the proxy's SYN to it goes
    through lo. Its SYN-ACK is answered with an ACK whose TSecr
    synproxy_tstamp_adjust() has shifted by tsoff as well, which the listener
    drops (tcp_check_req(): TCP_RFC7323_TSECR) and answers with an ACK of its
    own: the client gets two ACKs in the cookie's sequence space, and its first
    data completes the server's handshake."""
    _configure(target, NFT_INPUT)
    client = hosts[0]
    listener = target.socket("tcp", (client.dut_ip, SERVER_PORT))
    listener.listen(8)
    path = Path(client, client, v6=False, server_ip=client.dut_ip)
    target.send(client.port, path.from_client(
        _tcp(CLIENT_PORT, SERVER_PORT, "S", CLIENT_ISN, 0, 64240, CLIENT_SYN_OPTIONS)))
    got = Ether(target.frame_left(client.port, "the proxy's SYN-ACK"))
    assert (got[TCP].flags, got[TCP].window, got[IP].id) == ("SA", 0, 0)
    cookie, tsval = got[TCP].seq, _timestamp(got)[0]
    assert listener.info().recv_q == 0  # the listener has seen nothing yet
    target.send(client.port, path.from_client(
        _tcp(CLIENT_PORT, SERVER_PORT, "A", CLIENT_ISN + 1, cookie + 1, CLIENT_WINDOW,
             [("NOP", None), ("NOP", None), ("Timestamp", (12, tsval))])))
    acks = [Ether(f) for f in target.frames_left(client.port, 2, "the proxy's ACK and the listener's")]
    assert [(a[TCP].flags, a[TCP].seq, a[TCP].ack, _timestamp(a)[1]) for a in acks] == \
        [("A", cookie + 1, CLIENT_ISN + 1, 12)] * 2
    target.send(client.port, path.from_client(
        _tcp(CLIENT_PORT, SERVER_PORT, "PA", CLIENT_ISN + 1, cookie + 1, CLIENT_WINDOW,
             [("NOP", None), ("NOP", None), ("Timestamp", (13, tsval))], b"hello")))
    conn, address = listener.accept()
    assert address == (client.ip, CLIENT_PORT) and conn.recv(100) == b"hello"
    assert conn.send(b"world") == 5
    frames = [Ether(f) for f in target.collect(client.port)]
    data = [f for f in frames if bytes(f[TCP].payload) == b"world"]
    assert [(f[TCP].seq, f[TCP].ack) for f in data] == [(cookie + 1, CLIENT_ISN + 6)]
