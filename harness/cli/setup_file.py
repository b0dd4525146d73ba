"""The `--setup` file of `journey`: the commands that configure the DUT, one per line,
as an operator writes them in a shell script (target.sh() runs each).

What sh would do with such a script, and nothing more: words split and quotes
removed as sh does (shlex), `#` comments, blank lines, a backslash at the end of a
line continuing it, and here-documents (`nft -f - <<EOF` ... `EOF`, also `<<'EOF'`
and `<<-EOF`, which strips leading tabs) whose text is the command's stdin, taken
literally. Pipes, redirections, `;` lists and variables are not interpreted: their
words reach the tool as arguments, and the tool's error says so.
"""
from __future__ import annotations

import shlex
from dataclasses import dataclass


class SetupFileError(ValueError):
    """The file cannot be read as commands; the message names the file and line."""


@dataclass(frozen=True)
class SetupCommand:
    """One command of the file and the line it starts on."""

    line: int
    argv: tuple[str, ...]
    stdin: str | None = None

    def __str__(self) -> str:
        return shlex.join(self.argv)


def read_setup_file(path: str) -> list[SetupCommand]:
    try:
        with open(path, encoding="utf-8") as file:
            text = file.read()
    except OSError as exc:
        raise SetupFileError(f"cannot read the setup file {path}: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise SetupFileError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    return parse_setup(text, path)


def parse_setup(text: str, name: str = "<setup>") -> list[SetupCommand]:
    """The commands of a setup file's text; `name` titles its errors."""
    lines = text.splitlines()
    commands = []
    index = 0
    while index < len(lines):
        first = index
        logical = lines[index]
        while logical.endswith("\\") and index + 1 < len(lines):
            index += 1
            logical = logical[:-1] + lines[index]
        index += 1
        try:
            argv = shlex.split(logical, comments=True)
        except ValueError as exc:
            raise SetupFileError(f"{name}:{first + 1}: {exc}: {logical.strip()}") from None
        if not argv:
            continue
        argv, heredoc = _heredoc_word(argv, name, first + 1)
        stdin = None
        if heredoc is not None:
            stdin, index = _heredoc_body(lines, index, heredoc, name, first + 1)
        commands.append(SetupCommand(first + 1, tuple(argv), stdin))
    return commands


@dataclass(frozen=True)
class _Heredoc:
    delimiter: str
    strip_tabs: bool


def _heredoc_word(argv: list[str], name: str, line: int) -> tuple[list[str], _Heredoc | None]:
    """argv without its `<<WORD` (or `<< WORD`), and the here-document it opens."""
    for position, word in enumerate(argv):
        if not word.startswith("<<"):
            continue
        strip_tabs = word.startswith("<<-")
        operator = "<<-" if strip_tabs else "<<"
        if word == operator:  # `<< EOF`: the word is the next argument
            delimiter, rest = (argv[position + 1], argv[position + 2:]) if position + 1 < len(argv) else ("", [])
        else:
            delimiter, rest = word.removeprefix(operator), argv[position + 1:]
        if not delimiter:
            raise SetupFileError(f"{name}:{line}: `{operator}` without the word that ends the here-document")
        return argv[:position] + rest, _Heredoc(delimiter, strip_tabs)
    return argv, None


def _heredoc_body(lines: list[str], index: int, heredoc: _Heredoc, name: str, line: int) -> tuple[str, int]:
    """The here-document's text starting at lines[index], and the index after its end line."""
    body = []
    while index < len(lines):
        text = lines[index].lstrip("\t") if heredoc.strip_tabs else lines[index]
        index += 1
        if text == heredoc.delimiter:
            return "".join(part + "\n" for part in body), index
        body.append(text)
    raise SetupFileError(f"{name}:{line}: the here-document never ends: no line `{heredoc.delimiter}` after it")
