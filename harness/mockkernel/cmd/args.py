"""A token cursor shared by the front ends: iproute2-style keyword parsing."""
from __future__ import annotations

from harness.target import CommandError


class Args:
    def __init__(self, argv: list[str], start: int = 1):
        self.argv, self.pos = argv, start

    def more(self) -> bool:
        return self.pos < len(self.argv)

    def peek(self) -> str | None:
        return self.argv[self.pos] if self.more() else None

    def take(self, what: str = "argument") -> str:
        if not self.more():
            raise self.error(f"Error: missing {what} after \"{self.argv[-1]}\"")
        self.pos += 1
        return self.argv[self.pos - 1]

    def take_int(self, what: str) -> int:
        token = self.take(what)
        try:
            return int(token, 0)
        except ValueError:
            raise self.error(f'Error: argument "{token}" is wrong: invalid {what}') from None

    def garbage(self, token: str) -> CommandError:
        return self.error(f'Error: either "to" is duplicate, or "{token}" is a garbage.')

    def error(self, message: str) -> CommandError:
        return CommandError(self.argv, message)
