"""nftables 1.0.6's `nft` (src/main.c): options, then a command line or `-f FILE`
(`-f -`: stdin), run as one transaction on the namespace's nf_tables
(netfilter/nf_tables.py). Errors print as nft prints them, exit status 1.

Options modelled: -f/--file, -a/--handle, -s/--stateless, -c/--check,
-j/--json (list output only), -p/--numeric-protocol. Anything else is an error naming it.
"""
from __future__ import annotations

from harness.mockkernel.cmd.args import ToolError, not_modelled
from harness.mockkernel.netfilter.nf_tables import ListOptions
from harness.mockkernel.netfilter.nft_parser import NftError

LONG_OPTIONS = {"--file": "-f", "--handle": "-a", "--stateless": "-s", "--check": "-c", "--json": "-j", "--numeric-protocol": "-p"}
# nft's other options: valid, but not modelled
OTHER_OPTIONS = {"-i", "-D", "-o", "-e", "-t", "-S", "-N", "-u", "-y", "-T", "-n", "-d", "-I", "-h", "-v",
                 "-V"}


def main(net, argv: list[str], stdin: str | None = None) -> str:
    opts, check, json_out, file, words = ListOptions(), False, False, None, list(argv[1:])
    while words and words[0].startswith("-") and words[0] != "-":
        word = words.pop(0)
        flags = [LONG_OPTIONS[word]] if word in LONG_OPTIONS else [f"-{c}" for c in word[1:]]
        for flag in flags:
            if flag == "-f":
                if not words:
                    raise ToolError("nft: option requires an argument -- 'f'", 1)
                file = words.pop(0)
            elif flag == "-a":
                opts.handles = True
            elif flag == "-s":
                opts.stateless = True
            elif flag == "-c":
                check = True
            elif flag == "-j":
                json_out = True
            elif flag == "-p":
                opts.numeric_proto = True
            elif flag in OTHER_OPTIONS:
                raise not_modelled(f"nft option {flag}")
            else:
                raise ToolError(f"nft: invalid option -- '{flag[1:]}'", 1)
    if file is not None:
        if words:
            raise ToolError("Error: syntax error, options must be specified before commands", 1)
        text, source = _read(file, stdin), "/dev/stdin" if file == "-" else file
    else:
        text, source = " ".join(words), None
    try:
        if json_out and file is not None:
            raise not_modelled("nft -j -f (JSON input)")
        opts.json = json_out
        return net.nft.execute(text, source, opts, check_only=check)
    except NftError as err:
        raise ToolError(err.render(), 1) from None


def _read(file: str, stdin: str | None) -> str:
    if file == "-":
        return stdin or ""
    try:
        with open(file, encoding="utf-8") as f:
            return f.read()
    except OSError as err:
        raise ToolError(f'Error: Could not open file "{file}": {err.strerror}', 1) from None
