"""nftables src/proto.c: the transport headers beyond tcp, udp and icmp that
nft names (proto_sctp, proto_dccp, proto_ah, proto_esp, proto_comp,
proto_udplite, proto_igmp), registered as payload protocols.

Each is a PROTO_BASE_TRANSPORT_HDR descriptor: a field is nft_payload's load
at its offset from the transport header (pkt->thoff, past IPv6 extension
headers), and nft puts `meta l4proto P` before the first one
(payload_gen_dependency()), which `nft list` leaves out again. The offsets
are the wire views' (wire/sctp.py, dccp.py, ipsec.py, udplite.py, igmp.py),
the types proto.c's: `dccp type` is dccp_pkttype_type over bits 1-4 of byte
8, `igmp type` igmp_type_type, `comp flags` bitmask_type (printed in hex),
`igmp group` a plain integer as proto.c has it. Left out: setting these
fields (nft_payload_set_eval() with NFT_PAYLOAD_CSUM_SCTP's CRC32c).
"""
from __future__ import annotations

from harness.mockkernel.netfilter import nft_datatype as types
from harness.mockkernel.netfilter.nft_exprs import Field, register_payload_protocol
from harness.mockkernel.wire import dccp, igmp, ipsec, sctp, udplite
from harness.mockkernel.wire.ipv4 import IPPROTO_IGMP


class HexIntegerType(types.IntegerType):
    """bitmask_type without symbols: printed as 0x%x (`comp flags 0x0`); nft
    compares it as the integer it is written as."""

    def format(self, value) -> str:
        return f"0x{value:x}"


u8 = types.ttl  # proto.c's 8-bit integer fields
u16 = types.length16
u32 = types.IntegerType("integer", 32, "integer")
comp_flags = HexIntegerType("bitmask", 8, "bitmask")
# src/proto.c dccp_pkttype_tbl (enum dccp_pkt_type)
dccp_pkttype = types.SymbolicType("dccp_pkttype", 4, "DCCP packet type", {
    "request": 0, "response": 1, "data": 2, "ack": 3, "dataack": 4, "closereq": 5, "close": 6,
    "reset": 7, "sync": 8, "syncack": 9})
# src/proto.c igmp_type_tbl
igmp_type = types.SymbolicType("igmp_type", 8, "IGMP type", {
    "membership-query": igmp.IGMP_HOST_MEMBERSHIP_QUERY, "membership-report-v1": igmp.IGMP_HOST_MEMBERSHIP_REPORT,
    "membership-report-v2": igmp.IGMPV2_HOST_MEMBERSHIP_REPORT,
    "membership-report-v3": igmp.IGMPV3_HOST_MEMBERSHIP_REPORT, "leave-group": igmp.IGMP_HOST_LEAVE_MESSAGE})


def _register(proto: str, number: int, *specs) -> None:
    register_payload_protocol(proto, number, {spec[0]: Field(proto, *spec) for spec in specs})


_register("sctp", sctp.IPPROTO_SCTP, ("sport", sctp.SOURCE, 16, types.inet_service),
          ("dport", sctp.DEST, 16, types.inet_service), ("vtag", sctp.VTAG, 32, u32),
          ("checksum", sctp.CHECKSUM, 32, u32))
_register("dccp", dccp.IPPROTO_DCCP, ("sport", dccp.SOURCE, 16, types.inet_service),
          ("dport", dccp.DEST, 16, types.inet_service),
          ("type", dccp.TYPE_X, 4, dccp_pkttype, dccp.TYPE_MASK, dccp.TYPE_SHIFT))
_register("ah", ipsec.IPPROTO_AH, ("nexthdr", ipsec.AH_NEXTHDR, 8, types.inet_proto),
          ("hdrlength", ipsec.AH_HDRLEN, 8, u8), ("reserved", ipsec.AH_RESERVED, 16, u16),
          ("spi", ipsec.AH_SPI, 32, u32), ("sequence", ipsec.AH_SEQ, 32, u32))
_register("esp", ipsec.IPPROTO_ESP, ("spi", ipsec.ESP_SPI, 32, u32), ("sequence", ipsec.ESP_SEQ, 32, u32))
_register("comp", ipsec.IPPROTO_COMP, ("nexthdr", ipsec.COMP_NEXTHDR, 8, types.inet_proto),
          ("flags", ipsec.COMP_FLAGS, 8, comp_flags), ("cpi", ipsec.COMP_CPI, 16, u16))
_register("udplite", udplite.IPPROTO_UDPLITE, ("sport", udplite.SOURCE, 16, types.inet_service),
          ("dport", udplite.DEST, 16, types.inet_service), ("csumcov", udplite.CSCOV, 16, u16),
          ("checksum", udplite.CHECK, 16, u16))
_register("igmp", IPPROTO_IGMP, ("type", igmp.TYPE, 8, igmp_type), ("mrt", igmp.CODE, 8, u8),
          ("checksum", igmp.CSUM, 16, u16), ("group", igmp.GROUP, 32, u32))

# payload.c payload_gen_special_dependency(): igmp, like icmp, needs its network
# protocol, matched at the link layer's protocol key (`meta nfproto ipv4` in
# inet, `meta protocol ip` in netdev, `ether type ip` in bridge) where the rule
# has none; unlike icmp's, `nft list` keeps it (payload_may_dependency_kill()
# releases it only for an icmp header)
NETWORK_OF = {"igmp": "ip"}
# a next-protocol field whose descriptor has no length nft 1.0.6 can take a
# protocol context from: matching it to a value or set aborts nft (payload.c:117)
ABORTING_NEXTHDR = {("ah", "nexthdr"), ("comp", "nexthdr")}


def nexthdr_abort(proto: str, field: str) -> str | None:
    """What nft 1.0.6 prints as it aborts on `ah nexthdr tcp` (payload_expr_pctx_update()), or None."""
    if (proto, field) not in ABORTING_NEXTHDR:
        return None
    return ("nft: payload.c:117: payload_expr_pctx_update: Assertion `base->length > 0' failed "
            f"(nft 1.0.6 aborts on `{proto} {field}` compared with a value or set)")
