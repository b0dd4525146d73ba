"""The TRex stand-in's counters, in the JSON TRex reports them in.

Per port: CGlobalStats::port_stats_to_json() (trex-core src/main_dpdk.cpp): opackets,
obytes, ipackets, ibytes, ierrors, oerrors, m_total_{tx,rx}_{bps,pps}; the whole
server: global_stats_to_json(). Per pg_id: CFlowStatRuleMgr::dump_json()
(src/stx/stl/trex_stl_fs.cpp): "flow_stats" {pg_id: {"tp"/"tb"/"rp"/"rb": {port:
count}, "tps"/"tbs"/"rps"/"rbs": {port: rate}}}, "latency" {pg_id: {"lat": {...},
"er": {...}}} and "ver_id" {pg_id: n}; the latency fields are CTimeHistogram::
dump_json()'s (src/time_histogram.cpp): total_max, total_min, last_max, average (us),
histogram {bucket: packets}, buckets 10, 20, .. 90, 100, 200, .. us, each up to the
next, and "0" for everything under 10 us, and "jit" (RFC 3550 jitter, us).
Counts are cumulative since the server started, as TRex's are: the client subtracts
what it saw at clear_stats(). Rates are the last traffic run's averages (the
stand-in's generator reports when it ends, not while it runs).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from harness.traffic import histogram_bucket


@dataclass
class PortCounters:
    opackets: int = 0
    obytes: int = 0
    ipackets: int = 0
    ibytes: int = 0
    tx_pps: float = 0.0
    tx_bps: float = 0.0
    rx_pps: float = 0.0
    rx_bps: float = 0.0

    def to_json(self) -> dict:
        return {"opackets": self.opackets, "obytes": self.obytes, "ipackets": self.ipackets,
                "ibytes": self.ibytes, "ierrors": 0, "oerrors": 0,
                "m_total_tx_bps": self.tx_bps, "m_total_tx_pps": self.tx_pps,
                "m_total_rx_bps": self.rx_bps, "m_total_rx_pps": self.rx_pps, "m_cpu_util": 0.0}


def global_stats(ports: list[PortCounters]) -> dict:
    """CGlobalStats::global_stats_to_json(): the sums over the ports; the fields of
    what the stand-in does not have (CPU, flows, NAT) are 0."""
    tx_bps, rx_bps = sum(p.tx_bps for p in ports), sum(p.rx_bps for p in ports)
    tx_pps, rx_pps = sum(p.tx_pps for p in ports), sum(p.rx_pps for p in ports)
    stats = dict.fromkeys((
        "m_cpu_util", "m_cpu_util_raw", "m_bw_per_core", "m_rx_cpu_util", "m_rx_core_pps", "m_tx_cps",
        "m_tx_expected_cps", "m_total_alloc_error", "m_total_queue_full", "m_total_queue_drop",
        "m_rx_drop_bps", "m_active_flows", "m_open_flows", "m_total_clients", "m_total_servers",
        "m_active_sockets", "m_socket_util", "m_total_nat_time_out", "m_total_nat_time_out_wait_ack",
        "m_total_nat_no_fid", "m_total_nat_active", "m_total_nat_syn_wait", "m_total_nat_open",
        "m_total_nat_learn_error"), 0)
    stats.update({
        "m_platform_factor": 1.0, "m_tx_bps": tx_bps, "m_rx_bps": rx_bps, "m_tx_pps": tx_pps,
        "m_rx_pps": rx_pps, "m_tx_expected_pps": tx_pps, "m_tx_expected_bps": tx_bps,
        "m_total_tx_pkts": sum(p.opackets for p in ports), "m_total_rx_pkts": sum(p.ipackets for p in ports),
        "m_total_tx_bytes": sum(p.obytes for p in ports), "m_total_rx_bytes": sum(p.ibytes for p in ports)})
    return stats


def trex_histogram_bucket(latency_us: float) -> int:
    """CTimeHistogram's bucket: 0 under 10 us, else the leading digit times the
    decade, as harness.traffic.histogram_bucket() (which splits 0-10 us finer)."""
    return 0 if latency_us < 10 else histogram_bucket(latency_us)


@dataclass
class Latency:
    """One pg_id's latency and sequence errors (RXLatency in trex-core)."""

    packets: int = 0
    sum_us: float = 0.0
    min_us: float = 0.0
    max_us: float = 0.0
    last_max_us: float = 0.0
    jitter_us: float = 0.0
    histogram: dict[int, int] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=lambda: dict.fromkeys(("drp", "ooo", "dup", "sth", "stl"), 0))

    def to_json(self) -> dict:
        lat = {"total_max": self.max_us, "total_min": self.min_us, "last_max": self.last_max_us,
               "average": self.sum_us / self.packets if self.packets else 0.0,
               "histogram": {str(bucket): packets for bucket, packets in sorted(self.histogram.items())},
               "jit": self.jitter_us}
        entry = {"lat": lat}
        errors = {name: count for name, count in self.errors.items() if count}
        if errors:
            entry["er"] = errors
        return entry


@dataclass
class PgidCounters:
    """One pg_id's counts by port (CFlowStatUserIdInfo)."""

    latency: Latency | None
    ver_id: int = 1
    tx_packets: dict[int, int] = field(default_factory=dict)
    tx_bytes: dict[int, int] = field(default_factory=dict)
    rx_packets: dict[int, int] = field(default_factory=dict)
    rx_bytes: dict[int, int] = field(default_factory=dict)
    rates: dict[str, dict[int, float]] = field(default_factory=dict)  # "tps" .. "rbs" -> port -> rate

    def to_json(self, nports: int) -> dict:
        counts = {"tp": self.tx_packets, "tb": self.tx_bytes, "rp": self.rx_packets, "rb": self.rx_bytes}
        entry = {key: {str(p): values.get(p, 0) for p in range(nports)} for key, values in counts.items()}
        for key in ("tps", "tbs", "rps", "rbs"):
            entry[key] = {str(p): round(self.rates.get(key, {}).get(p, 0.0), 2) for p in range(nports)}
        return entry


class PgidTable:
    """The server's pg_ids: registered while a stream carries them."""

    def __init__(self, nports: int):
        self.nports = nports
        self.pgids: dict[int, PgidCounters] = {}

    def register(self, pg_id: int, latency: bool) -> None:
        """A stream with `pg_id` was added: its counts start over (a new ver_id)."""
        old = self.pgids.get(pg_id)
        self.pgids[pg_id] = PgidCounters(Latency() if latency else None, (old.ver_id + 1) if old else 1)

    def unregister(self, pg_id: int) -> None:
        self.pgids.pop(pg_id, None)

    def active(self) -> dict:
        """TrexRpcCmdGetActivePGIds."""
        return {"ids": {"flow_stats": sorted(p for p, c in self.pgids.items() if c.latency is None),
                        "latency": sorted(p for p, c in self.pgids.items() if c.latency is not None)}}

    def to_json(self, pgids: list[int]) -> dict:
        """TrexRpcCmdGetPGIdsStats: the pg_ids asked for that exist."""
        known = [p for p in pgids if p in self.pgids]
        return {"flow_stats": {str(p): self.pgids[p].to_json(self.nports) for p in known},
                "latency": {str(p): self.pgids[p].latency.to_json() for p in known
                            if self.pgids[p].latency is not None},
                "ver_id": {str(p): self.pgids[p].ver_id for p in known}}
