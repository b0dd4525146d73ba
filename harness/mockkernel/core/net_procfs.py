"""/proc/net/softnet_stat (net/core/net-procfs.c softnet_seq_show()): a line
per CPU of its struct softnet_data, fifteen %08x columns: processed, dropped,
time_squeeze, five zeros (was fastroute), a zero (was cpu_collision),
received_rps, flow_limit_count, the backlog's length, the CPU's index, then
the lengths of input_pkt_queue and process_queue (the mock's backlog is one
queue, input_pkt_queue, core/dev.py; net_rx_action() empties it before a
command can read this file).
"""
from __future__ import annotations


def softnet_seq_show(net) -> str:
    lines = []
    for cpu, sd in enumerate(net.softnet):
        columns = (sd.processed, sd.dropped, sd.time_squeeze, 0, 0, 0, 0, 0, 0, sd.received_rps,
                   sd.flow_limit_count, len(sd.input_pkt_queue), cpu, len(sd.input_pkt_queue), 0)
        lines.append(" ".join(f"{value & 0xFFFFFFFF:08x}" for value in columns) + "\n")
    return "".join(lines)


def dev_proc_net_init(net) -> None:
    net.proc_net["softnet_stat"] = softnet_seq_show
