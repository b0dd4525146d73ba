"""Scripts in google/packetdrill's language, run on any target.

    lexer.py    tokens as packetdrill's lexer.l makes them, with line and column
    parser.py   the subset of packetdrill's parser.y the harness runs; errors name
                the line and the token
    script.py   the parsed script: options, addressing, timed events
    segment.py  TCP/IPv4 frames to and from the tester port
    runner.py   the script's events over the Target API (docs/packetdrill.md)
    __main__.py `python -m harness.packetdrill --target mock|dut SCRIPT...`
"""
from harness.packetdrill.lexer import ScriptSyntaxError
from harness.packetdrill.parser import parse, parse_file
from harness.packetdrill.runner import ScriptFailure, run_script

__all__ = ["ScriptFailure", "ScriptSyntaxError", "parse", "parse_file", "run_script"]
