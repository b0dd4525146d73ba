"""The suite-writing kit: what a suite in any directory imports to speak about the DUT.

- the addressing plan (`Host`: h0..h2 on the DUT's ports, plan.py), built on a
  target by plan_hosts()/plan_router() or by the `hosts`/`router` fixtures, and
  its IPv6 side (ipv6_on(), plan_hosts6(), the `hosts6`/`router6` fixtures)
  (fixtures.py, registered by the packet-journey pytest plugin: no conftest.py);
- masks for the frames Linux sends with an unpredictable IP ID or IPv6 flow
  label (masks.py);
- readings in the same shape on every target: drops, rule counters, and
  waiting on the target's clock until one holds (readings.py).

    from harness.testing import Host, drops, icmp_socket_mask, quoted
"""
from harness.testing.masks import (auto_flowlabel_mask, icmp_socket_mask, icmp_timestamp_reply_mask, quoted, quoted6,
                                   socket_datagram_mask)
from harness.testing.plan import Host, bridge_up, forward, ipv6_on, plan_hosts, plan_hosts6, plan_router
from harness.testing.readings import (counted, counted_by_comment, counted_by_iptables_comment, counted_in_chain,
                                      drops, forwarded_matches, matched_by, wait_until)

__all__ = ["Host", "auto_flowlabel_mask", "bridge_up", "counted", "counted_by_comment", "counted_by_iptables_comment",
           "counted_in_chain", "drops",
           "forward", "forwarded_matches", "icmp_socket_mask", "icmp_timestamp_reply_mask", "ipv6_on", "matched_by", "plan_hosts", "plan_hosts6", "plan_router", "quoted", "quoted6",
           "socket_datagram_mask", "wait_until"]
