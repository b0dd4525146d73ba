"""nft's own syntax on both targets: what the nft 1.0.6 command line refuses
before anything reaches the kernel, with nft's message, caret and exit status,
and the ruleset left as it was.

A name (table, chain, set, jump target) is the grammar's `identifier`, a
STRING: a word nft's scanner turns into a keyword where the name stands is
refused, and so is a quoted string. A word that is a keyword only inside some
expression (ip's `saddr`, ct's `state`, list's `maps` after `list`) is a name
everywhere else.
"""
from __future__ import annotations

import pytest
from scapy.layers.inet import UDP

from harness.target import CommandError

pytestmark = pytest.mark.requires("nftables")

# set and chain named with words of ip's and ct's scanner scopes
SCOPED_NAMES = """
table ip filter {
    set saddr { type ipv4_addr; elements = { 10.0.0.2 } }
    chain state {
        counter
    }
    chain forward {
        type filter hook forward priority filter; policy accept;
        ip saddr @saddr jump state
    }
}
"""


@pytest.mark.parametrize("argv, stdin, error", [
    ("nft add chain ip filter fwd", None,
     "Error: syntax error, unexpected fwd, expecting string\nadd chain ip filter fwd\n                    ^^^"),
    ("nft add table ip counter", None,
     "Error: syntax error, unexpected counter, expecting string\nadd table ip counter\n             ^^^^^^^"),
    ("nft add rule ip filter forward jump limit", None,
     ("Error: syntax error, unexpected limit, expecting '{'\nadd rule ip filter forward jump limit\n"
      "                                ^^^^^")),
    ("nft add rule ip filter forward ip daddr @meta", None,
     ("Error: syntax error, unexpected meta, expecting string\nadd rule ip filter forward ip daddr @meta\n"
      "                                     ^^^^")),
    ("nft list chain ip filter maps", None,
     "Error: syntax error, unexpected maps, expecting string\nlist chain ip filter maps\n                     ^^^^"),
    ("nft delete set ip filter log", None,
     ("Error: syntax error, unexpected log, expecting handle or string\ndelete set ip filter log\n"
      "                     ^^^")),
    (["nft", "add", "rule", "ip", "filter", '"state"', "accept"], None,
     ('Error: syntax error, unexpected quoted string, expecting string\nadd rule ip filter "state" accept\n'
      "                   ^^^^^^^")),
    ("nft -f -", "table ip filter {\n\tchain forward {\n\t\tgoto quota\n\t}\n}\n",
     "/dev/stdin:3:8-12: Error: syntax error, unexpected quota, expecting '{'\n\t\tgoto quota\n\t\t     ^^^^^"),
], ids=["chain fwd", "table counter", "jump limit", "@meta", "list maps", "delete set log", "quoted chain",
        "file goto quota"])
def test_nft_refuses_a_keyword_as_a_name_and_leaves_the_ruleset_as_it_was(target, argv, stdin, error):
    target.sh("nft -f -", stdin=SCOPED_NAMES)
    before = target.sh("nft list ruleset")
    with pytest.raises(CommandError) as refused:
        target.sh(argv, stdin=stdin)
    assert str(refused.value).split("failed: ", 1)[1] == error
    assert refused.value.returncode == 1
    assert target.sh("nft list ruleset") == before


def test_a_set_and_a_chain_named_with_words_of_other_scopes_match_and_jump(target, router):
    """`saddr` and `state` are keywords after `ip` and `ct` only: as names they
    load, and the forwarded packet from the set's address jumps to chain state."""
    h0, h1 = router[0], router[1]
    target.sh("nft -f -", stdin=SCOPED_NAMES)
    target.send(h0.port, h0.to_dut(dst=h1.ip, id=77) / UDP(sport=1111, dport=2222) / b"named")
    forwarded = h1.from_dut(src=h0.ip, dst=h1.ip, ttl=63, id=77) / UDP(sport=1111, dport=2222) / b"named"
    target.expect(h1.port, forwarded)
    assert [(c.table, c.chain, c.packets) for c in target.counters()] == [("filter", "state", 1)]
