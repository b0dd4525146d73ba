"""Conformance runners: the nftables and iptables projects' own regression tests
(nftables tests/py, iptables extensions/*.t), read from a checkout of those
repositories and replayed on the mock and, as root, on the real tools in a
scratch network namespace. `python -m harness.conformance nft|iptables --checkout DIR`.

The test files are read from the checkout, never copied into this repository.
"""
