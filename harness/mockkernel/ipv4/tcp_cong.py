"""TCP's congestion-control module boundary (net/ipv4/tcp_cong.c) and Reno.

`TcpCongestionOps` is struct tcp_congestion_ops: a module registers one with
tcp_register_congestion_control() and the stack calls only through it
(ssthresh on loss, cong_avoid on each ACK, set_state, cwnd_event, pkts_acked,
undo_cwnd). Reno is registered here, as tcp_init() registers it; cubic
registers from tcp_cubic.py (cubictcp_register(), its module_init, run by
inet_init()).

net.ipv4.tcp_congestion_control picks the default of new sockets
(tcp_set_default_congestion_control()) and TCP_CONGESTION one socket's
(tcp_set_congestion_control()); a name no module has is refused with ENOENT,
as the kernel refuses it once request_module() found nothing. The kernel this
project runs on also has bbr (CONFIG_DEFAULT_TCP_CONG="bbr" there): naming it is
an error saying the mock does not model it, never a silent fallback. A new
namespace here starts with cubic, Kconfig's own default; the DUT's sysctls
(harness.target.DUT_SYSCTLS) then pick reno on both targets, since a DUT netns
may only choose from the host's allowed list ("reno bbr"). Left out: the
allowed list's EPERM for an unprivileged TCP_CONGESTION (the harness's
applications are root), ECN.
"""
from __future__ import annotations

import errno
from collections.abc import Callable
from dataclasses import dataclass

from harness.mockkernel.core.errors import not_modelled
from harness.mockkernel.core.sysctl import CtlTable, ProcError, read_only
from harness.mockkernel.ipv4.tcp_sock import TCP_CLOSE, TCP_LISTEN

TCP_CA_NAME_MAX = 16
TCP_CONG_NON_RESTRICTED = 0x1
# the modules the real kernel of the project's machines has and the mock does not
KERNEL_ONLY_CONGESTION_CONTROL = ("bbr",)
DEFAULT_TCP_CONG = "cubic"

# enum tcp_ca_event (include/net/tcp.h)
CA_EVENT_TX_START, CA_EVENT_CWND_RESTART, CA_EVENT_COMPLETE_CWR, CA_EVENT_LOSS = 0, 1, 2, 3
# enum tcp_ca_state: icsk_ca_state
TCP_CA_Open, TCP_CA_Disorder, TCP_CA_CWR, TCP_CA_Recovery, TCP_CA_Loss = 0, 1, 2, 3, 4


@dataclass(frozen=True)
class TcpCongestionOps:
    """struct tcp_congestion_ops; `priv` makes the socket's private state (inet_csk_ca())."""

    name: str
    ssthresh: Callable
    cong_avoid: Callable
    undo_cwnd: Callable
    init: Callable | None = None
    set_state: Callable | None = None
    cwnd_event: Callable | None = None
    pkts_acked: Callable | None = None
    priv: Callable | None = None
    flags: int = 0


tcp_cong_list: dict[str, TcpCongestionOps] = {}


def tcp_register_congestion_control(ops: TcpCongestionOps) -> None:
    """Add a module; every boot of a mock kernel registers the same built-in ones again."""
    known = tcp_cong_list.get(ops.name)
    if known is not None and known is not ops:
        raise ValueError(f"another TCP congestion control module is registered as {ops.name}")
    tcp_cong_list[ops.name] = ops


def tcp_ca_find(name: str) -> TcpCongestionOps:
    """The module called `name`: ENOENT when none is, the mock's refusal for
    one the real kernel has."""
    ops = tcp_cong_list.get(name)
    if ops is not None:
        return ops
    if name in KERNEL_ONLY_CONGESTION_CONTROL:
        raise not_modelled(f"TCP congestion control {name}")
    raise OSError(errno.ENOENT, f"no TCP congestion control module called {name!r}")


def proc_tcp_congestion_control(sysctls, table: CtlTable, key: str, text: str) -> str:
    """tcp_set_default_congestion_control(): the name up to the first blank."""
    name = text.strip()[:TCP_CA_NAME_MAX - 1]
    try:
        return tcp_ca_find(name).name
    except OSError as err:
        raise ProcError(err.errno) from None


def proc_allowed_congestion_control(sysctls, table: CtlTable, key: str, text: str) -> str:
    """tcp_set_allowed_congestion_control(): every name must be a module."""
    names = text.split()
    for name in names:
        proc_tcp_congestion_control(sysctls, table, key, name)
    return " ".join(names)


def tcp_assign_congestion_control(sk) -> None:
    """At socket creation: the namespace's default module, its private state zeroed."""
    _assign(sk, tcp_cong_list[sk.net.sysctl.values["net.ipv4.tcp_congestion_control"]])


def _assign(sk, ops: TcpCongestionOps) -> None:
    sk.icsk_ca_ops = ops
    sk.ca_priv = ops.priv() if ops.priv is not None else None


def tcp_init_congestion_control(sk) -> None:
    sk.prior_ssthresh = 0
    ops = sk.icsk_ca_ops
    if ops.init is not None:
        ops.init(sk)


def tcp_set_congestion_control(sk, name: str) -> None:
    """TCP_CONGESTION: switch the socket's module (its init runs again once
    the connection is past the handshake, as tcp_reinit_congestion_control() does)."""
    _assign(sk, tcp_ca_find(name))
    if sk.state not in (TCP_CLOSE, TCP_LISTEN):
        tcp_init_congestion_control(sk)


def tcp_set_ca_state(sk, ca_state: int) -> None:
    set_state = sk.icsk_ca_ops.set_state
    if set_state is not None:
        set_state(sk, ca_state)
    sk.icsk_ca_state = ca_state


def tcp_ca_event(sk, event: int) -> None:
    cwnd_event = sk.icsk_ca_ops.cwnd_event
    if cwnd_event is not None:
        cwnd_event(sk, event)


def tcp_in_slow_start(sk) -> bool:
    return sk.snd_cwnd < sk.snd_ssthresh


def tcp_is_cwnd_limited(sk) -> bool:
    """The cwnd was the limit in the last window; in slow start also while
    cwnd is under twice what was in flight."""
    if sk.is_cwnd_limited:
        return True
    if tcp_in_slow_start(sk):
        return sk.snd_cwnd < 2 * sk.max_packets_out
    return False


def tcp_slow_start(sk, acked: int) -> int:
    """Grow cwnd by what was ACKed up to ssthresh; what is left over is returned."""
    cwnd = min(sk.snd_cwnd + acked, sk.snd_ssthresh)
    acked -= cwnd - sk.snd_cwnd
    sk.snd_cwnd = min(cwnd, sk.snd_cwnd_clamp)
    return acked


def tcp_cong_avoid_ai(sk, w: int, acked: int) -> None:
    """Additive increase: one segment per `w` segments ACKed."""
    if sk.snd_cwnd_cnt >= w:
        sk.snd_cwnd_cnt = 0
        sk.snd_cwnd += 1
    sk.snd_cwnd_cnt += acked
    if sk.snd_cwnd_cnt >= w:
        delta = sk.snd_cwnd_cnt // w
        sk.snd_cwnd_cnt -= delta * w
        sk.snd_cwnd += delta
    sk.snd_cwnd = min(sk.snd_cwnd, sk.snd_cwnd_clamp)


def tcp_reno_cong_avoid(sk, ack: int, acked: int) -> None:
    if not tcp_is_cwnd_limited(sk):
        return
    if tcp_in_slow_start(sk):
        acked = tcp_slow_start(sk, acked)
        if not acked:
            return
    tcp_cong_avoid_ai(sk, sk.snd_cwnd, acked)


def tcp_reno_ssthresh(sk) -> int:
    return max(sk.snd_cwnd >> 1, 2)


def tcp_reno_undo_cwnd(sk) -> int:
    return max(sk.snd_cwnd, sk.prior_cwnd)


tcp_reno = TcpCongestionOps("reno", ssthresh=tcp_reno_ssthresh, cong_avoid=tcp_reno_cong_avoid,
                            undo_cwnd=tcp_reno_undo_cwnd, flags=TCP_CONG_NON_RESTRICTED)
tcp_register_congestion_control(tcp_reno)


def tcp_cong_sysctls() -> dict[str, CtlTable]:
    """The entries as a new namespace shows them: the modules in registration order."""
    available = " ".join(tcp_cong_list)
    return {
        "net.ipv4.tcp_congestion_control": CtlTable(DEFAULT_TCP_CONG, proc_tcp_congestion_control),
        "net.ipv4.tcp_available_congestion_control": CtlTable(available, read_only),
        "net.ipv4.tcp_allowed_congestion_control": CtlTable(
            " ".join(name for name in tcp_cong_list if name in ("reno", DEFAULT_TCP_CONG)),
            proc_allowed_congestion_control),
    }
