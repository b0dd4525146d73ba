"""Userspace libraries the front ends share: glibc's number readers
(libc.py) and iproute2's lib/ (utils_math.py, which iptables' rate
extensions copy). The bottom layer of the mock: it imports nothing of it."""
