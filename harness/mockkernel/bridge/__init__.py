"""The Linux bridge (net/bridge): a software switch whose ports are the DUT's devices.

br_device.py (the bridge device, its link kind and options), br_if.py (ports),
br_input.py (br_handle_frame: what a port receives), br_forward.py (br_forward,
br_flood, br_multicast_flood), br_fdb.py (the forwarding database: learning, ageing,
static entries), br_multicast.py (IGMP/MLD snooping, the mdb, queriers), br_vlan.py
(VLAN filtering), br_stp.py (802.1D spanning tree: BPDUs, root election, port
states), br_private.py (the structures, include/ and net/bridge/br_private.h).
"""
