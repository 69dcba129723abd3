"""The README's code runs, top to bottom, in a fresh project folder, the way tests/test_site.py runs a page.

* A fenced ```` ```console ```` block: a line starting ``% `` is a command, run in bash with this environment's
  ``retro-gamer`` and ``python`` first on PATH, and must exit 0; other lines are output, not checked. ``% cd DIR``
  changes the folder of the later commands and files. ``% . .venv/bin/activate`` is what the reader types once;
  here the environment is already first on PATH. A command ``python NAME.py`` whose file calls ``.play(`` runs on
  a pseudo-terminal, as a game needs one.
* A ```` ```python ```` block whose first line is ``# NAME.py`` is saved as that file in the current folder; any
  other block runs as ``python -c`` there (on a pseudo-terminal when it calls ``.play(``).
* A ```` ```toml ```` block is saved as the current folder's ``pyproject.toml``.
* ``<!-- not-tested: REASON -->`` on the line before a block: not run; their number is ``EXEMPT``.
* Training commands get tiny budgets, exactly as on the site's pages (tests/test_site.py's ``tiny``).

The two commands at the top (install and train, install and test) have no prompt: they install packages, so
they are not run here; their text is checked instead, and the test command is the one ``.ci/run`` runs.
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import REPO, run_in_terminal
from test_site import BIN, console_commands, page_env, tiny

README = REPO / "README.md"
EXEMPT = 2  # dvc repro (minutes of training; tests/test_pipeline.py runs the pipeline) and mlflow ui (a server)
INSTALL_AND_TRAIN = (
    'python3 -m venv .venv && .venv/bin/pip install "torch==2.13.0" -e ".[all]" && '
    ".venv/bin/python -m retro_gamer.train +game=snake trainer.time_limit=1"
)
INSTALL_AND_TEST = (
    'python3 -m venv .venv && .venv/bin/pip install "torch==2.13.0" -e ".[all,dev]" && .venv/bin/python -m pytest'
)
ACTIVATE = ". .venv/bin/activate"


@dataclass
class Block:
    line: int
    language: str
    code: str
    exempt: str | None = None


def readme_blocks(text: str) -> list[Block]:
    """Every fenced block of the README in order, with its ``<!-- not-tested: REASON -->`` mark."""
    blocks = []
    for match in re.finditer(r"^```(\w*)\n(.*?)^```$", text, re.M | re.S):
        line = text.count("\n", 0, match.start()) + 1
        before = text[: match.start()].rstrip("\n").rsplit("\n", 1)[-1]
        mark = re.fullmatch(r"<!-- not-tested:(.*)-->", before.strip())
        blocks.append(Block(line, match[1], match[2], mark[1].strip() if mark else None))
    return blocks


def test_the_two_commands_stay_as_ci_runs_them():
    text = README.read_text(encoding="utf-8")
    lines = text.splitlines()
    assert INSTALL_AND_TRAIN in lines and INSTALL_AND_TEST in lines
    assert INSTALL_AND_TEST in (REPO / ".ci" / "run").read_text(encoding="utf-8").splitlines()


def test_the_virtualenv_is_activated_before_the_first_bare_command():
    commands = [c for b in readme_blocks(README.read_text(encoding="utf-8")) for c, _ in console_commands(b.code)]
    bare = [i for i, c in enumerate(commands) if re.match(r"(python|retro-gamer|dvc|mlflow)\b", c)]
    assert commands.index(ACTIVATE) < bare[0]


def test_every_exemption_has_a_reason_and_they_are_counted():
    blocks = readme_blocks(README.read_text(encoding="utf-8"))
    exempt = [b for b in blocks if b.exempt is not None]
    assert all(b.exempt for b in exempt) and len(exempt) == EXEMPT, [(b.line, b.exempt) for b in exempt]
    assert {b.language for b in blocks} <= {"console", "python", "toml", "text", ""}


def test_every_file_the_readme_links_exists():
    links = re.findall(r"\]\((docs/[^)#]+)\)", README.read_text(encoding="utf-8"))
    assert links and all((REPO / link).is_file() for link in links), [x for x in links if not (REPO / x).is_file()]


def _plays(command: str, cwd: Path) -> bool:
    words = command.split()
    return len(words) == 2 and words[0] == "python" and ".play(" in (cwd / words[1]).read_text(encoding="utf-8")


@pytest.mark.slow
def test_every_block_of_the_readme_runs(tmp_path: Path):
    cwd = tmp_path / "project"
    cwd.mkdir()
    env = page_env()
    for block in readme_blocks(README.read_text(encoding="utf-8")):
        if block.exempt is not None or block.language == "text":
            continue
        where = f"README.md:{block.line}"
        first = block.code.splitlines()[0] if block.code.strip() else ""
        if block.language == "toml":
            (cwd / "pyproject.toml").write_text(block.code)
        elif block.language == "python" and re.fullmatch(r"# [\w./-]+\.py", first):
            (cwd / first[2:]).write_text(block.code)
        elif block.language == "python" and ".play(" in block.code:
            run_in_terminal([str(BIN / "python"), "-c", block.code], cwd=cwd)
        elif block.language == "python":
            result = subprocess.run(
                [str(BIN / "python"), "-c", block.code], cwd=cwd, env=env, capture_output=True, text=True, timeout=600
            )
            assert result.returncode == 0, f"{where}:\n{result.stdout[-3000:]}{result.stderr[-3000:]}"
        else:
            for command, _ in console_commands(block.code):
                if command == ACTIVATE:
                    continue  # this environment is already first on PATH
                if command.startswith("cd "):
                    cwd = (cwd / command[3:].strip()).resolve()
                    continue
                if _plays(command, cwd):
                    run_in_terminal([str(BIN / "python"), command.split()[1]], cwd=cwd)
                    continue
                run = tiny(command)
                result = subprocess.run(
                    ["bash", "-c", run], cwd=cwd, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True
                )
                assert result.returncode == 0, (
                    f"{where}: `{command}` (run as `{run}`):\n{result.stdout[-3000:]}{result.stderr[-3000:]}"
                )
    # what the reader was promised: a replay page, a learning curve, and a trained run of their own game
    assert (tmp_path / "project" / "snake.html").is_file()
    assert (cwd / "catch_star.html").is_file() and (cwd / "curve.png").is_file()
    assert sorted((cwd / "runs" / "catch_star" / "checkpoints").glob("ep_*.pt"))
