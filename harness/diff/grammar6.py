"""The IPv6 part of the scenarios' grammar (scenario.py draws from it).

An IPv6 scenario has the addressing plan's IPv6 half on top of the router
(PLAN6: IPv6 on as harness.testing.ipv6_on() turns it on, 2001:db8:N::1/64 on pN,
permanent neighbours for each host's global and link-local address, forwarding
on), a few IPv6 sysctls and routes (COMMANDS6), chains of `ip6` and `inet` tables
drawn from the rule grammar where it applies (MATCHES6, STATEMENTS6, REJECTS6,
NAT_STATEMENTS6), TCP listeners on the IPv6 wildcard, and IPv6 frames: UDP, TCP,
ICMPv6 echo and errors, hop limits 0-2, 64 and 255, extension headers (hop-by-hop,
destination options, fragments, routing types 0 and 2), a third malformed (cut
short, a wrong payload length, a next header chain cut off, a wrong version).
No destination needs neighbour discovery: every next hop and every source the
DUT answers has a permanent neighbour entry.
"""
from __future__ import annotations

from hypothesis import strategies as st
from scapy.layers.inet import TCP, UDP
from scapy.layers.inet6 import (HBHOptUnknown, ICMPv6DestUnreach, ICMPv6EchoReply, ICMPv6EchoRequest,
                                ICMPv6PacketTooBig, IPv6, IPv6ExtHdrDestOpt, IPv6ExtHdrFragment, IPv6ExtHdrHopByHop,
                                IPv6ExtHdrRouting, PadN, RouterAlert)
from scapy.layers.l2 import Ether

from harness.target import PORTS
from harness.testing.plan import Host

# The DUT's own MLD reports (which no target shows) leave it on joining a group, while
# the plan is set up, and again at a random time within the unsolicited report interval
# (mld_ifc_start_work(): get_random_u32_below()): an hour, so none passes an output
# chain while the scenario's frames do.
MLD_REPORT_INTERVAL_MS = 3_600_000
PLAN6 = (
    "sysctl -q -w " + " ".join(f"net.ipv6.conf.{scope}.{name}" for scope in ("all", "default", *(p.name for p in PORTS))
                               for name in ("accept_dad=0", "router_solicitations=0",
                                            f"mldv2_unsolicited_report_interval={MLD_REPORT_INTERVAL_MS}")),
    "sysctl -q -w net.ipv6.conf.all.disable_ipv6=0",
    *(f"ip -6 addr add {Host(port).dut_ip6}/64 dev {port.name}" for port in PORTS),
    *(f"ip -6 neigh replace {address} lladdr {Host(port).mac} dev {port.name} nud permanent"
      for port in PORTS for address in (Host(port).ip6, Host(port).ll6)),
    "sysctl -q -w net.ipv6.conf.all.forwarding=1",
)

PREFIXES6 = ("2001:db8::/64", "2001:db8:1::/64", "2001:db8:2::2", "2001:db8:9::/48", "fe80::/10", "ff02::/16",
             "2001:db8::/32")
MATCHES6 = (
    st.sampled_from(PREFIXES6).map(lambda p: f"ip6 saddr {p}"),
    st.sampled_from(PREFIXES6).map(lambda p: f"ip6 daddr {p}"),
    st.sampled_from(("udp", "tcp", "ipv6-icmp")).map(lambda p: f"ip6 nexthdr {p}"),
    st.sampled_from(("udp", "tcp", "ipv6-icmp")).map(lambda p: f"meta l4proto {p}"),
    st.sampled_from(("53", "9", "{ 7, 9, 53 }", "1-100", "!= 53")).map(lambda p: f"udp dport {p}"),
    st.sampled_from(("22", "80", "{ 22, 80 }")).map(lambda p: f"tcp dport {p}"),
    st.sampled_from(("syn", "& (syn | ack) == syn", "rst")).map(lambda f: f"tcp flags {f}"),
    st.sampled_from(("echo-request", "echo-reply", "destination-unreachable", "{ echo-request, echo-reply }",
                     "packet-too-big")).map(lambda t: f"icmpv6 type {t}"),
    st.sampled_from(("0", "4")).map(lambda c: f"icmpv6 code {c}"),
    st.sampled_from(("1", "< 3", "64", "255")).map(lambda h: f"ip6 hoplimit {h}"),
    st.sampled_from(("> 100", "< 40")).map(lambda n: f"ip6 length {n}"),
    st.sampled_from(("0", "!= 0")).map(lambda f: f"ip6 flowlabel {f}"),
    st.sampled_from(("cs0", "!= cs0", "ef")).map(lambda d: f"ip6 dscp {d}"),
    st.sampled_from(("new", "established", "established,related", "invalid", "untracked")).map(
        lambda s: f"ct state {s}"),
    st.sampled_from(("original", "reply")).map(lambda d: f"ct direction {d}"),
    st.sampled_from(("0x1", "0")).map(lambda m: f"meta mark {m}"),
    st.sampled_from(("local", "unicast", "multicast")).map(lambda t: f"fib daddr type {t}"),
    st.sampled_from(("host", "multicast", "other")).map(lambda t: f"meta pkttype {t}"),
    st.sampled_from(("> 60", "< 50")).map(lambda n: f"meta length {n}"),
    st.sampled_from(("hbh", "frag", "rt", "dst")).map(lambda h: f"exthdr {h} exists"),
    st.sampled_from(("0", "1")).map(lambda m: f"frag more-fragments {m}"),
    st.sampled_from(("0", "2")).map(lambda t: f"rt type {t}"),
    st.sampled_from(("0", "1")).map(lambda s: f"rt seg-left {s}"),
    st.just("ip6 saddr . ip6 daddr { 2001:db8::2 . 2001:db8:1::2, 2001:db8:1::2 . 2001:db8::2 }"),
)
STATEMENTS6 = ("ip6 hoplimit set 1", "ip6 dscp set cs1", "ip6 daddr set 2001:db8:2::2")
REJECTS6 = ("reject", "reject with icmpv6 type admin-prohibited", "reject with icmpv6 type no-route",
            "reject with icmpv6 type addr-unreachable", "reject with icmpv6 type port-unreachable")
REJECTS_INET = ("reject", "reject with icmpx type admin-prohibited", "reject with icmpx type port-unreachable",
                "reject with icmpx type host-unreachable", "reject with icmpx type no-route")
NAT_STATEMENTS6 = {
    "prerouting": ("dnat to 2001:db8:2::2", "redirect to :9", "dnat to [2001:db8:1::2]:53"),
    "output": ("dnat to 2001:db8:2::2",),
    "postrouting": ("masquerade", "snat to 2001:db8:1::1", "masquerade to :2000-2010"),
    "input": ("snat to 2001:db8::1",),
}
NAT_STATEMENTS_INET = {
    "prerouting": ("dnat ip6 to 2001:db8:2::2", "dnat ip to 10.0.2.2", "redirect to :9"),
    "output": ("dnat ip6 to 2001:db8:2::2",),
    "postrouting": ("masquerade", "snat ip6 to 2001:db8:1::1", "masquerade to :2000-2010"),
    "input": ("snat ip to 10.0.0.1",),
}

COMMANDS6 = (
    "sysctl -w net.ipv6.conf.all.forwarding=0", "sysctl -w net.ipv6.conf.p1.forwarding=0",
    "sysctl -w net.ipv6.icmp.echo_ignore_all=1", "sysctl -w net.ipv6.icmp.echo_ignore_multicast=1",
    "sysctl -w net.ipv6.conf.all.hop_limit=32", "sysctl -w net.ipv6.conf.p0.hop_limit=32",
    "sysctl -w net.ipv6.conf.all.accept_source_route=1", "sysctl -w net.ipv6.conf.all.accept_ra=0",
    "ip -6 route add blackhole 2001:db8:9::/48", "ip -6 route add unreachable 2001:db8:9::/48",
    "ip -6 route add prohibit 2001:db8:8::/64", "ip -6 route add 2001:db8:8::/64 via 2001:db8:2::2",
    "ip -6 addr add 2001:db8:1::5/64 dev p1", "ip link set p2 mtu 1280",
    "sysctl -w net.ipv6.conf.p0.disable_ipv6=1",
)
LISTENERS6 = ("tcp6 22", "tcp6 80")

SOURCES6 = ("host", "host", "2001:db8:1::2", "2001:db8:9::7", "::", "::1", "ff02::1", "link-local")
DESTINATIONS6 = ("dut", "dut", "2001:db8:1::1", "2001:db8:1::2", "2001:db8:2::2", "2001:db8:9::1", "2001:db8:8::1",
                 "ff02::1", "ff02::2", "::1", "dut-link-local")


@st.composite
def l4_6(draw):
    kind = draw(st.sampled_from(("udp", "tcp", "icmpv6")))
    if kind == "udp":
        return UDP(sport=draw(st.sampled_from((1024, 53, 546))), dport=draw(st.sampled_from((53, 9, 7, 33434)))) / \
            draw(st.one_of(st.binary(max_size=40), st.sampled_from((300, 1300)).map(bytes)))  # over a 1280 MTU
    if kind == "tcp":
        return TCP(sport=draw(st.sampled_from((40000, 22))), dport=draw(st.sampled_from((22, 80, 9))),
                   flags=draw(st.sampled_from(("S", "S", "SA", "A", "R", "FA", "PA"))),
                   seq=draw(st.integers(0, 2**32 - 1)), ack=draw(st.integers(0, 2**32 - 1)))
    which = draw(st.sampled_from(("echo-request", "echo-request", "echo-reply", "unreachable", "too-big")))
    if which == "echo-request":
        return ICMPv6EchoRequest(id=7, seq=1, data=draw(st.binary(max_size=24)))
    if which == "echo-reply":
        return ICMPv6EchoReply(id=7, seq=1)
    quote = bytes(IPv6(src="2001:db8::1", dst="2001:db8:1::2", hlim=63) / UDP(sport=9, dport=53))
    error = ICMPv6DestUnreach(code=draw(st.sampled_from((0, 1, 3, 4)))) if which == "unreachable" else \
        ICMPv6PacketTooBig(mtu=1280)
    return error / quote


EXTENSIONS = (None,) * 6 + ("hbh", "hbh-router-alert", "dst", "dst-unknown", "frag-atomic", "frag-first",
                            "frag-later", "rh0", "rh0-done", "rh2")


def _extension(name: str | None, draw):
    if name == "hbh":
        return IPv6ExtHdrHopByHop(options=[PadN(optdata=b"\0\0\0\0")])
    if name == "hbh-router-alert":
        return IPv6ExtHdrHopByHop(options=[RouterAlert(value=0)])
    if name == "dst":
        return IPv6ExtHdrDestOpt(options=[PadN(optdata=b"\0\0\0\0")])
    if name == "dst-unknown":  # action bits 01, 10 or 11 (ip6_tlvopt_unknown())
        return IPv6ExtHdrDestOpt(options=[HBHOptUnknown(otype=draw(st.sampled_from((0x5E, 0x9E, 0xDE))),
                                                        optdata=b"\0\0"), PadN(optdata=b"")])
    if name and name.startswith("frag"):
        offset, more = {"frag-atomic": (0, 0), "frag-first": (0, 1), "frag-later": (8, 0)}[name]
        return IPv6ExtHdrFragment(offset=offset, m=more, id=draw(st.integers(1, 0xFFFF)))
    if name in ("rh0", "rh0-done"):  # type 0, deprecated (RFC 5095): segments left 1 or 0
        return IPv6ExtHdrRouting(type=0, segleft=1 if name == "rh0" else 0, addresses=["2001:db8:2::2"])
    if name == "rh2":
        return IPv6ExtHdrRouting(type=2, segleft=1, addresses=["2001:db8:2::2"])
    return None


CORRUPTIONS6 = ("none",) * 6 + ("truncate", "payload_length", "chain_cut", "version")


@st.composite
def frames6(draw, host: Host) -> bytes:
    src = draw(st.sampled_from(SOURCES6))
    dst = draw(st.sampled_from(DESTINATIONS6))
    ip = IPv6(src={"host": host.ip6, "link-local": host.ll6}.get(src, src),
              dst={"dut": host.dut_ip6, "dut-link-local": host.dut_ll6}.get(dst, dst),
              hlim=draw(st.sampled_from((64, 64, 1, 0, 2, 255))), tc=draw(st.sampled_from((0, 0, 0, 0xB8, 0x03))))
    extension = _extension(draw(st.sampled_from(EXTENSIONS)), draw)
    packet = Ether(src=host.mac, dst=host.port.mac) / ip / (extension / draw(l4_6()) if extension else draw(l4_6()))
    frame = bytearray(bytes(packet))
    corruption = draw(st.sampled_from(CORRUPTIONS6))
    if corruption == "truncate":
        frame = frame[:draw(st.integers(14, len(frame) - 1))]
    elif corruption == "payload_length":
        payload = len(frame) - 54
        frame[18:20] = draw(st.sampled_from((0, payload + 8, max(payload - 1, 0), 0xFFFF))).to_bytes(2, "big")
    elif corruption == "chain_cut":  # the last header's next header promised, the frame ends before it
        frame = frame[:54 + draw(st.sampled_from((0, 8))) if extension is not None else 54]
        frame[18:20] = (len(frame) - 54).to_bytes(2, "big")
        if extension is None:
            frame[20] = draw(st.sampled_from((0, 43, 44, 60, 6)))
    elif corruption == "version":
        frame[14] = (draw(st.sampled_from((4, 5))) << 4) | (frame[14] & 0xF)
    return bytes(frame)
