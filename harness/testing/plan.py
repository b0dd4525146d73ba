"""The suites' addressing plan: one host on the wire of each DUT port.

    host h0 10.0.0.2 --- t0 | p0 10.0.0.1 ┐
    host h1 10.0.1.2 --- t1 | p1 10.0.1.1 ├ DUT
    host h2 10.0.2.2 --- t2 | p2 10.0.2.1 ┘

and for the IPv6 suites (`ipv6_on()`, the `hosts6`/`router6` fixtures), on the
same wires: host hN 2001:db8:N::2 and the DUT 2001:db8:N::1 (/64), and each
side's link-local address fe80::ff:fe00:X, EUI-64 of its fixed MAC.

Expected frames are written out literally from this plan: what Linux must send,
not what the code under test computes.
"""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from scapy.layers.inet import ICMP, IP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Ether

from harness.packets import Mask
from harness.target import Port, Target
from harness.testing.masks import auto_flowlabel_mask, icmp_socket_mask, quoted, quoted6


@dataclass(frozen=True)
class Host:
    """A host on the wire of `port`, in the subnet 10.0.<index>.0/24."""

    port: Port

    @property
    def ip(self) -> str:
        return f"10.0.{self.port.index}.2"

    @property
    def dut_ip(self) -> str:
        return f"10.0.{self.port.index}.1"

    @property
    def mac(self) -> str:
        return self.port.peer_mac

    def to_dut(self, **ip_fields) -> Ether:
        """Ether/IP from this host to the DUT's MAC; IP fields default to host -> DUT."""
        fields = {"src": self.ip, "dst": self.dut_ip, **ip_fields}
        return Ether(src=self.mac, dst=self.port.mac) / IP(**fields)

    def from_dut(self, **ip_fields) -> Ether:
        """Ether/IP as the DUT sends it to this host."""
        return Ether(src=self.port.mac, dst=self.mac) / IP(**ip_fields)

    @property
    def ip6(self) -> str:
        """2001:db8:N::2, in the compressed form listings print."""
        return str(ipaddress.IPv6Address(f"2001:db8:{self.port.index}::2"))

    @property
    def dut_ip6(self) -> str:
        return str(ipaddress.IPv6Address(f"2001:db8:{self.port.index}::1"))

    @property
    def ll6(self) -> str:
        """The host's link-local address (EUI-64 of its MAC)."""
        return eui64_link_local(self.mac)

    @property
    def dut_ll6(self) -> str:
        """The DUT port's link-local address, which ipv6_on() gives it."""
        return eui64_link_local(self.port.mac)

    def to_dut6(self, **ipv6_fields) -> Ether:
        """Ether/IPv6 from this host to the DUT's MAC; fields default to host -> DUT."""
        fields = {"src": self.ip6, "dst": self.dut_ip6, **ipv6_fields}
        return Ether(src=self.mac, dst=self.port.mac) / IPv6(**fields)

    def from_dut6(self, **ipv6_fields) -> Ether:
        """Ether/IPv6 as the DUT sends it to this host."""
        return Ether(src=self.port.mac, dst=self.mac) / IPv6(**ipv6_fields)

    def icmp_error(self, icmp_type: int, code: int, about, **icmp_fields) -> Mask:
        """The ICMP error Linux sends this host about the IP packet in `about`:
        from the DUT's address on this port (the route back picks it), TOS
        precedence internetcontrol (0xC0), TTL 64, no DF, quoting the packet."""
        reply = self.from_dut(src=self.dut_ip, dst=self.ip, tos=0xC0, ttl=64, flags=0) / \
            ICMP(type=icmp_type, code=code, **icmp_fields) / quoted(about)
        return icmp_socket_mask(reply)


    def icmp6_error(self, icmp, about) -> Mask:
        """The ICMPv6 error (`icmp`, a scapy ICMPv6 error layer) Linux sends this
        host about the IPv6 packet in `about`: from the DUT's address on this
        port (ipv6_dev_get_saddr() on the receiving device), hop limit 64, an
        automatic flow label, quoting the packet."""
        return auto_flowlabel_mask(self.from_dut6(src=self.dut_ip6, dst=self.ip6, hlim=64) / icmp / quoted6(about))


IP_FORWARD_ON = "sysctl -w net.ipv4.ip_forward=1"
IPV6_FORWARD_ON = "sysctl -w net.ipv6.conf.all.forwarding=1"


def eui64_link_local(mac: str) -> str:
    """fe80::/64 and the modified EUI-64 of `mac` (RFC 4291 appendix A)."""
    octets = bytes.fromhex(mac.replace(":", ""))
    eui = bytes([octets[0] ^ 0x02]) + octets[1:3] + b"\xff\xfe" + octets[3:]
    return str(ipaddress.IPv6Address(b"\xfe\x80" + bytes(6) + eui))


def ipv6_on(target: Target) -> None:
    """IPv6 on for the DUT (lo and its ports) as the IPv6 suites have it: no
    duplicate address detection and no router solicitations on any port or device
    a test creates (set while IPv6 is still off, then all.disable_ipv6=0), so the
    ports get their link-local addresses at once and say nothing on their own but
    MLD reports, which no target shows (the mock models no MLD; the labs' captures
    leave them out). lo needs neither key: a loopback device never runs DAD nor
    solicits routers (net/ipv6/addrconf.c addrconf_dad_begin(),
    addrconf_dad_completed()), and a lab DUT refuses commands on its lo. The tester
    ports keep IPv6 off and stay silent."""
    quiet = [f"net.ipv6.conf.{scope}.{name}=0" for scope in ("all", "default", *(p.name for p in target.ports))
             for name in ("accept_dad", "router_solicitations")]
    target.sh(["sysctl", "-q", "-w", *quiet])
    target.sh("sysctl -q -w net.ipv6.conf.all.disable_ipv6=0")


def plan_hosts(target: Target) -> list[Host]:
    """Build the plan on `target`: the DUT's address on p0..p2 and a permanent
    neighbour entry for each host h0..h2 (static, so that no test depends on ARP
    timing unless it is about ARP). The `hosts` fixture; `journey trace --plan hosts`."""
    out = []
    for port in target.ports:
        host = Host(port)
        target.sh(f"ip addr add {host.dut_ip}/24 dev {port.name}")
        target.sh(f"ip neigh replace {host.ip} lladdr {host.mac} dev {port.name} nud permanent")
        out.append(host)
    return out


def plan_router(target: Target) -> list[Host]:
    """plan_hosts(), with IPv4 forwarding on: the `router` fixture."""
    hosts = plan_hosts(target)
    target.sh(IP_FORWARD_ON)
    return hosts


def plan_hosts6(target: Target) -> list[Host]:
    """The IPv6 plan on a DUT with IPv6 on: 2001:db8:N::1/64 on pN and a
    permanent neighbour entry for each host's global address. The `hosts6` fixture."""
    out = []
    for port in target.ports:
        host = Host(port)
        target.sh(f"ip -6 addr add {host.dut_ip6}/64 dev {port.name}")
        target.sh(f"ip -6 neigh replace {host.ip6} lladdr {host.mac} dev {port.name} nud permanent")
        out.append(host)
    return out


def bridge_up(target: Target, *options: str, ports: tuple[str, ...] = ("p0", "p1", "p2")) -> None:
    """br0 over `ports`, up, with no address. Multicast snooping is off unless
    `options` turn it on: a snooping bridge joins groups and reports them
    itself (br_multicast_join_snoopers()), frames a test did not send."""
    target.sh(" ".join(("ip link add br0 type bridge mcast_snooping 0", *options)))
    for port in ports:
        target.sh(f"ip link set dev {port} master br0")
    target.sh("ip link set dev br0 up")


def forward(target: Target, src_host: Host, dst_host: Host, l4, **ip_fields) -> bytes:
    """Send `l4` from src_host's wire to dst_host through the DUT; return the
    forwarded frame (the DUT decrements the TTL, nothing else changes)."""
    fields = {"dst": dst_host.ip, "id": 7, **ip_fields}
    sent = src_host.to_dut(**fields) / l4
    target.send(src_host.port, sent)
    left = dst_host.from_dut(**{**fields, "src": fields.get("src", src_host.ip), "ttl": sent[IP].ttl - 1}) / l4
    return target.expect(dst_host.port, left)
