"""The output route lookup (net/ipv4/route.c ip_route_output_key_hash_rcu() and
__mkroute_output()) and the flow it rewrites: the kernel's callers build their
header from the flowi4 they passed, the mock's from the route (Rtable.prefsrc,
Rtable.daddr)."""
from __future__ import annotations

from harness.mockkernel.ipv4 import route
from harness.mockkernel.kernel import Kernel
from harness.mockkernel.net import RTN_BROADCAST, RTN_LOCAL, RTN_UNICAST, ip_to_int
from harness.mockkernel.target import MockTarget, sh
from harness.testing import plan_router

P0_IP, P1_IP = ip_to_int("10.0.0.1"), ip_to_int("10.0.1.1")
LOOPBACK = ip_to_int("127.0.0.1")


def _router() -> Kernel:
    k = Kernel()
    sh(k, ["ip", "addr", "add", "10.0.0.1/24", "dev", "p0"])
    sh(k, ["ip", "addr", "add", "10.0.1.1/24", "dev", "p1"])
    return k


def test_a_flow_to_0_0_0_0_goes_to_its_own_source_through_lo():
    # `if (!fl4->daddr) { fl4->daddr = fl4->saddr; ... dev_out = net->loopback_dev; res->type = RTN_LOCAL`
    rt = route.ip_route_output(_router(), 0, P1_IP)
    assert (rt.type, rt.dev.name, rt.daddr, rt.prefsrc) == (RTN_LOCAL, "lo", P1_IP, P1_IP)


def test_a_flow_to_0_0_0_0_without_a_source_goes_from_and_to_127_0_0_1():
    # `if (!fl4->daddr) fl4->daddr = fl4->saddr = htonl(INADDR_LOOPBACK)`
    rt = route.ip_route_output(_router(), 0)
    assert (rt.type, rt.dev.name, rt.daddr, rt.prefsrc) == (RTN_LOCAL, "lo", LOOPBACK, LOOPBACK)


def test_a_flow_to_0_0_0_0_out_of_a_device_takes_the_devices_address_as_both():
    # with an oif and no source: fl4->saddr = inet_select_addr(dev_out, 0, RT_SCOPE_HOST), then the lo route
    k = _router()
    rt = route.ip_route_output(k, 0, oif=k.dev_by_name("p1").ifindex)
    assert (rt.dev.name, rt.daddr, rt.prefsrc) == ("lo", P1_IP, P1_IP)


def test_a_local_destination_is_sent_through_lo_from_itself_or_the_routes_prefsrc():
    k = _router()
    rt = route.ip_route_output(k, P1_IP)
    assert (rt.type, rt.dev.name, rt.daddr, rt.prefsrc) == (RTN_LOCAL, "lo", P1_IP, P1_IP)
    sh(k, ["ip", "route", "add", "local", "203.0.113.0/24", "dev", "lo", "src", "10.0.0.1"])
    rt = route.ip_route_output(k, ip_to_int("203.0.113.9"))
    assert (rt.dev.name, rt.prefsrc) == ("lo", P0_IP)  # res->fi->fib_prefsrc


def test_a_loopback_source_out_of_another_device_is_einval_unless_route_localnet():
    # __mkroute_output(): ipv4_is_loopback(fl4->saddr) && !(dev_out->flags & IFF_LOOPBACK)
    k = _router()
    assert route.ip_route_output(k, ip_to_int("10.0.1.2"), LOOPBACK) == route.EINVAL
    sh(k, ["sysctl", "-w", "net.ipv4.conf.p1.route_localnet=1"])
    assert route.ip_route_output(k, ip_to_int("10.0.1.2"), LOOPBACK).dev.name == "p1"


def test_the_limited_broadcast_from_a_local_source_goes_out_of_that_sources_device():
    # saddr given, no oif, daddr lbcast: dev_out = __ip_dev_find(net, fl4->saddr); no such device:
    # ENETUNREACH (6.18's `ip route get 255.255.255.255 from 192.0.2.99`: "Network is unreachable")
    k = _router()
    rt = route.ip_route_output(k, 0xFFFFFFFF, P1_IP)
    assert (rt.type, rt.is_broadcast, rt.dev.name, rt.prefsrc) == (RTN_BROADCAST, True, "p1", P1_IP)
    assert route.ip_route_output(k, 0xFFFFFFFF, ip_to_int("192.0.2.1")) == route.ENETUNREACH


def test_with_an_oif_a_destination_without_a_route_is_taken_for_on_link():
    # fib_lookup() failed with fl4->flowi4_oif set: "Assume, that the destination is on link"
    k = _router()
    assert route.ip_route_output(k, ip_to_int("192.0.2.1")) == route.ENETUNREACH
    rt = route.ip_route_output(k, ip_to_int("192.0.2.1"), oif=k.dev_by_name("p0").ifindex)
    assert (rt.type, rt.dev.name, rt.gateway, rt.prefsrc) == (RTN_UNICAST, "p0", None, P0_IP)


def test_a_route_without_prefsrc_takes_the_first_primary_address_not_the_one_on_the_destinations_subnet():
    # fib_select_path() -> fib_result_prefsrc(): inet_select_addr(dev, gateway (0 without one), fi->fib_scope)
    k = _router()
    sh(k, ["ip", "addr", "add", "192.0.2.1/24", "dev", "p2"])
    sh(k, ["ip", "addr", "add", "198.51.100.1/24", "dev", "p2"])
    sh(k, ["ip", "route", "add", "198.51.100.128/25", "dev", "p2"])
    assert route.ip_route_output(k, ip_to_int("198.51.100.200")).prefsrc == ip_to_int("192.0.2.1")


def test_udp_sent_to_0_0_0_0_reaches_a_socket_of_the_sender_from_its_bound_address():
    # udp_sendmsg() builds the datagram from fl4 (saddr = fl4->saddr, daddr = fl4->daddr after the lookup)
    target = MockTarget()
    plan_router(target)
    receiver = target.socket("udp", bind=("0.0.0.0", 5001))
    sender = target.socket("udp", bind=("10.0.1.1", 5000))
    sender.sendto(b"to myself", ("0.0.0.0", 5001))
    assert receiver.recv() == (b"to myself", ("10.0.1.1", 5000))
