"""Userspace libraries the front ends share (iproute2's lib/, the copies
iptables' extensions make of it): what a tool and an iptables extension parse
alike. The bottom layer of the mock: it imports nothing of it."""
