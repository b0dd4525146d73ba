"""What every `ip` object shares, after iproute2 6.1's lib/: utils.c (matches(),
the invarg()/duparg2() messages, get_prefix()/get_addr()), rt_names.c (the
names of tables, protocols, scopes and route types, as /etc/iproute2 has them)
and json_print.c (one code path printing either text or JSON).
"""
from __future__ import annotations

import json
import socket
from dataclasses import dataclass

from harness.mockkernel.cmd.args import Args, ToolError, c_uint
from harness.mockkernel.net import RouteType, prefix_mask

INCOMPLETE = ToolError('Command line is not complete. Try option "help"', 255)
INFINITY_LIFE_TIME = 0xFFFFFFFF

TABLE_IDS = {"unspec": 0, "default": 253, "main": 254, "local": 255}
PROTOCOLS = {0: "unspec", 1: "redirect", 2: "kernel", 3: "boot", 4: "static", 8: "gated", 9: "ra",
             10: "mrt", 11: "zebra", 12: "bird", 13: "dnrouted", 14: "xorp", 15: "ntk", 16: "dhcp",
             18: "keepalived", 42: "babel", 99: "openr", 186: "bgp", 187: "isis", 188: "ospf",
             189: "rip", 192: "eigrp"}
SCOPES = {0: "global", 200: "site", 253: "link", 254: "host", 255: "nowhere"}
# rtnl_rtntype_a2n(): keyword, whether a prefix of it is enough (matches()), the type it names
ROUTE_TYPE_KEYWORDS = (("local", False, RouteType.RTN_LOCAL), ("nat", False, RouteType.RTN_NAT),
                       ("broadcast", True, RouteType.RTN_BROADCAST), ("brd", False, RouteType.RTN_BROADCAST),
                       ("anycast", True, RouteType.RTN_ANYCAST), ("multicast", True, RouteType.RTN_MULTICAST),
                       ("prohibit", True, RouteType.RTN_PROHIBIT), ("unreachable", True, RouteType.RTN_UNREACHABLE),
                       ("blackhole", True, RouteType.RTN_BLACKHOLE), ("xresolve", True, RouteType.RTN_XRESOLVE),
                       ("unicast", True, RouteType.RTN_UNICAST), ("throw", False, RouteType.RTN_THROW))


@dataclass
class IpOptions:
    """ip's global options (ip.c): -4, -6, -s (counted), -d, -j, -br."""

    inet_only: bool = False
    inet6_only: bool = False
    stats: int = 0
    details: bool = False
    json: bool = False
    brief: bool = False


def args(tokens: list[str]) -> Args:
    return Args(tokens, INCOMPLETE)


def matches(token: str, keyword: str) -> bool:
    """iproute2 matches() (lib/utils.c): `token` is a prefix of `keyword`; an empty
    token matches nothing (`ip ""` is 'Object "" is unknown')."""
    return bool(token) and keyword.startswith(token)


def parse_on_off(keyword: str, value: str, status: int) -> bool:
    """parse_on_off() (lib/utils.c parse_one_of()): a prefix of "off" or "on", in that
    order; anything else is the tool's error, exiting with `status` (the caller's)."""
    for index, name in enumerate(("off", "on")):
        if matches(value, name):
            return bool(index)
    raise ToolError(f'Error: argument of "{keyword}" must be one of "off", "on", not "{value}"', status)


def invarg(message: str, arg: str) -> ToolError:
    return ToolError(f'Error: argument "{arg}" is wrong: {message}', 255)


def duparg(key: str, arg: str) -> ToolError:
    return ToolError(f'Error: duplicate "{key}": "{arg}" is the second value.', 255)


def duparg2(key: str, arg: str) -> ToolError:
    return ToolError(f'Error: either "{key}" is duplicate, or "{arg}" is a garbage.', 255)


def unknown_command(verb: str, obj: str) -> ToolError:
    return ToolError(f'Command "{verb}" is unknown, try "ip {obj} help".', 255)


def no_device(name: str) -> ToolError:
    return ToolError(f'Cannot find device "{name}"', 1)


def device(net, name: str):
    dev = net.dev_by_name(name)
    if dev is None:
        raise no_device(name)
    return dev


def _ipv4(text: str) -> int | None:
    """get_addr_ipv4(): up to four base-0 numbers, missing ones are zero."""
    parts = text.split(".")
    if len(parts) > 4:
        return None
    values = [c_uint(p) for p in parts]
    if any(v is None or v > 255 for v in values):
        return None
    values += [0] * (4 - len(values))
    return int.from_bytes(bytes(values), "big")


def _plen(text: str) -> int | None:
    """get_netmask(): a length, or a dotted mask with contiguous ones."""
    if "." in text:
        mask = _ipv4(text)
        ones = bin(mask).count("1") if mask is not None else -1
        return ones if ones >= 0 and prefix_mask(ones) == mask else None
    value = c_uint(text)
    return value if value is not None and value <= 32 else None


def get_prefix(text: str, family: str = "any valid") -> tuple[int, int]:
    """get_prefix(): "default", "all" and "any" are 0/0; no length means /32."""
    if text in ("default", "all", "any"):
        return 0, 0
    addr, slash, length = text.partition("/")
    value, plen = _ipv4(addr), _plen(length) if slash else 32
    if value is None or plen is None:
        raise ToolError(f'Error: {family} prefix is expected rather than "{text}".', 1)
    return value, plen


def _ipv6(text: str) -> bytes | None:
    """inet_pton(AF_INET6)."""
    try:
        return socket.inet_pton(socket.AF_INET6, text)
    except OSError:
        return None


def inet6_ntoa(addr: bytes) -> str:
    """inet_ntop(AF_INET6): the compressed form ip prints."""
    return socket.inet_ntop(socket.AF_INET6, addr)


def is_inet6(text: str) -> bool:
    """get_addr_1()'s test for an IPv6 address: it has a colon."""
    return ":" in text


def get_prefix6(text: str, family: str = "any valid") -> tuple[bytes, int]:
    """get_prefix() for AF_INET6: "default", "all" and "any" are ::/0; no length means /128."""
    if text in ("default", "all", "any"):
        return bytes(16), 0
    addr, slash, length = text.partition("/")
    value = _ipv6(addr)
    plen = c_uint(length) if slash else 128
    if value is None or plen is None or plen > 128:
        raise ToolError(f'Error: {family} prefix is expected rather than "{text}".', 1)
    return value, plen


def get_addr6(text: str, family: str = "any valid") -> bytes:
    value = _ipv6(text)
    if value is None:
        raise ToolError(f'Error: {family} address is expected rather than "{text}".', 1)
    return value


def get_addr(text: str, family: str = "any valid") -> int:
    value = 0 if text in ("default", "all", "any") else _ipv4(text)
    if value is None:
        raise ToolError(f'Error: {family} address is expected rather than "{text}".', 1)
    return value


def ll_addr(text: str) -> bytes:
    """ll_addr_a2n(): hex bytes separated by colons."""
    parts = text.split(":")
    values = [c_uint(p, 16) if 0 < len(p) <= 2 else None for p in parts]
    if any(v is None for v in values):
        raise ToolError(f'"{text}" is invalid lladdr.', 1)
    return bytes(values)


def table_id(text: str) -> int | None:
    """rtnl_rttable_a2n()."""
    return TABLE_IDS[text] if text in TABLE_IDS else c_uint(text)


def table_name(tid: int) -> str:
    return next((name for name, value in TABLE_IDS.items() if value == tid), str(tid))


def protocol_id(text: str) -> int | None:
    value = next((k for k, name in PROTOCOLS.items() if name == text), None)
    if value is None:
        value = c_uint(text)
    return value if value is not None and value < 256 else None


def protocol_name(name_or_number: str) -> str:
    """The stored protocol ("kernel", "boot", "42") as ip prints it ("babel")."""
    number = protocol_id(name_or_number)
    return PROTOCOLS.get(number, name_or_number)


def scope_id(text: str) -> int | None:
    value = next((k for k, name in SCOPES.items() if name == text), None)
    if value is None:
        value = c_uint(text)
    return value if value is not None and value < 256 else None


def scope_name(scope: int) -> str:
    return SCOPES.get(scope, str(scope))


def route_type(text: str) -> RouteType | None:
    """rtnl_rtntype_a2n(): the route type a keyword names, or None."""
    for keyword, prefix_ok, rtype in ROUTE_TYPE_KEYWORDS:
        if text == keyword or (prefix_ok and matches(text, keyword)):
            return rtype
    return None


class Printed:
    """One object as `ip` prints it: (JSON key, JSON value, text) fields, the way
    json_print.c's print_*(PRINT_ANY, key, fmt, value) calls build either form.
    A field with no key is text only; one with no text is JSON only."""

    def __init__(self) -> None:
        self.fields: list[tuple[str | None, object, str]] = []

    def add(self, key: str | None, value: object, text: str = "") -> Printed:
        self.fields.append((key, value, text))
        return self

    def text(self) -> str:
        return "".join(text for _, _, text in self.fields)

    def as_json(self) -> dict:
        return {key: value for key, value, _ in self.fields if key is not None}


def render(objects: list[Printed], opts: IpOptions) -> str:
    if opts.json:
        return json.dumps([o.as_json() for o in objects], separators=(",", ":")) + "\n"
    return "".join(o.text() for o in objects)


def get_value(tokens, parse, message: str):
    """The next token through `parse`; "invalid argument" naming it when that fails."""
    value = tokens.pop()
    parsed = parse(value)
    if parsed is None:
        raise invarg(message, value)
    return parsed
