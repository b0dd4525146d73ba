"""nft's data types (nftables src/datatype.c, proto.c, meta.c, ct.c, fib.c).

A `Datatype` turns a symbol of the nft language into the integer the kernel
compares (`parse`) and prints a value back the way `nft list` does (`format`).
Values are host-order integers; `ifname` values are strings. Symbolic types
(icmp types, ct states, DSCP classes...) fall back to plain numbers as nft's
do; bitmask types (tcp flags, ct state/status) print as comma lists of their
bits. A parse error is `DatatypeError` with nft's own message; the parser adds
the location.
"""
from __future__ import annotations

import ipaddress
import re
import socket
import string
from contextvars import ContextVar

# include/uapi/linux/netfilter/nf_tables.h byte orders: payload fields are big endian
BIG, HOST = "big", "host"


# nft -p, --numeric-protocol: set while a listing is printed (octx->flags)
NUMERIC_PROTO: ContextVar[bool] = ContextVar("NUMERIC_PROTO", default=False)


class DatatypeError(Exception):
    """nft's evaluation error for a symbol of this type (message only)."""


class Datatype:
    """One nft data type. `size` is in bits (a payload or register width)."""

    bitmask = False
    prefix_ok = False  # values may be written and printed as address/prefix

    def __init__(self, name: str, size: int, desc: str, byteorder: str = BIG):
        self.name, self.size, self.desc, self.byteorder = name, size, desc, byteorder

    def __repr__(self) -> str:
        return f"<datatype {self.name}>"

    def __deepcopy__(self, memo):  # descriptors are shared, never copied
        return self

    @property
    def max(self) -> int:
        return (1 << self.size) - 1

    def parse(self, text: str | int) -> int:
        if isinstance(text, int):
            return self.check_range(text)
        return self.check_range(self.parse_symbol(text))

    def parse_symbol(self, text: str) -> int:
        value = parse_integer(text)
        if value is None:
            raise DatatypeError(f"Could not parse {self.desc}")
        return value

    def check_range(self, value: int) -> int:
        if value > self.max:
            raise DatatypeError(f"Value {value} exceeds valid range 0-{self.max}")
        return value

    def format(self, value) -> str:
        return str(value)

    def format_numeric(self, value) -> str:
        """How a range prints it (range_expr_print() sets NFT_CTX_OUTPUT_NUMERIC_ALL):
        only symbolic types print otherwise then."""
        return self.format(value)


def parse_integer(text: str) -> int | None:
    """strtoull(text, NULL, 0) of a whole token, as the scanner reads numbers."""
    try:
        if text[:2].lower() == "0x":
            return int(text[2:], 16)
        if len(text) > 1 and text[0] == "0":
            return int(text[1:], 8)
        return int(text, 10) if text.isdigit() else None
    except ValueError:
        return None


class IntegerType(Datatype):
    def parse_symbol(self, text: str) -> int:
        value = parse_integer(text)
        if value is None:
            raise DatatypeError("Could not parse integer")
        return value


class MarkType(Datatype):
    """Packet and conntrack marks print as 0x%08x."""

    def parse_symbol(self, text: str) -> int:
        value = parse_integer(text)
        if value is None:
            raise DatatypeError("Could not parse packet mark")
        return value

    def format(self, value) -> str:
        return f"0x{value:08x}"


class TcHandleType(Datatype):
    """`classid` (meta priority): MAJ:MIN in hex, `root` or `none`
    (tchandle_type_parse/print in nft's meta.c)."""

    SYMBOLS = {"root": 0xFFFFFFFF, "none": 0}

    def parse_symbol(self, text: str) -> int:
        if text in self.SYMBOLS:
            return self.SYMBOLS[text]
        major, colon, minor = text.partition(":")
        try:
            if not colon:
                raise ValueError
            value = (int(major or "0", 16) << 16) | int(minor or "0", 16)
        except ValueError:
            raise DatatypeError("Could not parse TC handle") from None
        if int(major or "0", 16) > 0xFFFF or int(minor or "0", 16) > 0xFFFF:
            raise DatatypeError("Could not parse TC handle")
        return value

    def format(self, value) -> str:
        names = {v: k for k, v in self.SYMBOLS.items()}
        return names.get(value) or f"{value >> 16:x}:{value & 0xFFFF:x}"


class SymbolicType(Datatype):
    """A symbol table over an integer base (symbol_parse / symbolic_constant_print)."""

    def __init__(self, name: str, size: int, desc: str, symbols: dict[str, int],
                 error: str | None = None, byteorder: str = BIG):
        super().__init__(name, size, desc, byteorder)
        self.symbols = symbols
        self.names = {}
        for symbol, value in symbols.items():
            self.names.setdefault(value, symbol)
        self.error = error or f"Could not parse {desc}"

    def parse_symbol(self, text: str) -> int:
        if text in self.symbols:
            return self.symbols[text]
        value = parse_integer(text)
        if value is None:
            raise DatatypeError(self.error)
        return value

    hex_digits = 0  # the type's basefmt (`0x%.4Zx`): its numbers print in hex

    def format(self, value) -> str:
        name = self.names.get(value)  # symbolic_constant_print(): else the base type's, with its basefmt
        return name if name is not None else self.format_numeric(value)

    def format_numeric(self, value) -> str:
        return f"0x{value:0{self.hex_digits}x}" if self.hex_digits else str(value)


class BitmaskType(SymbolicType):
    """Flags: one symbol per bit; a value prints as its bits, lowest first."""

    bitmask = True

    def format(self, value) -> str:
        if value in self.names:
            return self.names[value]
        bits = [self.names.get(1 << i, f"0x{1 << i:x}") for i in range(self.size) if value >> i & 1]
        return ",".join(bits) if bits else "0x0"

    def bit_names(self, value) -> list[str]:
        return [self.names.get(1 << i, f"0x{1 << i:x}") for i in range(self.size) if value >> i & 1]

    def format_symbol(self, value) -> str:
        """symbolic_constant_print(): one symbol, else the number (`tcp flags == 0x12`)."""
        return self.names.get(value, f"0x{value:x}")

    def format_element(self, value) -> str:
        """A set element: the flags OR-ed (`syn | ack`), as nft delinearizes it."""
        return self.names.get(value) or " | ".join(self.bit_names(value)) or "0x0"


class Ipv4AddrType(Datatype):
    prefix_ok = True

    def parse_symbol(self, text: str) -> int:
        try:
            return int(ipaddress.IPv4Address(text))
        except ValueError:
            pass
        try:  # nft resolves host names with getaddrinfo(), so does the mock
            infos = socket.getaddrinfo(text, None, socket.AF_INET)
        except socket.gaierror as err:
            raise DatatypeError(f"Could not resolve hostname: {err.strerror}") from None
        except (UnicodeError, ValueError):  # a name Python's IDNA codec refuses: getaddrinfo(3) finds no such name
            raise DatatypeError("Could not resolve hostname: Name or service not known") from None
        return int(ipaddress.IPv4Address(infos[0][4][0]))

    def format(self, value) -> str:
        return str(ipaddress.IPv4Address(value))


class EtherAddrType(Datatype):
    """Link-layer addresses (src/datatype.c lladdr_type): colon-separated hex
    bytes, printed as %02x each."""

    prefix_ok = True

    def parse(self, text: str | int) -> int:
        if isinstance(text, int):  # a number is no address to lladdr_type_parse()
            raise DatatypeError("Invalid LL address")
        return super().parse(text)

    def parse_symbol(self, text: str) -> int:
        octets = text.split(":")
        if len(octets) == 6 and all(1 <= len(o) <= 2 and all(c in string.hexdigits for c in o) for o in octets):
            return int("".join(o.zfill(2) for o in octets), 16)
        raise DatatypeError("Invalid LL address")

    def format(self, value) -> str:
        return ":".join(f"{b:02x}" for b in value.to_bytes(6, "big"))


class Ipv6AddrType(Datatype):
    prefix_ok = True

    def parse_symbol(self, text: str) -> int:
        try:
            return int(ipaddress.IPv6Address(text))
        except ValueError:
            pass
        try:  # getaddrinfo() as nft: an IPv4 address is "Address family for hostname not supported"
            infos = socket.getaddrinfo(text, None, socket.AF_INET6)
        except socket.gaierror as err:
            raise DatatypeError(f"Could not resolve hostname: {err.strerror}") from None
        except (UnicodeError, ValueError):  # a name Python's IDNA codec refuses: getaddrinfo(3) finds no such name
            raise DatatypeError("Could not resolve hostname: Name or service not known") from None
        return int(ipaddress.IPv6Address(infos[0][4][0].split("%")[0]))

    def format(self, value) -> str:
        """inet_ntop() as glibc writes it: the longest zero run compressed,
        and an IPv4-compatible (::a.b.c.d, the zero run exactly the first six
        words) or IPv4-mapped (::ffff:a.b.c.d) address's last 32 bits dotted."""
        if value >> 32 == 0xFFFF:
            return f"::ffff:{ipaddress.IPv4Address(value & 0xFFFFFFFF)}"
        if value >> 32 == 0 and value >> 16 and value > 0xFFFF:
            return f"::{ipaddress.IPv4Address(value)}"
        return str(ipaddress.IPv6Address(value))


class InetServiceType(Datatype):
    """Ports: numbers or /etc/services names, printed as numbers (nft without -S)."""

    def parse_symbol(self, text: str) -> int:
        value = parse_integer(text)
        if value is not None:
            return value
        if text.isascii() and text.isdigit():  # `08`, no number to nft's scanner: getaddrinfo() reads it in base 10
            return int(text)
        try:
            return socket.getservbyname(text, "tcp")
        except OSError:
            raise DatatypeError("Could not resolve service: Servname not supported for ai_socktype") from None

    def check_range(self, value: int) -> int:
        if value > 0xFFFF:
            raise DatatypeError("Service out of range")
        return value


# the /etc/protocols names nft prints (getprotobynumber)
PROTOCOLS = {"ip": 0, "icmp": 1, "igmp": 2, "ggp": 3, "ipencap": 4, "st": 5, "tcp": 6, "egp": 8, "igp": 9,
             "pup": 12, "udp": 17, "hmp": 20, "xns-idp": 22, "rdp": 27, "iso-tp4": 29, "dccp": 33, "xtp": 36,
             "ddp": 37, "idpr-cmtp": 38, "ipv6": 41, "ipv6-route": 43, "ipv6-frag": 44, "idrp": 45, "rsvp": 46,
             "gre": 47, "esp": 50, "ah": 51, "skip": 57, "ipv6-icmp": 58, "ipv6-nonxt": 59, "ipv6-opts": 60,
             "rspf": 73, "vmtp": 81, "eigrp": 88, "ospf": 89, "ipip": 94, "encap": 98, "pim": 103, "ipcomp": 108,
             "vrrp": 112, "l2tp": 115, "isis": 124, "sctp": 132, "mobility-header": 135, "udplite": 136,
             "mpls-in-ip": 137, "manet": 138, "hip": 139, "shim6": 140, "rohc": 142, "ethernet": 143,
             # parser_bison.y primary_rhs_expr: header keywords that are protocol constants
             "comp": 108, "icmpv6": 58}


class InetProtoType(SymbolicType):
    """inet_protocol_type: names as /etc/protocols has them; `nft -p`
    (NFT_CTX_OUTPUT_NUMERIC_PROTO) prints the numbers."""

    def check_range(self, value: int) -> int:
        if value > self.max:  # inet_protocol_type_parse()
            raise DatatypeError("Protocol out of range")
        return value

    def format(self, value) -> str:
        return str(value) if NUMERIC_PROTO.get() else super().format(value)

    def check_range(self, value: int) -> int:
        if value > self.max:  # inet_protocol_type_parse()
            raise DatatypeError("Protocol out of range")
        return value

    def parse_symbol(self, text: str) -> int:
        if text in self.symbols:
            return self.symbols[text]
        value = parse_integer(text)
        if value is not None:
            return value
        try:
            return socket.getprotobyname(text)
        except OSError:
            raise DatatypeError("Could not resolve protocol name") from None


class IfnameType(Datatype):
    """Interface names compare as strings; a trailing `*` matches a prefix.
    nft's expr_evaluate_string() refuses an empty one and one longer than the
    type's 16 bytes."""

    def parse_symbol(self, text: str) -> str:
        if len(text.encode()) > self.size // 8:
            raise DatatypeError(f"String exceeds maximum length of {self.size // 8}")
        if not text:
            raise DatatypeError("Empty string is not allowed")
        return text

    def check_range(self, value):
        return value

    def format(self, value) -> str:
        return f'"{value}"'


class IfaceIndexType(Datatype):
    """`iif`/`oif`: a device name resolved to its index when the rule is
    added (nft fails on a missing device), printed back by name."""

    def __init__(self, devices: dict[str, int]):
        super().__init__("iface_index", 32, "network interface index", HOST)
        self.devices = devices
        self.names = {index: name for name, index in devices.items()}

    def parse_symbol(self, text: str) -> int:
        if text not in self.devices:
            raise DatatypeError("Interface does not exist")
        return self.devices[text]

    def format(self, value) -> str:  # ifindex_type_print(): a number when no device has the index
        name = self.names.get(value)
        return str(value) if name is None else f'"{name}"'


class TimeType(Datatype):
    """time_type (src/datatype.c): milliseconds, host order, 32 bits; written
    `1d2h3m4s5ms` (time_parse(): a bare number is seconds), printed by
    time_print() (only seconds, `60s`, inside a range: range_expr_print()
    prints with NFT_CTX_OUTPUT_NUMERIC_ALL), seconds in JSON."""

    def parse(self, text: str | int) -> int:
        if isinstance(text, int):
            return self.check_range(text * 1000)
        return self.check_range(self.parse_symbol(text))

    def parse_symbol(self, text: str) -> int:
        units = {"d": 86400000, "h": 3600000, "m": 60000, "s": 1000, "ms": 1}
        if text.isdigit():
            return int(text) * 1000
        total, seen = 0, set()
        for number, unit in re.findall(r"(\d+)(ms|d|h|m|s)", text):
            if unit in seen:
                raise DatatypeError(f"{TIME_UNIT_NAMES[unit]} has been specified twice")
            seen.add(unit)
            total += int(number) * units[unit]
        if not seen or re.sub(r"\d+(ms|d|h|m|s)", "", text):
            raise DatatypeError("wrong time format")
        return total

    def check_range(self, value: int) -> int:
        if value > 0xFFFFFFFF:
            raise DatatypeError("value too large")
        return value

    def format(self, value) -> str:
        ms, out = value, ""
        for unit, size in (("d", 86400000), ("h", 3600000), ("m", 60000), ("s", 1000), ("ms", 1)):
            if ms >= size:
                out += f"{ms // size}{unit}"
                ms %= size
        return out

    def format_numeric(self, value) -> str:
        return f"{value // 1000}s"

    def json_value(self, value) -> int:
        return value // 1000


TIME_UNIT_NAMES = {"d": "Day", "h": "Hour", "m": "Minute", "s": "Second", "ms": "Millisecond"}


class StringType(Datatype):
    """string_type (src/datatype.c): a quoted string of at most `size` bits' bytes."""

    def parse(self, text: str | int) -> str:
        text = str(text)
        if not text:
            raise DatatypeError("Empty string is not allowed")
        if len(text) > self.size // 8:
            raise DatatypeError(f"String exceeds maximum length of {self.size // 8}")
        return text

    def format(self, value) -> str:
        return f'"{value}"'


integer = IntegerType("integer", 32, "integer", HOST)
ipv4_addr = Ipv4AddrType("ipv4_addr", 32, "IPv4 address")
ipv6_addr = Ipv6AddrType("ipv6_addr", 128, "IPv6 address")
inet_service = InetServiceType("inet_service", 16, "internet network service")
inet_proto = InetProtoType("inet_proto", 8, "Internet protocol", PROTOCOLS,
                           error="Could not resolve protocol name")
mark = MarkType("mark", 32, "packet mark", HOST)
classid = TcHandleType("classid", 32, "TC classid", HOST)
string_type = StringType("string", 16 * 8, "string", HOST)
ifname = IfnameType("ifname", 16 * 8, "network interface name", HOST)
ttl = IntegerType("integer", 8, "integer")
length16 = IntegerType("integer", 16, "integer")
boolean = SymbolicType("boolean", 1, "boolean type", {"exists": 1, "missing": 0}, byteorder=HOST)
icmp_type = SymbolicType("icmp_type", 8, "ICMP type", {
    "echo-reply": 0, "destination-unreachable": 3, "source-quench": 4, "redirect": 5,
    "echo-request": 8, "router-advertisement": 9, "router-solicitation": 10, "time-exceeded": 11,
    "parameter-problem": 12, "timestamp-request": 13, "timestamp-reply": 14, "info-request": 15,
    "info-reply": 16, "address-mask-request": 17, "address-mask-reply": 18})
icmp_code = SymbolicType("icmp_code", 8, "icmp code", {
    "net-unreachable": 0, "host-unreachable": 1, "prot-unreachable": 2, "port-unreachable": 3,
    "frag-needed": 4, "net-prohibited": 9, "host-prohibited": 10, "admin-prohibited": 13})
icmpv6_type = SymbolicType("icmpv6_type", 8, "ICMPv6 type", {
    "destination-unreachable": 1, "packet-too-big": 2, "time-exceeded": 3, "parameter-problem": 4,
    "echo-request": 128, "echo-reply": 129, "mld-listener-query": 130, "mld-listener-report": 131,
    "mld-listener-done": 132, "mld-listener-reduction": 132, "nd-router-solicit": 133, "nd-router-advert": 134,
    "nd-neighbor-solicit": 135, "nd-neighbor-advert": 136, "nd-redirect": 137, "router-renumbering": 138,
    "ind-neighbor-solicit": 141, "ind-neighbor-advert": 142, "mld2-listener-report": 143})
icmpv6_code = SymbolicType("icmpv6_code", 8, "icmpv6 code", {
    "no-route": 0, "admin-prohibited": 1, "addr-unreachable": 3, "port-unreachable": 4, "policy-fail": 5,
    "reject-route": 6})
# include/uapi/linux/netfilter/nf_tables.h enum nft_reject_inet_code
icmpx_code = SymbolicType("icmpx_code", 8, "icmpx code", {
    "port-unreachable": 1, "admin-prohibited": 3, "no-route": 0, "host-unreachable": 2})
ecn = SymbolicType("ecn", 2, "Explicit Congestion Notification", {"not-ect": 0, "ect1": 1, "ect0": 2, "ce": 3})
mh_type = SymbolicType("mh_type", 8, "Mobility Header Type", {
    "binding-refresh-request": 0, "home-test-init": 1, "careof-test-init": 2, "home-test": 3, "careof-test": 4,
    "binding-update": 5, "binding-acknowledgement": 6, "binding-error": 7, "fast-binding-update": 8,
    "fast-binding-acknowledgement": 9, "fast-binding-advertisement": 10, "experimental-mobility-header": 11,
    "home-agent-switch-message": 12})
dscp = SymbolicType("dscp", 6, "Differentiated Services Code Point", {
    "cs0": 0x00, "cs1": 0x08, "cs2": 0x10, "cs3": 0x18, "cs4": 0x20, "cs5": 0x28, "cs6": 0x30,
    "cs7": 0x38, "df": 0x00, "be": 0x00, "lephb": 0x01, "af11": 0x0a, "af12": 0x0c, "af13": 0x0e,
    "af21": 0x12, "af22": 0x14, "af23": 0x16, "af31": 0x1a, "af32": 0x1c, "af33": 0x1e,
    "af41": 0x22, "af42": 0x24, "af43": 0x26, "va": 0x2c, "ef": 0x2e})
tcp_flag = BitmaskType("tcp_flag", 8, "TCP flag", {
    "fin": 0x01, "syn": 0x02, "rst": 0x04, "psh": 0x08, "ack": 0x10, "urg": 0x20, "ecn": 0x40,
    "cwr": 0x80})
ct_state = BitmaskType("ct_state", 32, "conntrack state", {
    "invalid": 1, "established": 2, "related": 4, "new": 8, "untracked": 64}, byteorder=HOST)
ct_status = BitmaskType("ct_status", 32, "conntrack status", {
    "expected": 1, "seen-reply": 2, "assured": 4, "confirmed": 8, "snat": 16, "dnat": 32,
    "dying": 512}, byteorder=HOST)
ct_dir = SymbolicType("ct_dir", 8, "conntrack direction", {"original": 0, "reply": 1}, byteorder=HOST)
pkttype = SymbolicType("pkt_type", 8, "packet type", {
    "host": 0, "unicast": 0, "broadcast": 1, "multicast": 2, "other": 3}, byteorder=HOST)
nfproto = SymbolicType("nf_proto", 8, "netfilter protocol", {"ipv4": 2, "ipv6": 10}, byteorder=HOST)
fib_addrtype = SymbolicType("fib_addrtype", 32, "fib address type", {
    "unspec": 0, "unicast": 1, "local": 2, "broadcast": 3, "anycast": 4, "multicast": 5,
    "blackhole": 6, "unreachable": 7, "prohibit": 8}, byteorder=HOST)

# src/proto.c ethertype_tbl: 0x8100 prints as 8021q, `vlan` is its alias for input
ethertype = SymbolicType("ether_type", 16, "Ethernet protocol", {
    "ip": 0x0800, "arp": 0x0806, "ip6": 0x86DD, "8021q": 0x8100, "8021ad": 0x88A8, "vlan": 0x8100})
ether_addr = EtherAddrType("ether_addr", 48, "Ethernet address")
dscp.hex_digits, ecn.hex_digits, ethertype.hex_digits = 2, 1, 4  # src/proto.c basefmt
# src/proto.c arpop_tbl (include/uapi/linux/if_arp.h ARPOP_*)
arp_op = SymbolicType("arp_op", 16, "ARP operation", {
    "request": 1, "reply": 2, "rrequest": 3, "rreply": 4, "inrequest": 8, "inreply": 9, "nak": 10})

# types a named set or map may be declared with (`type X`)
SET_TYPES = {t.name: t for t in (ipv4_addr, ipv6_addr, inet_service, inet_proto, mark, ifname,
                                 icmp_type, icmp_code, icmpv6_type, icmpv6_code, mh_type, dscp, ecn, tcp_flag,
                                 ct_state, ct_status, ct_dir, pkttype, nfproto, fib_addrtype, arp_op)}


class ConcatType(Datatype):
    """A concatenation of types (`ipv4_addr . inet_service`), as a map's data:
    values are tuples, one per part (nft's concat_type_alloc())."""

    def __init__(self, parts: list):
        super().__init__(" . ".join(p.name for p in parts), sum(p.size for p in parts),
                         f"concatenation of ({', '.join(p.desc for p in parts)})")
        self.parts = parts

    def format(self, value) -> str:
        return " . ".join(range_text(p.base, *v) if isinstance(p, IntervalType) else p.format(v)
                          for p, v in zip(self.parts, value))


def prefix_len(dtype: Datatype, low: int, high: int) -> int | None:
    """The prefix length [low, high] is, if it is an aligned power-of-two
    block of an address type (how nft prints such a range)."""
    span = high - low + 1
    if dtype.prefix_ok and span & (span - 1) == 0 and low % span == 0:
        return dtype.size - span.bit_length() + 1
    return None


def range_text(dtype: Datatype, low: int, high: int) -> str:
    """An interval as nft prints it: a value, a prefix (addresses) or low-high."""
    if low == high:
        return dtype.format(low)
    plen = prefix_len(dtype, low, high)
    if plen is not None:
        return f"{dtype.format(low)}/{plen}"
    return f"{dtype.format_numeric(low)}-{dtype.format_numeric(high)}"


class IntervalType(Datatype):
    """`interval T`: a map's data that is a range of T (NAT maps giving an
    address range, NFTA_SET_DESC_CONCAT's interval data); values are
    (low, high) tuples."""

    def __init__(self, base: Datatype):
        super().__init__(f"interval {base.name}", base.size, base.desc, base.byteorder)
        self.base = base

    def format(self, value) -> str:
        """range_expr_to_prefix(): a map's single interval data lists an address
        as a prefix even when it is one address (`/32`); in a concatenation
        (ConcatType.format()) such a part lists as the value."""
        low, high = value
        if low == high and self.base.prefix_ok:
            return f"{self.base.format(low)}/{self.base.size}"
        return range_text(self.base, low, high)


def type_of(parts: list) -> Datatype:
    """One type, or the concatenation of several."""
    return parts[0] if len(parts) == 1 else ConcatType(parts)
