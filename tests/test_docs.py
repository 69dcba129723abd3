"""Every code block of docs/integrating-a-trained-model.rst, run in order in a fresh project.

Python blocks that start with ``# NAME.py`` are saved as that file; other Python blocks run (the
ones that call ``game.play()`` on a pseudo-terminal); the TOML block becomes the project's
pyproject.toml; console commands run through the real ``retro-gamer`` entry point. The only change
the test makes: ``create`` gets small trainer settings so each training round takes seconds.
The blocks that play in a terminal (real time, at the game's frame rate) need only runs/snake, so
they play while the later blocks run, and are checked at the end.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from conftest import REPO, TINY, run_in_terminal

from retro_gamer.config.compose import compose_app, run_config_from_hydra
from retro_gamer.launch import train_run
from retro_gamer.run.directory import prepare_run

PAGE = REPO / "docs" / "integrating-a-trained-model.rst"
CLI = str(Path(sys.executable).parent / "retro-gamer")
SMALL = [*TINY, "trainer.episodes=4", "trainer.checkpoint_every=2"]


def code_blocks(text: str) -> list[tuple[str, str]]:
    blocks = []
    for match in re.finditer(r"^( *)\.\. code-block:: (\w+)\n\n((?:\1 +.*\n|\n)+)", text, re.M):
        blocks.append((match.group(2), textwrap.dedent(match.group(3)).strip() + "\n"))
    return blocks


def console_commands(block: str) -> list[list[str]]:
    joined = block.replace("\\\n", " ")
    return [shlex.split(line[2:], comments=True) for line in joined.splitlines() if line.startswith("% ")]


def test_every_block_on_the_integration_page_runs(tmp_path: Path, monkeypatch):
    project = tmp_path / "project"
    run = project / "runs" / "snake"
    # A real snake run with the checkpoint the page names (ep_0500); no learning and one-turn episodes, so it
    # takes a second.
    cfg = run_config_from_hydra(
        compose_app(
            [
                "+game=snake",
                *TINY,
                "trainer.episodes=500",
                "trainer.checkpoint_every=250",
                "trainer.warmup_steps=1000000000",
                "game.max_turns=1",
            ]
        ),
        "snake",
    )
    train_run(run, prepare_run(cfg, run, "snake"), progress=False)

    blocks = code_blocks(PAGE.read_text())
    kinds = [kind for kind, _ in blocks]
    assert kinds.count("python") == 7 and kinds.count("console") == 3 and kinds.count("toml") == 1
    namespace: dict = {}
    monkeypatch.chdir(project)  # the page's paths (runs/snake/) are relative to the game's folder
    played = []
    with ThreadPoolExecutor(2) as terminal:
        for kind, code in blocks:
            first = code.splitlines()[0]
            if kind == "toml":
                (project / "pyproject.toml").write_text(code)
            elif kind == "python" and re.fullmatch(r"# \w+\.py", first):
                (project / first[2:]).write_text(code)
            elif kind == "python" and "game.play(" in code:
                played.append(terminal.submit(run_in_terminal, [sys.executable, "-c", code], cwd=project))
            elif kind == "python":
                exec(compile(code, str(PAGE), "exec"), namespace, namespace)
            else:
                for command in console_commands(code):
                    assert command[0] == "retro-gamer"
                    extra = SMALL if command[1] == "create" else []
                    result = subprocess.run(
                        [CLI, *command[1:], *extra], cwd=project, capture_output=True, text=True, timeout=600
                    )
                    assert result.returncode == 0, f"{command}: {result.stdout}{result.stderr}"
    assert len(played) == 2
    for game in played:
        assert "score" in game.result()  # retro's TerminalView drew the state pane
    assert namespace["ai"].checkpoint_path.name == "ep_0500.pt"
    # each alternation round trained more: player 4 → 8 → 12 episodes, enemy 4 → 8
    assert _latest(project / "runs" / "player") == 12
    assert _latest(project / "runs" / "enemy") == 8
    assert "enemy_training_game.py" in (project / "runs" / "enemy" / "config.toml").read_text()


def _latest(run: Path) -> int:
    from retro_gamer.run import checkpoint

    return checkpoint.list_checkpoints(run)[-1][0]
