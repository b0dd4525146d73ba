"""SNMP MIB counters of one network namespace: struct netns_mib
(include/net/netns/mib.h), the counters include/uapi/linux/snmp.h enumerates.

Each MIB is a list indexed by the kernel's enum name (IPSTATS_MIB_INDELIVERS,
...), bound here to its position in the name list /proc prints, so the
datapath increments `net.mib.ip_statistics[IPSTATS_MIB_INDELIVERS]` as the
kernel does `__IP_INC_STATS(net, IPSTATS_MIB_INDELIVERS)`; a packets-and-octets
pair (IPSTATS_MIB_IN, ...) is one addition, as IP_UPD_PO_STATS() is one macro
(read them with NetnsMib.ip_counters()). The name lists are those of
net/ipv4/proc.c (snmp4_ipstats_list, snmp4_ipextstats_list, icmpmibmap,
snmp4_tcp_list, snmp4_udp_list, snmp4_net_list), net/mptcp/mib.c
(mptcp_snmp_list) and net/ipv6/proc.c as Linux 6.18, the lab's kernel, prints
them (tests/golden/proc_net/ holds its files). The counters the mock's datapath
has no event for stay 0; MPTCP has none. IPv6's (net/ipv6/proc.c) are their own
lists: ipv6_statistics by IP6_MIB_*, icmpv6_statistics, icmpv6msg_statistics
(by type, Out | 0x100), udp_stats_in6 by UDP_MIB_*.
"""
from __future__ import annotations

SNMP4_IPSTATS_LIST = ("InReceives", "InHdrErrors", "InAddrErrors", "ForwDatagrams", "InUnknownProtos", "InDiscards",
                      "InDelivers", "OutRequests", "OutDiscards", "OutNoRoutes", "ReasmTimeout", "ReasmReqds",
                      "ReasmOKs", "ReasmFails", "FragOKs", "FragFails", "FragCreates", "OutTransmits")

SNMP4_IPEXTSTATS_LIST = ("InNoRoutes", "InTruncatedPkts", "InMcastPkts", "OutMcastPkts", "InBcastPkts",
                         "OutBcastPkts", "InOctets", "OutOctets", "InMcastOctets", "OutMcastOctets",
                         "InBcastOctets", "OutBcastOctets", "InCsumErrors", "InNoECTPkts", "InECT1Pkts",
                         "InECT0Pkts", "InCEPkts", "ReasmOverlaps")

SNMP4_TCP_LIST = ("RtoAlgorithm", "RtoMin", "RtoMax", "MaxConn", "ActiveOpens", "PassiveOpens", "AttemptFails",
                  "EstabResets", "CurrEstab", "InSegs", "OutSegs", "RetransSegs", "InErrs", "OutRsts",
                  "InCsumErrors")

SNMP4_UDP_LIST = ("InDatagrams", "NoPorts", "InErrors", "OutDatagrams", "RcvbufErrors", "SndbufErrors",
                  "InCsumErrors", "IgnoredMulti", "MemErrors")

SNMP4_NET_LIST = ("SyncookiesSent", "SyncookiesRecv", "SyncookiesFailed", "EmbryonicRsts", "PruneCalled",
                  "RcvPruned", "OfoPruned", "OutOfWindowIcmps", "LockDroppedIcmps", "ArpFilter", "TW", "TWRecycled",
                  "TWKilled", "PAWSActive", "PAWSEstab", "BeyondWindow", "TSEcrRejected", "PAWSOldAck",
                  "PAWSTimewait", "DelayedACKs", "DelayedACKLocked", "DelayedACKLost", "ListenOverflows",
                  "ListenDrops", "TCPHPHits", "TCPPureAcks", "TCPHPAcks", "TCPRenoRecovery", "TCPSackRecovery",
                  "TCPSACKReneging", "TCPSACKReorder", "TCPRenoReorder", "TCPTSReorder", "TCPFullUndo",
                  "TCPPartialUndo", "TCPDSACKUndo", "TCPLossUndo", "TCPLostRetransmit", "TCPRenoFailures",
                  "TCPSackFailures", "TCPLossFailures", "TCPFastRetrans", "TCPSlowStartRetrans", "TCPTimeouts",
                  "TCPLossProbes", "TCPLossProbeRecovery", "TCPRenoRecoveryFail", "TCPSackRecoveryFail",
                  "TCPRcvCollapsed", "TCPBacklogCoalesce", "TCPDSACKOldSent", "TCPDSACKOfoSent", "TCPDSACKRecv",
                  "TCPDSACKOfoRecv", "TCPAbortOnData", "TCPAbortOnClose", "TCPAbortOnMemory", "TCPAbortOnTimeout",
                  "TCPAbortOnLinger", "TCPAbortFailed", "TCPMemoryPressures", "TCPMemoryPressuresChrono",
                  "TCPSACKDiscard", "TCPDSACKIgnoredOld", "TCPDSACKIgnoredNoUndo", "TCPSpuriousRTOs",
                  "TCPMD5NotFound", "TCPMD5Unexpected", "TCPMD5Failure", "TCPSackShifted", "TCPSackMerged",
                  "TCPSackShiftFallback", "TCPBacklogDrop", "PFMemallocDrop", "TCPMinTTLDrop", "TCPDeferAcceptDrop",
                  "IPReversePathFilter", "TCPTimeWaitOverflow", "TCPReqQFullDoCookies", "TCPReqQFullDrop",
                  "TCPRetransFail", "TCPRcvCoalesce", "TCPOFOQueue", "TCPOFODrop", "TCPOFOMerge", "TCPChallengeACK",
                  "TCPSYNChallenge", "TCPFastOpenActive", "TCPFastOpenActiveFail", "TCPFastOpenPassive",
                  "TCPFastOpenPassiveFail", "TCPFastOpenListenOverflow", "TCPFastOpenCookieReqd",
                  "TCPFastOpenBlackhole", "TCPSpuriousRtxHostQueues", "BusyPollRxPackets", "TCPAutoCorking",
                  "TCPFromZeroWindowAdv", "TCPToZeroWindowAdv", "TCPWantZeroWindowAdv", "TCPSynRetrans",
                  "TCPOrigDataSent", "TCPHystartTrainDetect", "TCPHystartTrainCwnd", "TCPHystartDelayDetect",
                  "TCPHystartDelayCwnd", "TCPACKSkippedSynRecv", "TCPACKSkippedPAWS", "TCPACKSkippedSeq",
                  "TCPACKSkippedFinWait2", "TCPACKSkippedTimeWait", "TCPACKSkippedChallenge", "TCPWinProbe",
                  "TCPKeepAlive", "TCPMTUPFail", "TCPMTUPSuccess", "TCPDelivered", "TCPDeliveredCE",
                  "TCPAckCompressed", "TCPZeroWindowDrop", "TCPRcvQDrop", "TCPWqueueTooBig",
                  "TCPFastOpenPassiveAltKey", "TcpTimeoutRehash", "TcpDuplicateDataRehash", "TCPDSACKRecvSegs",
                  "TCPDSACKIgnoredDubious", "TCPMigrateReqSuccess", "TCPMigrateReqFailure", "TCPPLBRehash",
                  "TCPAORequired", "TCPAOBad", "TCPAOKeyNotFound", "TCPAOGood", "TCPAODroppedIcmps")

MPTCP_SNMP_LIST = ("MPCapableSYNRX", "MPCapableSYNTX", "MPCapableSYNACKRX", "MPCapableACKRX",
                   "MPCapableFallbackACK", "MPCapableFallbackSYNACK", "MPCapableSYNTXDrop",
                   "MPCapableSYNTXDisabled", "MPCapableEndpAttempt", "MPFallbackTokenInit", "MPTCPRetrans",
                   "MPJoinNoTokenFound", "MPJoinSynRx", "MPJoinSynBackupRx", "MPJoinSynAckRx",
                   "MPJoinSynAckBackupRx", "MPJoinSynAckHMacFailure", "MPJoinAckRx", "MPJoinAckHMacFailure",
                   "MPJoinRejected", "MPJoinSynTx", "MPJoinSynTxCreatSkErr", "MPJoinSynTxBindErr",
                   "MPJoinSynTxConnectErr", "DSSNotMatching", "DSSCorruptionFallback", "DSSCorruptionReset",
                   "InfiniteMapTx", "InfiniteMapRx", "DSSNoMatchTCP", "DataCsumErr", "OFOQueueTail", "OFOQueue",
                   "OFOMerge", "NoDSSInWindow", "DuplicateData", "AddAddr", "AddAddrTx", "AddAddrTxDrop", "EchoAdd",
                   "EchoAddTx", "EchoAddTxDrop", "PortAdd", "AddAddrDrop", "MPJoinPortSynRx", "MPJoinPortSynAckRx",
                   "MPJoinPortAckRx", "MismatchPortSynRx", "MismatchPortAckRx", "RmAddr", "RmAddrDrop", "RmAddrTx",
                   "RmAddrTxDrop", "RmSubflow", "MPPrioTx", "MPPrioRx", "MPFailTx", "MPFailRx", "MPFastcloseTx",
                   "MPFastcloseRx", "MPRstTx", "MPRstRx", "SubflowStale", "SubflowRecover", "SndWndShared",
                   "RcvWndShared", "RcvWndConflictUpdate", "RcvWndConflict", "MPCurrEstab", "Blackhole",
                   "MPCapableDataFallback", "MD5SigFallback", "DssFallback", "SimultConnectFallback",
                   "FallbackFailed", "WinProbe")

# net/ipv6/proc.c: snmp6_ipstats_list (Ip6 + name), snmp6_icmp6_list (Icmp6 + name), the
# named ICMPv6 types of icmp6type2name[] (Icmp6In/Out + name), snmp6_udp6_list (Udp6 + name)
SNMP6_IPSTATS_LIST = ("InReceives", "InHdrErrors", "InTooBigErrors", "InNoRoutes", "InAddrErrors",
                      "InUnknownProtos", "InTruncatedPkts", "InDiscards", "InDelivers", "OutForwDatagrams",
                      "OutRequests", "OutDiscards", "OutNoRoutes", "ReasmTimeout", "ReasmReqds", "ReasmOKs",
                      "ReasmFails", "FragOKs", "FragFails", "FragCreates", "InMcastPkts", "OutMcastPkts",
                      "InOctets", "OutOctets", "InMcastOctets", "OutMcastOctets", "InBcastOctets",
                      "OutBcastOctets", "InNoECTPkts", "InECT1Pkts", "InECT0Pkts", "InCEPkts", "OutTransmits")
SNMP6_ICMP6_LIST = ("InMsgs", "InErrors", "OutMsgs", "OutErrors", "InCsumErrors", "OutRateLimitHost")
ICMP6TYPE2NAME = {1: "DestUnreachs", 2: "PktTooBigs", 3: "TimeExcds", 4: "ParmProblems", 128: "Echos",
                  129: "EchoReplies", 130: "GroupMembQueries", 131: "GroupMembResponses",
                  132: "GroupMembReductions", 133: "RouterSolicits", 134: "RouterAdvertisements",
                  135: "NeighborSolicits", 136: "NeighborAdvertisements", 137: "Redirects", 143: "MLDv2Reports"}
# ipv6_statistics by the name /proc/net/snmp6 prints (IPSTATS_MIB_* of IPv6)
(IP6_MIB_INRECEIVES, IP6_MIB_INHDRERRORS, IP6_MIB_INTOOBIGERRORS, IP6_MIB_INNOROUTES, IP6_MIB_INADDRERRORS,
 IP6_MIB_INUNKNOWNPROTOS, IP6_MIB_INTRUNCATEDPKTS, IP6_MIB_INDISCARDS, IP6_MIB_INDELIVERS,
 IP6_MIB_OUTFORWDATAGRAMS, IP6_MIB_OUTREQUESTS, IP6_MIB_OUTDISCARDS, IP6_MIB_OUTNOROUTES, IP6_MIB_REASMTIMEOUT,
 IP6_MIB_REASMREQDS, IP6_MIB_REASMOKS, IP6_MIB_REASMFAILS, IP6_MIB_FRAGOKS, IP6_MIB_FRAGFAILS, IP6_MIB_FRAGCREATES,
 IP6_MIB_INMCASTPKTS, IP6_MIB_OUTMCASTPKTS, IP6_MIB_INOCTETS, IP6_MIB_OUTOCTETS, IP6_MIB_INMCASTOCTETS,
 IP6_MIB_OUTMCASTOCTETS, IP6_MIB_INBCASTOCTETS, IP6_MIB_OUTBCASTOCTETS, IP6_MIB_INNOECTPKTS, IP6_MIB_INECT1PKTS,
 IP6_MIB_INECT0PKTS, IP6_MIB_INCEPKTS, IP6_MIB_OUTTRANSMITS) = range(len(SNMP6_IPSTATS_LIST))
# icmpv6_statistics
ICMP6_MIB_INMSGS, ICMP6_MIB_INERRORS, ICMP6_MIB_OUTMSGS, ICMP6_MIB_OUTERRORS, ICMP6_MIB_CSUMERRORS, \
    ICMP6_MIB_RATELIMITHOST = range(len(SNMP6_ICMP6_LIST))
# icmpmibmap: the ICMP types /proc/net/snmp's Icmp line names, "In"/"Out" + name
ICMPMIBMAP = (("DestUnreachs", 3), ("TimeExcds", 11), ("ParmProbs", 12), ("SrcQuenchs", 4), ("Redirects", 5),
              ("Echos", 8), ("EchoReps", 0), ("Timestamps", 13), ("TimestampReps", 14), ("AddrMasks", 17),
              ("AddrMaskReps", 18))
ICMPMSG_MIB_MAX = 512  # icmpmsg_statistics: In by type, Out by type | 0x100
ICMPMSG_OUT = 0x100

# ip_statistics holds both Ip (snmp) and IpExt (netstat) counters
IPSTATS_MIB = SNMP4_IPSTATS_LIST + SNMP4_IPEXTSTATS_LIST
IPSTATS_MIB_INPKTS = IPSTATS_MIB.index("InReceives")
IPSTATS_MIB_INHDRERRORS = IPSTATS_MIB.index("InHdrErrors")
IPSTATS_MIB_INADDRERRORS = IPSTATS_MIB.index("InAddrErrors")
IPSTATS_MIB_OUTFORWDATAGRAMS = IPSTATS_MIB.index("ForwDatagrams")
IPSTATS_MIB_INUNKNOWNPROTOS = IPSTATS_MIB.index("InUnknownProtos")
IPSTATS_MIB_INDISCARDS = IPSTATS_MIB.index("InDiscards")
IPSTATS_MIB_INDELIVERS = IPSTATS_MIB.index("InDelivers")
IPSTATS_MIB_OUTREQUESTS = IPSTATS_MIB.index("OutRequests")
IPSTATS_MIB_OUTDISCARDS = IPSTATS_MIB.index("OutDiscards")
IPSTATS_MIB_OUTNOROUTES = IPSTATS_MIB.index("OutNoRoutes")
IPSTATS_MIB_REASMTIMEOUT = IPSTATS_MIB.index("ReasmTimeout")
IPSTATS_MIB_REASMREQDS = IPSTATS_MIB.index("ReasmReqds")
IPSTATS_MIB_REASMOKS = IPSTATS_MIB.index("ReasmOKs")
IPSTATS_MIB_REASMFAILS = IPSTATS_MIB.index("ReasmFails")
IPSTATS_MIB_FRAGOKS = IPSTATS_MIB.index("FragOKs")
IPSTATS_MIB_FRAGFAILS = IPSTATS_MIB.index("FragFails")
IPSTATS_MIB_FRAGCREATES = IPSTATS_MIB.index("FragCreates")
IPSTATS_MIB_OUTPKTS = IPSTATS_MIB.index("OutTransmits")
IPSTATS_MIB_INNOROUTES = IPSTATS_MIB.index("InNoRoutes")
IPSTATS_MIB_INTRUNCATEDPKTS = IPSTATS_MIB.index("InTruncatedPkts")
IPSTATS_MIB_INMCASTPKTS = IPSTATS_MIB.index("InMcastPkts")
IPSTATS_MIB_OUTMCASTPKTS = IPSTATS_MIB.index("OutMcastPkts")
IPSTATS_MIB_INBCASTPKTS = IPSTATS_MIB.index("InBcastPkts")
IPSTATS_MIB_OUTBCASTPKTS = IPSTATS_MIB.index("OutBcastPkts")
IPSTATS_MIB_INOCTETS = IPSTATS_MIB.index("InOctets")
IPSTATS_MIB_OUTOCTETS = IPSTATS_MIB.index("OutOctets")
IPSTATS_MIB_INMCASTOCTETS = IPSTATS_MIB.index("InMcastOctets")
IPSTATS_MIB_OUTMCASTOCTETS = IPSTATS_MIB.index("OutMcastOctets")
IPSTATS_MIB_INBCASTOCTETS = IPSTATS_MIB.index("InBcastOctets")
IPSTATS_MIB_OUTBCASTOCTETS = IPSTATS_MIB.index("OutBcastOctets")
IPSTATS_MIB_CSUMERRORS = IPSTATS_MIB.index("InCsumErrors")
IPSTATS_MIB_NOECTPKTS = IPSTATS_MIB.index("InNoECTPkts")  # + (tos & INET_ECN_MASK): ECT1, ECT0, CE follow

# IP_UPD_PO_STATS() counts packets and octets together: each such pair is kept in
# its packets slot as one number, packets << 64 | octets, so the per-packet path
# updates both with one addition of PO_PACKET + length (its octets slot stays 0)
PO_PACKET = 1 << 64
PO_PAIRS = ((IPSTATS_MIB_INPKTS, IPSTATS_MIB_INOCTETS), (IPSTATS_MIB_OUTPKTS, IPSTATS_MIB_OUTOCTETS),
            (IPSTATS_MIB_INMCASTPKTS, IPSTATS_MIB_INMCASTOCTETS), (IPSTATS_MIB_OUTMCASTPKTS, IPSTATS_MIB_OUTMCASTOCTETS),
            (IPSTATS_MIB_INBCASTPKTS, IPSTATS_MIB_INBCASTOCTETS), (IPSTATS_MIB_OUTBCASTPKTS, IPSTATS_MIB_OUTBCASTOCTETS))
IPSTATS_MIB_IN, IPSTATS_MIB_OUT, IPSTATS_MIB_INMCAST, IPSTATS_MIB_OUTMCAST, IPSTATS_MIB_INBCAST, \
    IPSTATS_MIB_OUTBCAST = (packets for packets, _ in PO_PAIRS)
# ip_rcv_core() counts a packet in IPSTATS_MIB_IN and, once its version and IHL
# passed, in its ECN class (IPSTATS_MIB_NOECTPKTS + (tos & INET_ECN_MASK)): such a
# packet's packets and octets go to its class's slot alone, one addition for
# three counters; ip_counters() adds the classes back into InReceives and InOctets
INET_ECN_MASK = 3
IPSTATS_MIB_IN_BY_TOS = tuple(IPSTATS_MIB_NOECTPKTS + (tos & INET_ECN_MASK) for tos in range(256))

# icmp_statistics (the Icmp line's counters that are not per type)
ICMP_MIB = ("InMsgs", "InErrors", "InCsumErrors", "OutMsgs", "OutErrors", "OutRateLimitGlobal", "OutRateLimitHost")
ICMP_MIB_INMSGS, ICMP_MIB_INERRORS, ICMP_MIB_CSUMERRORS, ICMP_MIB_OUTMSGS, ICMP_MIB_OUTERRORS, \
    ICMP_MIB_RATELIMITGLOBAL, ICMP_MIB_RATELIMITHOST = range(len(ICMP_MIB))

# net_statistics' index of each TcpExt/IpExt counter, by the name /proc/net/netstat prints
# (include/uapi/linux/snmp.h's LINUX_MIB_* order, snmp4_net_list in net/ipv4/proc.c)
LINUX_MIB = {name: index for index, name in enumerate(SNMP4_NET_LIST)}

TCP_MIB_INSEGS = SNMP4_TCP_LIST.index("InSegs")
TCP_MIB_OUTSEGS = SNMP4_TCP_LIST.index("OutSegs")
TCP_MIB_OUTRSTS = SNMP4_TCP_LIST.index("OutRsts")
TCP_MIB_CSUMERRORS = SNMP4_TCP_LIST.index("InCsumErrors")
TCP_MIB_INERRS = SNMP4_TCP_LIST.index("InErrs")

UDP_MIB_INDATAGRAMS = SNMP4_UDP_LIST.index("InDatagrams")
UDP_MIB_NOPORTS = SNMP4_UDP_LIST.index("NoPorts")
UDP_MIB_INERRORS = SNMP4_UDP_LIST.index("InErrors")
UDP_MIB_OUTDATAGRAMS = SNMP4_UDP_LIST.index("OutDatagrams")
UDP_MIB_RCVBUFERRORS = SNMP4_UDP_LIST.index("RcvbufErrors")
UDP_MIB_CSUMERRORS = SNMP4_UDP_LIST.index("InCsumErrors")
UDP_MIB_IGNOREDMULTI = SNMP4_UDP_LIST.index("IgnoredMulti")

# tcp_v4_init_net() and tcp_mib_init(): the Tcp line's constants
RTO_ALGORITHM_VANJ, TCP_RTO_MIN_MS, TCP_RTO_MAX_MS, TCP_MAXCONN = 1, 200, 120000, -1


class NetnsMib:
    """struct netns_mib: the namespace's counters, zero at creation."""

    __slots__ = ("ip_statistics", "icmp_statistics", "icmpmsg_statistics", "tcp_statistics", "udp_statistics",
                 "udplite_statistics", "net_statistics", "mptcp_statistics", "ipv6_statistics", "icmpv6_statistics",
                 "icmpv6msg_statistics", "udp_stats_in6", "udplite_stats_in6")

    def __init__(self) -> None:
        self.ip_statistics = [0] * len(IPSTATS_MIB)
        self.icmp_statistics = [0] * len(ICMP_MIB)
        self.icmpmsg_statistics = [0] * ICMPMSG_MIB_MAX
        self.tcp_statistics = [0] * len(SNMP4_TCP_LIST)
        self.tcp_statistics[SNMP4_TCP_LIST.index("RtoAlgorithm")] = RTO_ALGORITHM_VANJ
        self.tcp_statistics[SNMP4_TCP_LIST.index("RtoMin")] = TCP_RTO_MIN_MS
        self.tcp_statistics[SNMP4_TCP_LIST.index("RtoMax")] = TCP_RTO_MAX_MS
        self.tcp_statistics[SNMP4_TCP_LIST.index("MaxConn")] = TCP_MAXCONN
        self.udp_statistics = [0] * len(SNMP4_UDP_LIST)
        self.udplite_statistics = [0] * len(SNMP4_UDP_LIST)
        self.net_statistics = [0] * len(SNMP4_NET_LIST)
        self.mptcp_statistics = [0] * len(MPTCP_SNMP_LIST)
        self.ipv6_statistics = [0] * len(SNMP6_IPSTATS_LIST)
        self.icmpv6_statistics = [0] * len(SNMP6_ICMP6_LIST)
        self.icmpv6msg_statistics = [0] * ICMPMSG_MIB_MAX  # In by type, Out by type | 0x100
        self.udp_stats_in6 = [0] * len(SNMP4_UDP_LIST)
        self.udplite_stats_in6 = [0] * len(SNMP4_UDP_LIST)

    def ip_counters(self) -> list[int]:
        """ip_statistics with each packets-and-octets pair read apart, in IPSTATS_MIB's order."""
        counters = list(self.ip_statistics)
        for packets, octets in PO_PAIRS:
            counters[packets], counters[octets] = divmod(counters[packets], PO_PACKET)
        for ecn in range(IPSTATS_MIB_NOECTPKTS, IPSTATS_MIB_NOECTPKTS + INET_ECN_MASK + 1):
            packets, octets = divmod(counters[ecn], PO_PACKET)
            counters[ecn] = packets
            counters[IPSTATS_MIB_INPKTS] += packets
            counters[IPSTATS_MIB_INOCTETS] += octets
        return counters
