"""IPv4 options (net/ipv4/ip_options.c) on received, forwarded and answered packets.

ip_options_compile() checks a received header's options when ip_rcv_finish_core()
runs ip_rcv_options(): a malformed option is answered with a parameter problem
pointing at its byte and the packet is dropped (IP_INHDR, InHdrErrors); as it
parses, it records where the options are (IPCB(skb)->opt, here skb.cb["opt"]),
writes this host's address into a record route or timestamp-and-address option
(spec_dst) and zeroes what follows an end-of-list. ip_forward_options() writes the
outgoing address into the record route slot before the packet leaves;
ip_options_echo() gives an answer (ICMP echo reply or error, the control
socket's TCP RST or ACK: ip_send_unicast_reply()) the options it returns, and
ip_options_build() fills in the answer's own address.

Timestamps are milliseconds since midnight UTC in the kernel; the mock's clock is
virtual, so the mock writes its own time there (masked where suites compare).
Left out: following an accepted source route (ip_options_rcv_srr() re-routing via
the next hop), CIPSO labels (every DOI is unknown, as on a host with none
configured), options on fragments (ip_options_fragment()) and a source route
echoed in an answer (__ip_options_echo()'s reversed route and `faddr`).
"""
from __future__ import annotations

from dataclasses import dataclass

from harness.mockkernel.ipv4 import route
from harness.mockkernel.wire.ipv4 import (IPOPT_END, IPOPT_LSRR, IPOPT_NOOP, IPOPT_OFFSET, IPOPT_OLEN, IPOPT_SSRR,
                                          IPOPT_TS_FLAGS, IPV4_MIN_HLEN)

IPOPT_RR, IPOPT_TIMESTAMP, IPOPT_RA, IPOPT_CIPSO = 7, 68, 148, 134
IPOPT_TS_TSONLY, IPOPT_TS_TSANDADDR, IPOPT_TS_PRESPEC = 0, 1, 3
MS_PER_DAY = 86_400_000


@dataclass
class IpOptions:
    """struct ip_options: offsets from the start of the IP header (0: absent)."""

    optlen: int
    srr: int = 0
    rr: int = 0
    rr_needaddr: bool = False
    ts: int = 0
    ts_needaddr: bool = False
    ts_needtime: bool = False
    is_changed: bool = False
    data: bytes = b""  # an answer's options (ip_options_echo())


class OptionError(Exception):
    """ip_options_compile()'s `goto error`: `pointer` is the offending byte's
    offset from the start of the IP header (the parameter problem's pointer)."""

    def __init__(self, pointer: int) -> None:
        super().__init__(pointer)
        self.pointer = pointer


def ip_options_compile(buf: bytearray, nh: int, hlen: int, spec_dst: int, now: float,
                       addr_is_unicast) -> IpOptions:
    """ip_options_compile(net, opt, skb) for a received packet: raises
    OptionError. `spec_dst` is the address written into record route and
    timestamp-and-address options (spec_dst_fill()); `addr_is_unicast(addr)`
    is inet_addr_type() == RTN_UNICAST, for prespecified timestamps."""
    opt = IpOptions(hlen - IPV4_MIN_HLEN)
    pos, left = nh + IPV4_MIN_HLEN, opt.optlen
    while left > 0:
        kind = buf[pos]
        if kind == IPOPT_END:
            for rest in range(pos + 1, pos + left):
                if buf[rest] != IPOPT_END:
                    buf[rest] = IPOPT_END
                    opt.is_changed = True
            return opt
        if kind == IPOPT_NOOP:
            pos, left = pos + 1, left - 1
            continue
        optlen = buf[pos + IPOPT_OLEN] if left > 1 else 0
        if optlen < 2 or optlen > left:
            raise OptionError(pos - nh)
        if kind in (IPOPT_SSRR, IPOPT_LSRR):
            if optlen < 3:
                raise OptionError(pos + 1 - nh)
            if buf[pos + IPOPT_OFFSET] < 4:
                raise OptionError(pos + 2 - nh)
            if opt.srr:  # RFC 1812 5.2.4.1: one source route
                raise OptionError(pos - nh)
            opt.srr = pos - nh
        elif kind == IPOPT_RR:
            if opt.rr:
                raise OptionError(pos - nh)
            if optlen < 3:
                raise OptionError(pos + 1 - nh)
            pointer = buf[pos + IPOPT_OFFSET]
            if pointer < 4:
                raise OptionError(pos + 2 - nh)
            if pointer <= optlen:
                if pointer + 3 > optlen:
                    raise OptionError(pos + 2 - nh)
                buf[pos + pointer - 1:pos + pointer + 3] = spec_dst.to_bytes(4, "big")
                opt.is_changed = True
                buf[pos + IPOPT_OFFSET] = pointer + 4
                opt.rr_needaddr = True
            opt.rr = pos - nh
        elif kind == IPOPT_TIMESTAMP:
            _timestamp(buf, nh, pos, optlen, opt, spec_dst, now, addr_is_unicast)
        elif kind == IPOPT_RA:  # valid at 4 bytes; no router alert socket reads it in the mock
            if optlen < 4:
                raise OptionError(pos + 1 - nh)
        elif kind == IPOPT_CIPSO:  # cipso_v4_validate(): too short, else a DOI no one configured
            raise OptionError(pos + (1 if optlen < 8 else 2) - nh)
        pos, left = pos + optlen, left - optlen
    return opt


def _timestamp(buf: bytearray, nh: int, pos: int, optlen: int, opt: IpOptions, spec_dst: int, now: float,
               addr_is_unicast) -> None:
    if opt.ts:
        raise OptionError(pos - nh)
    if optlen < 4:
        raise OptionError(pos + 1 - nh)
    pointer, flags = buf[pos + IPOPT_OFFSET], buf[pos + IPOPT_TS_FLAGS]
    if pointer < 5:
        raise OptionError(pos + 2 - nh)
    if pointer > optlen:  # full: count the overflow, up to 15
        overflow = flags >> 4
        if overflow == 15:
            raise OptionError(pos + 3 - nh)
        opt.ts = pos - nh
        buf[pos + IPOPT_TS_FLAGS] = (flags & 0xF) | ((overflow + 1) << 4)
        opt.is_changed = True
        return
    if pointer + 3 > optlen:
        raise OptionError(pos + 2 - nh)
    timeptr = None
    kind = flags & 0xF
    if kind == IPOPT_TS_TSONLY:
        opt.ts, timeptr, opt.ts_needtime = pos - nh, pos + pointer - 1, True
        buf[pos + IPOPT_OFFSET] = pointer + 4
    elif kind in (IPOPT_TS_TSANDADDR, IPOPT_TS_PRESPEC):
        if pointer + 7 > optlen:
            raise OptionError(pos + 2 - nh)
        opt.ts = pos - nh
        if kind == IPOPT_TS_TSANDADDR:
            buf[pos + pointer - 1:pos + pointer + 3] = spec_dst.to_bytes(4, "big")
            timeptr, opt.ts_needaddr = pos + pointer + 3, True
        elif addr_is_unicast(int.from_bytes(buf[pos + pointer - 1:pos + pointer + 3], "big")):
            return  # an address not ours: left for its owner
        else:
            timeptr = pos + pointer + 3
        opt.ts_needtime = True
        buf[pos + IPOPT_OFFSET] = pointer + 8
    if timeptr is not None:
        buf[timeptr:timeptr + 4] = (int(now * 1000) % MS_PER_DAY).to_bytes(4, "big")
        opt.is_changed = True


def ip_forward_options(buf: bytearray, nh: int, opt: IpOptions, source: int) -> bool:
    """ip_forward_options(): the record route slot compile filled gets the
    outgoing address (ip_rt_get_source(), `source`). True if the header
    changed (the caller refreshes its checksum, ip_send_check())."""
    if opt.rr_needaddr:
        rr = nh + opt.rr
        slot = rr + buf[rr + IPOPT_OFFSET] - 5
        buf[slot:slot + 4] = source.to_bytes(4, "big")
        opt.is_changed = True
    changed, opt.is_changed = opt.is_changed, False
    return changed


def ip_options_echo(buf: bytearray, nh: int, opt: IpOptions, addr_is_unicast) -> IpOptions | None:
    """__ip_options_echo(): the options an answer to this packet carries, as an
    IpOptions whose `data` are the option bytes (a record route and a
    timestamp copied, with room marked for this host's entries), padded with
    end-of-list to a multiple of 4; None where the kernel refuses (-EINVAL: no
    room left). ip_options_build() fills the entries in."""
    out = bytearray()
    echo = IpOptions(0)
    if opt.rr:
        start = nh + opt.rr
        optlen, pointer = buf[start + IPOPT_OLEN], buf[start + IPOPT_OFFSET]
        echo.rr = IPV4_MIN_HLEN + len(out)
        echoed = bytearray(buf[start:start + optlen])
        if opt.rr_needaddr and pointer <= optlen:
            if pointer + 3 > optlen:
                return None
            echoed[2] = pointer + 4
            echo.rr_needaddr = True
        out += echoed
    if opt.ts:
        start = nh + opt.ts
        optlen, pointer = buf[start + IPOPT_OLEN], buf[start + IPOPT_OFFSET]
        echo.ts = IPV4_MIN_HLEN + len(out)
        echoed = bytearray(buf[start:start + optlen])
        if pointer <= optlen:
            if opt.ts_needaddr:
                if pointer + 3 > optlen:
                    return None
                echo.ts_needaddr, pointer = True, pointer + 4
            if opt.ts_needtime:
                if pointer + 3 > optlen:
                    return None
                if echoed[3] & 0xF != IPOPT_TS_PRESPEC:
                    echo.ts_needtime, pointer = True, pointer + 4
                elif pointer + 7 <= optlen and not addr_is_unicast(
                        int.from_bytes(echoed[pointer - 1:pointer + 3], "big")):
                    echo.ts_needtime, pointer = True, pointer + 8
            echoed[2] = pointer
        out += echoed
    while len(out) % 4:
        out.append(IPOPT_END)
    echo.optlen, echo.data = len(out), bytes(out)
    return echo


NO_OPTIONS = IpOptions(0)


def ip_options_echo_skb(skb) -> IpOptions | None:
    """__ip_options_echo(net, dopt, skb, sopt) of the options ip_rcv_options()
    compiled for `skb` (IPCB(skb)->opt): what an answer to it carries, None
    where the kernel sends nothing."""
    opt = skb.cb.get("opt") if skb.cb else None
    if opt is None:
        return NO_OPTIONS
    net = skb.net
    return ip_options_echo(skb.buf, skb.network_header, opt, lambda addr: route.inet_addr_is_unicast(net, addr))


def ip_options_build(header: bytearray, echo: IpOptions, source: int, now: float) -> None:
    """ip_options_build() on an answer's header (options from
    ip_options_echo()): this host's address and time where they were marked."""
    if echo.rr_needaddr:
        slot = echo.rr + header[echo.rr + IPOPT_OFFSET] - 5
        header[slot:slot + 4] = source.to_bytes(4, "big")
    if echo.ts_needaddr:
        slot = echo.ts + header[echo.ts + IPOPT_OFFSET] - 9
        header[slot:slot + 4] = source.to_bytes(4, "big")
    if echo.ts_needtime:
        slot = echo.ts + header[echo.ts + IPOPT_OFFSET] - 5
        header[slot:slot + 4] = (int(now * 1000) % MS_PER_DAY).to_bytes(4, "big")
