"""The differential runner (`python -m harness.diff`): the real kernel checks the
mock on scenarios nobody wrote.

A scenario (scenario.py) is a DUT configuration drawn by hypothesis from a grammar
of what the mock models (sysctls, routes, an nft ruleset of filter and NAT chains)
and a few frames, valid and malformed, sent into one port of the addressing plan's
router. It runs on a fresh mock and a fresh netns lab (`journey trace`'s trace_on()),
and `journey diff`'s comparison (harness/cli/diff.py) says where they differ: the
netfilter chains and NAT rewrites both observe, the drop and its reason, and the
frames out of every port, bit for bit after the documented masks. A divergence is
shrunk (runner.shrink()) to a minimal scenario and can be written as a regression
case (suites/diff_cases/*.json) that suites/test_diff_cases.py replays on every
target against the kernel's recorded outcome.

Prints `figure diff.scenarios N count` and `figure diff.divergences N count`.
Divergences that are explained (nondeterminism, timing) are listed in explained.py.
"""
