"""/proc/net/snmp, /proc/net/netstat and /proc/net/sockstat (net/ipv4/proc.c
snmp_seq_show(), netstat_seq_show(), sockstat_seq_show()), and /proc/net/snmp6
(net/ipv6/proc.c snmp6_seq_show()), registered by ip_proc_init() from
inet_init() as the kernel's pernet proc ops do.

sockstat counts what the namespace's tables hold: TCP `inuse` the hashed full
sockets (listeners and connections) of tcp_prot, the AF_INET ones (an AF_INET6
socket's are sockstat6's TCP6 line, net/ipv6/proc.c sockstat6_seq_show(), its
v4-mapped connections too), UDP's and UDP6's likewise, `tw` the TIME_WAIT socks, `orphan` the
full sockets the application has closed; `alloc` can see no socket that is in
no table, so it is `inuse`; `mem` and UDP's `mem` are the pages their buffers
hold (receive queue, send queue and forward allocation). The kernel's orphan,
alloc and mem are of the whole machine, a namespace's share of them here.
FRAG (FRAG6) counts the IPv4 (IPv6) reassembly queues and their fragments' truesize.
"""
from __future__ import annotations

from harness.mockkernel.ipv4.tcp_sock import AF_INET, AF_INET6, TCP_NEW_SYN_RECV, TCP_TIME_WAIT
from harness.mockkernel.core.snmp import (ICMP_MIB_CSUMERRORS, ICMP_MIB_INERRORS, ICMP_MIB_INMSGS,
                                          ICMP_MIB_OUTERRORS, ICMP_MIB_OUTMSGS, ICMP_MIB_RATELIMITGLOBAL,
                                          ICMP_MIB_RATELIMITHOST, ICMPMIBMAP, ICMPMSG_OUT,
                                          MPTCP_SNMP_LIST, SNMP4_IPEXTSTATS_LIST, SNMP4_IPSTATS_LIST, SNMP4_NET_LIST,
                                          SNMP4_TCP_LIST, SNMP4_UDP_LIST, ICMP6TYPE2NAME, SNMP6_ICMP6_LIST,
                                          SNMP6_IPSTATS_LIST)

ICMPMSG_PERLINE = 16  # icmpmsg_put(): at most this many types a line pair
UDPLITE6_UNLISTED = ("IgnoredMulti",)  # snmp6_udplite6_list has no IgnoredMulti
PAGE_SIZE = 4096


def _pair(prefix: str, names, values) -> str:
    return f"{prefix}: {' '.join(names)}\n{prefix}: {' '.join(map(str, values))}\n"


def snmp_seq_show(net) -> str:
    mib, sysctl = net.mib, net.sysctl.values
    n_ip = len(SNMP4_IPSTATS_LIST)
    forwarding = 1 if sysctl["net.ipv4.conf.all.forwarding"] else 2
    text = _pair("Ip", ("Forwarding", "DefaultTTL", *SNMP4_IPSTATS_LIST),
                 (forwarding, sysctl["net.ipv4.ip_default_ttl"], *mib.ip_counters()[:n_ip]))
    text += _icmp_put(mib) + _icmpmsg_put(mib)
    text += _pair("Tcp", SNMP4_TCP_LIST, mib.tcp_statistics)
    text += _pair("Udp", SNMP4_UDP_LIST, mib.udp_statistics)
    return text + _pair("UdpLite", SNMP4_UDP_LIST, mib.udplite_statistics)


def _icmp_put(mib) -> str:
    icmp, msg = mib.icmp_statistics, mib.icmpmsg_statistics
    names = ["InMsgs", "InErrors", "InCsumErrors", *(f"In{name}" for name, _ in ICMPMIBMAP),
             "OutMsgs", "OutErrors", "OutRateLimitGlobal", "OutRateLimitHost",
             *(f"Out{name}" for name, _ in ICMPMIBMAP)]
    values = [icmp[ICMP_MIB_INMSGS], icmp[ICMP_MIB_INERRORS], icmp[ICMP_MIB_CSUMERRORS],
              *(msg[index] for _, index in ICMPMIBMAP), icmp[ICMP_MIB_OUTMSGS], icmp[ICMP_MIB_OUTERRORS],
              icmp[ICMP_MIB_RATELIMITGLOBAL], icmp[ICMP_MIB_RATELIMITHOST],
              *(msg[index | ICMPMSG_OUT] for _, index in ICMPMIBMAP)]
    return _pair("Icmp", names, values)


def _icmpmsg_put(mib) -> str:
    """IcmpMsg: InTypeN/OutTypeN for every type seen, 16 a line pair."""
    seen = [(i, value) for i, value in enumerate(mib.icmpmsg_statistics) if value]
    text = ""
    for start in range(0, len(seen), ICMPMSG_PERLINE):
        chunk = seen[start:start + ICMPMSG_PERLINE]
        text += _pair("IcmpMsg", (f"{'Out' if i & ICMPMSG_OUT else 'In'}Type{i & 0xFF}" for i, _ in chunk),
                      (value for _, value in chunk))
    return text


def netstat_seq_show(net) -> str:
    mib = net.mib
    return (_pair("TcpExt", SNMP4_NET_LIST, mib.net_statistics)
            + _pair("IpExt", SNMP4_IPEXTSTATS_LIST, mib.ip_counters()[len(SNMP4_IPSTATS_LIST):])
            + _pair("MPTcpExt", MPTCP_SNMP_LIST, mib.mptcp_statistics))


def snmp6_seq_show(net) -> str:
    """snmp6_seq_show(): Ip6, Icmp6, the named ICMPv6 types In then Out, every
    type seen as Icmp6InTypeN/OutTypeN (snmp6_seq_show_icmpv6msg()), Udp6, UdpLite6."""
    mib = net.mib
    msg = mib.icmpv6msg_statistics
    counters = [*(("Ip6" + name, value) for name, value in zip(SNMP6_IPSTATS_LIST, mib.ipv6_statistics)),
                *(("Icmp6" + name, value) for name, value in zip(SNMP6_ICMP6_LIST, mib.icmpv6_statistics)),
                *((f"Icmp6{direction}{name}", msg[icmp_type | out])
                  for direction, out in (("In", 0), ("Out", ICMPMSG_OUT)) for icmp_type, name in ICMP6TYPE2NAME.items()),
                *((f"Icmp6{'Out' if i & ICMPMSG_OUT else 'In'}Type{i & 0xFF}", value)
                  for i, value in enumerate(msg) if value),
                *(("Udp6" + name, value) for name, value in zip(SNMP4_UDP_LIST, mib.udp_stats_in6)),
                *(("UdpLite6" + name, value) for name, value in zip(SNMP4_UDP_LIST, mib.udplite_stats_in6)
                  if name not in UDPLITE6_UNLISTED)]
    return "".join(f"{name:<32}\t{value}\n" for name, value in counters)


def _full_tcp_socks(net) -> list:
    hashinfo = net.tcp_hashinfo
    established = [sk for sk in hashinfo.ehash.values() if sk.state not in (TCP_TIME_WAIT, TCP_NEW_SYN_RECV)]
    return [sk for listeners in hashinfo.listening.values() for sk in listeners] + established


def _udp_socks(net, family: int) -> list:
    """The UDP sockets of one family: an IPv6 one is bound to a 16-byte address."""
    return [sk for sk in net.udp_sockets.values() if (sk.addr.__class__ is bytes) == (family == AF_INET6)]


def _frag_memory(queues) -> int:
    return sum(skb.truesize for queue in queues for _, skb in queue.fragments.values())


def sockstat_seq_show(net) -> str:
    hashinfo = net.tcp_hashinfo
    full = _full_tcp_socks(net)
    tws = sum(sk.state == TCP_TIME_WAIT for sk in hashinfo.ehash.values())
    tcp_mem = sum(sk.rmem_alloc + sk.sk_wmem_queued + sk.sk_forward_alloc for sk in full) // PAGE_SIZE
    udp = _udp_socks(net, AF_INET)
    inuse = sum(sk.family == AF_INET for sk in full)
    return (f"sockets: used {len(full) + len(net.udp_sockets)}\n"
            f"TCP: inuse {inuse} orphan {sum(sk.done for sk in full)} tw {tws} alloc {len(full)} mem {tcp_mem}\n"
            f"UDP: inuse {len(udp)} mem {sum(sk.rmem_alloc for sk in udp) // PAGE_SIZE}\n"
            "UDPLITE: inuse 0\nRAW: inuse 0\n"
            f"FRAG: inuse {len(net.ipfrags)} memory {_frag_memory(net.ipfrags.values())}\n")


def sockstat6_seq_show(net) -> str:
    frags = net.ipv6.frags
    return (f"TCP6: inuse {sum(sk.family == AF_INET6 for sk in _full_tcp_socks(net))}\n"
            f"UDP6: inuse {len(_udp_socks(net, AF_INET6))}\n"
            "UDPLITE6: inuse 0\nRAW6: inuse 0\n"
            f"FRAG6: inuse {len(frags)} memory {_frag_memory(frags.values())}\n")


def ip_proc_init(net) -> None:
    net.proc_net.update(snmp=snmp_seq_show, netstat=netstat_seq_show, snmp6=snmp6_seq_show,
                        sockstat=sockstat_seq_show, sockstat6=sockstat6_seq_show)
