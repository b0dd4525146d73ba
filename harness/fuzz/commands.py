"""Hypothesis strategies for hostile command text, one corpus per front end.

A case starts from commands an operator types (SEEDS: each tool's common forms,
valid on the fuzzing DUT) and mutates their words: replaced by another word the
tool knows (its VOCABULARY, every word of its seeds) or by a hostile value
(numbers past every limit, negative, hex, empty, prefixes out of range, NUL
bytes, quotes, very long words), deleted, duplicated, swapped or cut short.
`nft -f -` and `iptables-restore` also get their input mutated as text.
A command case is a list of (argv, stdin) the DUT runs in order.
"""
from __future__ import annotations

import shlex

from hypothesis import strategies as st

XDP_OBJECT, TC_OBJECT = "{xdp_object}", "{tc_object}"  # the built objects' paths, filled in by the target

SEEDS: dict[str, list[str]] = {
    "ip": [
        "ip link show", "ip -d link show dev p0", "ip -s link show p1", "ip link set p0 mtu 1400",
        "ip link set dev p1 down", "ip link set dev p1 up", "ip link add veth9 type veth peer name veth10",
        "ip link add link p0 name p0.100 type vlan id 100", "ip link add br1 type bridge vlan_filtering 1",
        "ip link set p1 master br0", "ip link set p2 nomaster", "ip link del br0", "ip link set p0 address 02:00:00:00:00:99",
        f"ip link set dev p0 xdp obj {XDP_OBJECT} sec xdp", "ip link set dev p0 xdp off",
        f"ip link set dev p1 xdpgeneric obj {XDP_OBJECT} sec xdp", "ip link set p0 promisc on",
        "ip addr add 10.0.5.1/24 dev p0", "ip addr del 10.0.0.1/24 dev p0", "ip -4 addr show", "ip -6 addr show dev p1",
        "ip addr add 2001:db8:9::1/64 dev p1", "ip addr flush dev p1", "ip -br addr",
        "ip route add 192.0.2.0/24 via 10.0.1.2", "ip route add 198.51.100.0/24 dev p1 metric 10",
        "ip route add blackhole 203.0.113.0/24", "ip route add unreachable 203.0.113.128/25",
        "ip route add default via 10.0.0.2", "ip route del 192.0.2.0/24", "ip route get 10.0.1.2",
        "ip route get 10.0.1.2 from 10.0.0.2 iif p0", "ip route show table main", "ip route flush cache",
        "ip route add 192.0.2.0/24 nexthop via 10.0.0.2 weight 1 nexthop via 10.0.1.2 weight 2",
        "ip -6 route add 2001:db8:7::/48 via 2001:db8:1::2", "ip -6 route get 2001:db8:1::2", "ip -6 route show",
        "ip rule add from 10.0.0.0/24 table 100 priority 100", "ip rule add fwmark 0x1 lookup 200", "ip rule show",
        "ip rule del priority 100", "ip neigh add 10.0.1.9 lladdr 02:00:00:00:01:09 dev p1 nud permanent",
        "ip neigh replace 10.0.0.2 lladdr 02:00:00:00:01:01 dev p0", "ip neigh show", "ip neigh flush dev p0",
        "ip -6 neigh show dev p1", "ip -s -s neigh show", "ip netconf show dev p0", "ip -j link show",
    ],
    "tc": [
        "tc qdisc show", "tc qdisc add dev p1 root fq_codel", "tc qdisc add dev p1 root tbf rate 1mbit burst 32kbit latency 400ms",
        "tc qdisc replace dev p1 root pfifo limit 10", "tc qdisc del dev p1 root", "tc qdisc add dev p0 clsact",
        "tc qdisc add dev p1 root handle 1: htb default 10", "tc class add dev p1 parent 1: classid 1:10 htb rate 10mbit",
        "tc qdisc add dev p1 root netem delay 10ms loss 1%", "tc qdisc add dev p1 root handle 1: prio bands 3",
        "tc qdisc add dev p1 ingress", "tc -s qdisc show dev p1", "tc qdisc add dev p2 root sfq perturb 10",
        f"tc filter add dev p0 ingress bpf da obj {TC_OBJECT} sec tc", "tc filter del dev p0 ingress",
        f"tc filter add dev p1 egress prio 1 handle 1 bpf direct-action obj {TC_OBJECT} sec tc",
        "tc filter show dev p1 ingress", "tc -s filter show dev p1 egress", "tc qdisc add dev p1 root cake bandwidth 100mbit",
        "tc filter add dev p0 ingress protocol ip flower ip_proto udp dst_port 53 action drop",
        "tc filter add dev p0 ingress matchall action mirred egress redirect dev p1",
    ],
    "sysctl": [
        "sysctl net.ipv4.ip_forward", "sysctl -w net.ipv4.ip_forward=1", "sysctl -w net.ipv4.conf.all.rp_filter=2",
        "sysctl -w net.ipv4.conf.p0.accept_redirects=0", "sysctl -q -w net.ipv6.conf.all.forwarding=1",
        "sysctl -w net.netfilter.nf_conntrack_max=1024", "sysctl -w net.ipv4.ipfrag_high_thresh=4194304",
        "sysctl -w net.ipv4.tcp_syncookies=2", "sysctl -w net.core.netdev_max_backlog=10",
        "sysctl -w net.ipv4.icmp_ratelimit=0", "sysctl -a", "sysctl -n net.ipv4.tcp_rmem",
        "sysctl -w net.ipv4.tcp_rmem=4096 131072 6291456", "sysctl -w net.ipv4.ip_local_port_range=1024 65000",
        "sysctl -w net.ipv6.conf.p1.disable_ipv6=1", "sysctl -w net.bridge.bridge-nf-call-iptables=1",
        "sysctl -w net.ipv4.conf.all.arp_ignore=1", "sysctl -w net.core.bpf_jit_enable=1",
    ],
    "ethtool": [
        "ethtool p0", "ethtool -k p0", "ethtool -K p0 gro off", "ethtool -K p1 tso off gso off",
        "ethtool -G p0 rx 256 tx 256", "ethtool -g p0", "ethtool -C p0 rx-usecs 50", "ethtool -c p0",
        "ethtool -S p0", "ethtool -i p1", "ethtool -l p0", "ethtool -L p0 combined 2", "ethtool -X p0 equal 2",
        "ethtool -x p0", "ethtool -N p0 rx-flow-hash udp4 sdfn", "ethtool -K p0 rxhash on", "ethtool --show-ring p1",
    ],
    "bpftool": [
        "bpftool prog show", "bpftool prog list", "bpftool map show", "bpftool map dump name blocklist",
        "bpftool prog dump xlated id 2", "bpftool -j prog show", "bpftool net show", "bpftool net show dev p0",
        "bpftool map lookup name blocklist key 0 0 0 0", "bpftool map update name blocklist key 10 0 0 2 value 1 0 0 0",
        "bpftool map delete name blocklist key 10 0 0 2", "bpftool map getnext name blocklist",
        "bpftool prog show id 2", "bpftool map show id 1", "bpftool prog tracelog", "bpftool feature probe",
        "bpftool map dump id 1", "bpftool btf show", "bpftool -p map show",
    ],
    "iptables": [
        "iptables -L", "iptables -L -n -v", "iptables -S", "iptables -t nat -S", "iptables -A INPUT -p tcp --dport 22 -j ACCEPT",
        "iptables -I FORWARD 1 -i p0 -o p1 -j ACCEPT", "iptables -A FORWARD -m conntrack --ctstate INVALID -j DROP",
        "iptables -t nat -A POSTROUTING -o p1 -j MASQUERADE", "iptables -t nat -A PREROUTING -p udp --dport 5000 -j DNAT --to-destination 10.0.1.2:53",
        "iptables -A INPUT -s 198.18.0.0/15 -j DROP", "iptables -D INPUT 1", "iptables -F", "iptables -X", "iptables -N mychain",
        "iptables -P FORWARD DROP", "iptables -A INPUT -p icmp --icmp-type echo-request -m limit --limit 10/s -j ACCEPT",
        "iptables -A INPUT -p tcp --syn -m multiport --dports 80,443 -j ACCEPT", "iptables -Z", "iptables-save",
        "iptables -t mangle -A PREROUTING -j MARK --set-mark 0x1", "iptables -A INPUT -m state --state NEW -j LOG --log-prefix x",
        "ip6tables -A INPUT -p ipv6-icmp -j ACCEPT", "ip6tables -S", "ip6tables -A FORWARD -s 2001:db8::/32 -j REJECT",
        "iptables -A OUTPUT -p udp -j REJECT --reject-with icmp-port-unreachable", "iptables -R INPUT 1 -j ACCEPT",
    ],
    "ss": ["ss -tan", "ss -uan", "ss -s", "ss -tlnp", "ss -xa", "ss -t state established", "ss -4 -n", "ss -6 -ua",
           "ss -tin", "ss -o state time-wait", "ss -H -tn dst 10.0.1.2", "ss -nt sport = :22"],
    "conntrack": ["conntrack -L", "conntrack -L -p udp", "conntrack -F", "conntrack -C", "conntrack -S",
                  "conntrack -L -s 10.0.0.2", "conntrack -D -p tcp --dport 80", "conntrack -L -o extended",
                  "conntrack -I -p udp -s 10.0.0.2 -d 10.0.1.2 --sport 1 --dport 2 -t 30",
                  "conntrack -L -n", "conntrack -E -e NEW", "conntrack -U -m 1", "conntrack -L -f ipv6"],
    "bridge": ["bridge link", "bridge fdb show", "bridge fdb add 02:00:00:00:05:05 dev p2 master static",
               "bridge vlan show", "bridge vlan add dev p2 vid 100 pvid untagged", "bridge vlan del dev p2 vid 1",
               "bridge link set dev p2 cost 10", "bridge link set dev p2 state 0", "bridge fdb del 02:00:00:00:05:05 dev p2",
               "bridge -s fdb", "bridge mdb show", "bridge link set dev p2 learning off"],
    "nstat": ["nstat", "nstat -az", "nstat -a", "nstat -s", "nstat -z IpExtInOctets", "nstat -j", "nstat -n", "nstat -r"],
    "nft": [
        "nft list ruleset", "nft -a list ruleset", "nft -j list ruleset", "nft list table inet filter",
        "nft add table ip t", "nft add chain ip t c { type filter hook input priority 0 ; policy accept ; }",
        "nft add rule inet filter input tcp dport 80 counter accept", "nft add rule inet filter forward ip saddr 10.0.0.0/8 drop",
        "nft insert rule inet filter input position 2 udp dport 53 accept", "nft delete rule inet filter input handle 3",
        "nft add set inet filter s { type ipv4_addr ; flags interval ; }", "nft add element inet filter blocked { 192.0.2.1 }",
        "nft add rule ip nat postrouting oifname p1 snat to 10.0.1.1", "nft flush ruleset", "nft flush chain inet filter input",
        "nft add rule inet filter input meta l4proto tcp ct state new limit rate 5/second accept",
        "nft add rule inet filter forward tcp flags syn tcp option maxseg size set 1400",
        "nft add map inet filter m { type inet_service : verdict ; }", "nft delete table ip nat", "nft list sets",
        "nft add rule inet filter input ip6 nexthdr icmpv6 icmpv6 type nd-neighbor-solicit accept",
        "nft add rule bridge filter forward ether saddr 02:00:00:00:00:01 vlan id 10 drop",
        "nft list chain inet filter input", "nft add counter inet filter c1", "nft -c add rule inet filter input drop",
    ],
}
NFT_FILES = [
    """table inet t {
    set s { type ipv4_addr . inet_service ; flags interval ; elements = { 10.0.0.0/8 . 80 } }
    map m { type ipv4_addr : verdict ; elements = { 10.0.0.2 : accept } }
    chain c {
        type filter hook prerouting priority -150 ; policy accept ;
        ip saddr . tcp dport @s counter drop
        ip daddr vmap @m
        meta mark set ct mark
        ip dscp cs1 ip ttl < 5 reject with icmp type admin-prohibited
        ct state { established, related } accept
    }
}
""",
    """flush ruleset
table ip nat {
    chain pre { type nat hook prerouting priority dstnat ; policy accept ;
        tcp dport { 80, 443 } dnat to 10.0.1.2
        udp dport 53 redirect to :5353
    }
    chain post { type nat hook postrouting priority srcnat ; oifname "p1" masquerade random }
}
""",
]
IPTABLES_RESTORE = ["*filter\n:INPUT ACCEPT [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\n"
                    "-A FORWARD -i p0 -o p1 -j ACCEPT\n-A INPUT -p tcp --dport 22 -j ACCEPT\nCOMMIT\n",
                    "*nat\n:PREROUTING ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n-A POSTROUTING -o p1 -j MASQUERADE\nCOMMIT\n"]
HOSTILE = ["", " ", "-", "--", "-1", "0", "1", "65535", "65536", "4294967295", "4294967296", "18446744073709551616",
           "99999999999999999999999", "0x", "0xffffffff", "1e9", "nan", "inf", "-0", "08", "1.2", "1.2.3.4/33", "1.2.3.4/-1",
           "256.1.1.1", "10.0.0.1/", "/24", "::/129", "::1::", "fe80::1%p0", "2001:db8::/", "ff:ff", "02:00:00:00:00",
           "p9", "lo", "br0", "p0.4095", "x" * 300, "\x00", "a\x00b", "'", "\"", "{", "}", ";", "\\", "%s%n", "é", "🙂",
           "default", "all", "any", "dev", "via", "table", "255", "4096", "1/0", "10:", ":10", "10-1", "1,,2", "=", "@",
           "$x", "#", "*", "0/0", "-j", "--dport", "::ffff:10.0.0.2", "0.0.0.0/0", "1mbit", "0bit", "1tbit", "-5ms"]


def vocabulary(tool: str) -> list[str]:
    words = {w for line in SEEDS[tool] for w in shlex.split(line)[1:]}
    return sorted(words)


@st.composite
def mutated_argv(draw, tool: str) -> list[str]:
    """A seed command of `tool` with up to four of its words mutated."""
    argv = shlex.split(draw(st.sampled_from(SEEDS[tool])))
    words = st.one_of(st.sampled_from(vocabulary(tool)), st.sampled_from(HOSTILE), st.text(max_size=12))
    for _ in range(draw(st.integers(0, 4))):
        how = draw(st.sampled_from(["replace", "replace", "insert", "delete", "duplicate", "swap", "cut"]))
        i = draw(st.integers(1, max(1, len(argv) - 1))) if len(argv) > 1 else 1
        if how == "replace" and i < len(argv):
            argv[i] = draw(words)
        elif how == "insert":
            argv.insert(i, draw(words))
        elif how == "delete" and i < len(argv):
            del argv[i]
        elif how == "duplicate" and i < len(argv):
            argv.insert(i, argv[i])
        elif how == "swap" and i + 1 < len(argv):
            argv[i], argv[i + 1] = argv[i + 1], argv[i]
        elif how == "cut":
            del argv[i:]
    return argv


@st.composite
def mutated_text(draw, texts: list[str]) -> str:
    """A file (nft -f, iptables-restore) with lines and characters mutated."""
    lines = draw(st.sampled_from(texts)).splitlines()
    for _ in range(draw(st.integers(0, 4))):
        how = draw(st.sampled_from(["line", "delete", "duplicate", "char", "word"]))
        i = draw(st.integers(0, len(lines) - 1)) if lines else 0
        if how == "delete" and lines:
            del lines[i]
        elif how == "duplicate" and lines:
            lines.insert(i, lines[i])
        elif how == "char" and lines and lines[i]:
            j = draw(st.integers(0, len(lines[i]) - 1))
            lines[i] = lines[i][:j] + draw(st.sampled_from(list("{};\"'\\\n#@$ ,:-/.0x\x00") + ["9" * 25])) + lines[i][j + 1:]
        elif how == "word" and lines:
            words = lines[i].split()
            if words:
                words[draw(st.integers(0, len(words) - 1))] = draw(st.sampled_from(HOSTILE))
                lines[i] = " ".join(words)
        elif how == "line":
            lines.insert(i, draw(st.sampled_from([line for s in SEEDS["nft"] for line in [s[4:]]])))
    return "\n".join(lines) + "\n"


def command_cases(tool: str):
    """Cases for one tool: one to three of its mutated commands, in order."""
    one = mutated_argv(tool).map(lambda argv: (argv, None))
    if tool == "nft":
        one = st.one_of(one, mutated_text(NFT_FILES).map(lambda text: (["nft", "-f", "-"], text)))
    elif tool == "iptables":
        one = st.one_of(one, mutated_text(IPTABLES_RESTORE).map(lambda text: (["iptables-restore"], text)))
    return st.lists(one, min_size=1, max_size=3)
