"""The ``retro-gamer`` command's ``--help`` texts, for the site: rendered from the parser while the site builds.

In a page, ``.. cli-reference::`` becomes one section per command (``retro-gamer`` itself first), each with
the command's one-line purpose and its ``--help`` exactly as a terminal 100 columns wide prints it. Rendering at
build time keeps the page in step with ``retro_gamer/cli/app.py``, on every Python version (argparse's layout
changes between versions, so committed copies would not match everywhere).

    python docs/_tools/cli_help.py          # print the same texts
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
from collections.abc import Iterator

from generated_rst import GeneratedRst  # this folder's
from sphinx.application import Sphinx

from retro_gamer.cli.app import build_parser

WIDTH = "100"


def subcommands(parser: argparse.ArgumentParser) -> dict[str, str]:
    """Each subcommand's name and one-line help, in the order ``retro-gamer --help`` lists them."""
    for action in parser._actions:  # argparse offers no public way to find a parser's subcommands
        if isinstance(action, argparse._SubParsersAction):
            return {name: sub.description or "" for name, sub in action.choices.items()}
    return {}


def help_text(*words: str) -> str:
    """What ``retro-gamer WORDS --help`` prints in a terminal 100 columns wide."""
    printed = io.StringIO()
    saved = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = WIDTH  # argparse wraps to the terminal's width
    try:
        with contextlib.redirect_stdout(printed), contextlib.suppress(SystemExit):
            build_parser().parse_args([*words, "--help"])
    finally:
        if saved is None:
            del os.environ["COLUMNS"]
        else:
            os.environ["COLUMNS"] = saved
    return printed.getvalue().rstrip() + "\n"


def reference_rst() -> Iterator[str]:
    """The sections of ``.. cli-reference::`` as reStructuredText lines."""
    commands = {"": "The command's own help: every subcommand, with examples", **subcommands(build_parser())}
    for name, purpose in commands.items():
        title = f"``retro-gamer{' ' + name if name else ''}``"
        yield from (
            title,
            "-" * len(title),
            "",
            purpose[:1].upper() + purpose[1:] + ".",
            "",
            ".. code-block:: text",
            "",
        )
        yield from (f"   {line}".rstrip() for line in help_text(*([name] if name else [])).splitlines())
        yield ""


class CliReference(GeneratedRst):
    """``.. cli-reference::``: a section per command with its ``--help``."""

    def lines(self) -> Iterator[str]:
        return reference_rst()


def setup(app: Sphinx) -> dict[str, object]:
    app.add_directive("cli-reference", CliReference)
    return {"parallel_read_safe": True}


if __name__ == "__main__":
    print("\n".join(reference_rst()))
