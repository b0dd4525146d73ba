"""What every front end shares: the error a tool prints, and a token cursor.

A front end raises `ToolError` with the text the real tool prints (on stderr)
and its exit status; `cmd.run()` turns it into a CommandError carrying the
command line. `not_modelled()` is the one error the real tool never prints: the
syntax is valid but the mock kernel has no model of it. Both live in
core/errors.py, the leaf the kernel's layers raise them from.
"""
from __future__ import annotations

from harness.mockkernel.core.errors import ToolError, not_modelled

__all__ = ["Args", "ToolError", "c_uint", "not_modelled"]


def c_uint(text: str, base: int = 0) -> int | None:
    """strtoul() as the tools use it: the whole token must be one number, with
    base 0 meaning 0x.. hex, 0.. octal, else decimal; None when it is not."""
    digits = text
    if base == 0:
        if text[:2].lower() == "0x":
            base, digits = 16, text[2:]
        elif len(text) > 1 and text[0] == "0":
            base, digits = 8, text[1:]
        else:
            base = 10
    elif base == 16 and text[:2].lower() == "0x":
        digits = text[2:]
    try:
        return int(digits, base) if digits.isalnum() else None
    except ValueError:
        return None


class Args:
    """The tokens after a command, consumed left to right."""

    def __init__(self, tokens: list[str], incomplete: ToolError):
        self.tokens = list(tokens)
        self.pos = 0
        self.incomplete = incomplete  # what the tool says when a value is missing

    def __bool__(self) -> bool:
        return self.pos < len(self.tokens)

    def peek(self) -> str | None:
        return self.tokens[self.pos] if self else None

    def pop(self) -> str:
        """The next token; the tool's "incomplete" error when there is none."""
        if not self:
            raise self.incomplete
        self.pos += 1
        return self.tokens[self.pos - 1]

    def rest(self) -> list[str]:
        tokens, self.pos = self.tokens[self.pos:], len(self.tokens)
        return tokens
