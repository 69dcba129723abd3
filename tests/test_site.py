"""The documentation site (docs/): it builds with warnings as errors, and every code block on its pages runs.

How a page's code blocks are run (integrating-a-trained-model.rst has its own test, tests/test_docs.py):

* Each page runs on its own, its blocks in order, in a fresh empty project folder (three pages at a time). A page
  with a ``dvc`` command starts instead from a copy of this repository's pipeline (dvc.yaml, params.yaml,
  pipelines/, conf/, …) in a new git repository, with tiny budgets, two rounds and tracking off in params.yaml
  (tests/test_pipeline.py's ``make_repo``), as a clone of the repository would be.
* ``.. code-block:: console``: a line starting ``% `` is a command (a trailing ``\\`` continues it on the next
  line); it runs in bash in the project folder, with this environment's ``retro-gamer``, ``python``, ``dvc`` and
  ``mlflow`` first on PATH and no ``MLFLOW_TRACKING_URI``, and must exit 0. ``% cd DIR`` changes the folder of
  the page's later commands. Other lines are what the commands print, and are not checked, except after
  ``.. fails:``.
* ``.. fails:`` (an RST comment on the line before the block): every command of the block must exit non-zero,
  print no traceback, and print the block's other lines, in order (lines may be left out; ``...`` in a line
  matches any text, such as a temporary path or a process id). So an error message on a page is real.
* ``.. code-block:: python``: a block whose first line is ``# NAME.py`` (or ``# path/NAME.py``) is saved as that
  file; any other block runs on its own as ``python -c`` in the project folder (import what it uses); one that
  calls ``.play(`` runs on a pseudo-terminal.
* ``.. code-block:: toml``: saved as the project's ``pyproject.toml``.
* ``.. code-block:: text``: shown, not run (a folder listing, a printout).
* Budgets: ``retro-gamer create``, ``retro-gamer train`` and ``python -m retro_gamer.train`` get tiny trainer
  settings (tests/conftest.py's ``TINY`` without its tracking setting: tracking stays as the page has it), and
  ``retro-gamer tune`` gets them too, with a step budget of ``STEPS`` and at most two ``--trials``; and
  any ``trainer.episodes=N``, ``--episodes N``, ``trainer.total_env_steps=N``, ``--steps N``,
  ``trainer.time_limit=N`` or ``--minutes N`` on them is made small; ``--episodes N`` of ``retro-gamer eval``
  too; in a Python block, ``total_timesteps=N`` (Stable-Baselines3's budget) is made small the same way. So a page
  runs in seconds, and its commands stay what a reader types. A compound command (a pipe, ``;``, ``&&``, a
  subshell) runs as written.
* ``.. not-tested: REASON`` (an RST comment on the line before the block): the block is not run. Every
  exemption needs a reason, and their number across the site is ``EXEMPT``, so adding one is a deliberate change.
"""

from __future__ import annotations

import difflib
import os
import re
import shlex
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, fields
from pathlib import Path

import pytest
from conftest import REPO, TINY, run_in_terminal

from retro_gamer.cli.app import build_parser
from retro_gamer.config.schema import ModelConfig, TrackingConfig, TrainerConfig
from retro_gamer.games.description import KNOWN_KEYS

DOCS = REPO / "docs"
sys.path.insert(0, str(DOCS / "_tools"))  # the site's own tools: they render pages from the code
import cli_help  # noqa: E402
import performance_tables  # noqa: E402

BIN = Path(sys.executable).parent
# The pages in reading order, as index.rst lists them.
TOCTREE = [
    "getting-started",
    "describing-your-game",
    "agent-does-not-learn",
    "training-and-resuming",
    "integrating-a-trained-model",
    "tracking-with-mlflow",
    "adversarial-training",
    "gymnasium",
    "tuning",
    "team-server",
    "many-runs",
    "configuration",
    "troubleshooting",
    "performance",
    "api",
]
# tests/test_docs.py runs the first with its own checks; tests/test_team_server.py the second, whose servers serve
# until stopped, on a private PostgreSQL cluster; tests/test_many_runs.py the third, which waits for DVC's queue and
# has no SLURM cluster
RUN_ELSEWHERE = {"integrating-a-trained-model.rst", "team-server.rst", "many-runs.rst"}
EXEMPT = 4  # blocks marked `.. not-tested: REASON` on all pages
LANGUAGES = {"console", "python", "toml", "text"}


@dataclass
class Block:
    """One ``.. code-block::`` of a page, with the comment before it."""

    page: str
    line: int
    language: str
    code: str
    fails: bool = False
    exempt: str | None = None  # the reason, when the block is not run

    def where(self) -> str:
        return f"docs/{self.page}:{self.line}"


_DIRECTIVE = re.compile(r"^(?P<indent> *)\.\. code-block::[ \t]*(?P<language>\S*)[ \t]*$")
_MARK = re.compile(r"^(?P<indent> *)\.\. (?P<kind>fails|not-tested):(?P<reason>.*)$")


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def page_blocks(path: Path) -> list[Block]:
    """Every code block of ``path`` in order, with its ``.. fails:`` or ``.. not-tested:`` mark."""
    lines = path.read_text(encoding="utf-8").splitlines()
    blocks = []
    for number, line in enumerate(lines):
        directive = _DIRECTIVE.match(line)
        if not directive:
            continue
        indent = len(directive["indent"])
        end = number + 1
        while end < len(lines) and re.match(r"^ +:[\w-]+:", lines[end]):  # :caption:, :emphasize-lines:, …
            end += 1
        body = []
        while end < len(lines) and (not lines[end].strip() or _indent(lines[end]) > indent):
            body.append(lines[end])
            end += 1
        block = Block(path.name, number + 1, directive["language"], textwrap.dedent("\n".join(body)).strip("\n") + "\n")
        before, reason = number - 1, []
        while before >= 0 and not lines[before].strip():
            before -= 1
        while before > 0 and _indent(lines[before]) > indent and not _MARK.match(lines[before]):
            reason.insert(0, lines[before].strip())  # a reason that wraps onto more lines
            before -= 1
        mark = _MARK.match(lines[before]) if before >= 0 else None
        if mark and len(mark["indent"]) == indent:
            if mark["kind"] == "fails":
                block.fails = True
            else:
                block.exempt = " ".join([mark["reason"].strip(), *reason]).strip()
        blocks.append(block)
    return blocks


def pages() -> list[Path]:
    return sorted(p for p in DOCS.glob("*.rst") if p.name not in RUN_ELSEWHERE)


# --- the site builds -----------------------------------------------------------------------------


def test_the_toctree_lists_every_page_in_order_and_each_exists():
    index = (DOCS / "index.rst").read_text(encoding="utf-8")
    listed = re.findall(r"^   (\S+)$", index.split(".. toctree::", 1)[1], re.M)
    assert listed == TOCTREE
    assert all((DOCS / f"{page}.rst").is_file() for page in TOCTREE)
    assert {p.stem for p in DOCS.glob("*.rst")} == {"index", *TOCTREE}  # no page left out of the site


def test_the_site_builds_with_warnings_as_errors(tmp_path: Path):
    result = subprocess.run(
        [str(BIN / "sphinx-build"), "-W", "--keep-going", "-q", "-b", "html", str(DOCS), str(tmp_path / "html")],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    for page in TOCTREE:
        assert (tmp_path / "html" / f"{page}.html").is_file(), page
    # the pages rendered from the code (docs/_tools) have every command and every setting
    api = (tmp_path / "html" / "api.html").read_text(encoding="utf-8")
    for name in cli_help.subcommands(build_parser()):
        assert f"usage: retro-gamer {name} " in api, name
    settings = (tmp_path / "html" / "configuration.html").read_text(encoding="utf-8")
    for section, schema in (("model", ModelConfig), ("trainer", TrainerConfig), ("tracking", TrackingConfig)):
        assert all(f"{section}.{f.name}<" in settings for f in fields(schema)), section
    assert all(f"{key}</span>" in settings for key in KNOWN_KEYS)


def test_the_performance_tables_are_built_from_the_results_files():
    """docs/performance.rst includes tables that docs/_tools/performance_tables.py builds from benchmarks/results/."""
    assert ".. include:: _generated/performance-tables.rst" in (DOCS / "performance.rst").read_text(encoding="utf-8")
    page, built = performance_tables.OUTPUT.read_text(encoding="utf-8"), performance_tables.render()
    diff = "\n".join(
        difflib.unified_diff(page.splitlines(), built.splitlines(), "on the page", "from the files", lineterm="")
    )
    assert not diff, f"run `python docs/_tools/performance_tables.py`:\n{diff}"


# --- every code block runs -----------------------------------------------------------------------


def test_every_exemption_has_a_reason_and_they_are_counted():
    every = [block for page in DOCS.glob("*.rst") for block in page_blocks(page)]
    exempt = [block for block in every if block.exempt is not None]
    assert all(block.exempt for block in exempt), [b.where() for b in exempt if not b.exempt]
    assert len(exempt) == EXEMPT, [f"{b.where()}: {b.exempt}" for b in exempt]
    unknown = [b.where() for b in every if b.language not in LANGUAGES and b.exempt is None]
    assert not unknown, f"blocks in a language the harness does not run ({sorted(LANGUAGES)}): {unknown}"
    for page in DOCS.glob("*.rst"):  # other ways to show code would escape the harness
        assert not re.search(r"^ *\.\. (code|sourcecode)::", page.read_text(encoding="utf-8"), re.M), page.name


EPISODES, STEPS, MINUTES = 4, 400, 0.1
TRAINER_TINY = [o for o in TINY if not o.startswith("tracking.")] + [
    f"trainer.episodes={EPISODES}",
    "trainer.checkpoint_every=2",
]


def _fewer_episodes(count: int) -> int:
    """A page's episode count, made small but kept in order (300 before 600 stays fewer)."""
    return max(2, min(count // 100, 20))


def _fewer_steps(count: int) -> int:
    return max(STEPS, min(count // 1000, 2000))


def _a_few_minutes(_: int) -> float:
    return MINUTES


def _smaller(value: str, smaller: Callable[[int], float]) -> str:
    """``value`` (or each value of a sweep, ``300,600``) made smaller; a value that is no whole number stays."""
    try:
        return ",".join(f"{smaller(int(float(part)))}" for part in value.split(","))
    except ValueError:
        return value


def tiny(command: str) -> str:
    """``command`` as the harness runs it: training commands on tiny budgets (see the module docstring)."""
    lexer = shlex.shlex(command, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    if any(set(word) <= set("();<>|&") for word in lexer):
        return command  # a compound command (a pipe, a subshell, a list) runs as written
    words = shlex.split(command, comments=True)
    start = 0
    while start < len(words) and re.match(r"^\w+=", words[start]):  # VAR=value before the command
        start += 1
    head = words[start : start + 3]
    tune = head[:2] == ["retro-gamer", "tune"]
    hydra = tune or head[:2] == ["retro-gamer", "create"] or head == ["python", "-m", "retro_gamer.train"]
    if not (hydra or head[:2] in (["retro-gamer", "train"], ["retro-gamer", "eval"])):
        return command
    flags = {"--episodes": _fewer_episodes, "-n": _fewer_episodes, "--steps": _fewer_steps, "--minutes": _a_few_minutes}
    if tune:  # a search: two trials of a few hundred steps each (its space's own budget is overridden below)
        flags["--trials"] = lambda count: min(count, 2)
    keys = {
        "trainer.episodes": _fewer_episodes,
        "trainer.total_env_steps": _fewer_steps,
        "trainer.time_limit": _a_few_minutes,
    }
    out: list[str] = []
    for word in words:
        key, _, value = word.partition("=")
        if out and out[-1] in flags:
            word = _smaller(word, flags[out[-1]])
        elif value and key in keys:
            word = f"{key}={_smaller(value, keys[key])}"
        out.append(word)
    if hydra:  # these take Hydra overrides: the tiny trainer settings the page does not set itself
        given = {word.split("=", 1)[0] for word in out}
        out += [o for o in TRAINER_TINY if o.split("=", 1)[0] not in given]
        if tune and "trainer.total_env_steps" not in given:
            out.append(f"trainer.total_env_steps={STEPS}")
    return shlex.join(out)


def tiny_python(code: str) -> str:
    """A Python block as the harness runs it: a Stable-Baselines3 budget, ``total_timesteps=N``, made small."""
    return re.sub(r"\btotal_timesteps=([\d_]+)", lambda m: f"total_timesteps={_fewer_steps(int(m[1]))}", code)


def console_commands(block: str) -> list[tuple[str, list[str]]]:
    """Each ``% `` command of a console block with the lines printed after it."""
    commands: list[tuple[str, list[str]]] = []
    lines = block.splitlines()
    while lines:
        line = lines.pop(0)
        if line.startswith("% "):
            command = line[2:]
            while command.endswith("\\") and lines:
                command = command[:-1] + " " + lines.pop(0).strip()
            commands.append((command, []))
        elif commands:
            commands[-1][1].append(line)
    return commands


def shows(output: str, expected: list[str]) -> bool:
    """Whether ``output`` has the ``expected`` lines in order (others may come between; ``...`` matches any text)."""
    patterns = [re.compile(".*".join(re.escape(part) for part in line.strip().split("...")) + "$") for line in expected]
    patterns = [p for p, line in zip(patterns, expected) if line.strip()]
    got = iter(line.strip() for line in output.splitlines())
    return all(any(p.match(line) for line in got) for p in patterns)


def page_env() -> dict[str, str]:
    """As after activating this environment, with none of the test machine's own tracking or DVC settings."""
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", "PYTHONUNBUFFERED": "1", "COLUMNS": "100"}
    for name in ("MLFLOW_TRACKING_URI", "DVC_ROOT", "HYDRA_FULL_ERROR", "PYTHONPATH"):
        env.pop(name, None)
    return env


def run_console(block: Block, cwd: Path, env: dict[str, str]) -> Path:
    """Run a console block's commands; returns the folder the next commands run in (after ``% cd``)."""
    for command, shown in console_commands(block.code):
        if command.startswith("cd "):
            cwd = (cwd / command[3:].strip()).resolve()
            continue
        run = tiny(command)
        result = subprocess.run(
            ["bash", "-c", run],
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=600,
        )
        output = result.stdout + result.stderr
        report = f"{block.where()}: `{command}` (run as `{run}`) exited {result.returncode}:\n{output[-4000:]}"
        if not block.fails:
            assert result.returncode == 0, report
            continue
        assert result.returncode != 0, report
        assert "Traceback" not in output, report
        assert shows(output, shown), f"{report}\nwhich lacks the lines the page shows:\n" + "\n".join(shown)
    return cwd


def run_page(page: Path, project: Path) -> None:
    blocks = [b for b in page_blocks(page) if b.exempt is None and b.language != "text"]
    if has_dvc(page):
        from test_pipeline import TWO_ROUNDS, make_repo

        make_repo(project, tracking=False, rounds=TWO_ROUNDS)
    else:
        project.mkdir()
    env, cwd = page_env(), project
    for block in blocks:
        first = block.code.splitlines()[0]
        if block.language == "toml":
            (project / "pyproject.toml").write_text(block.code)
        elif block.language == "python" and re.fullmatch(r"# [\w./-]+\.py", first):
            target = project / first[2:]
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(block.code)
        elif block.language == "python" and ".play(" in block.code:
            run_in_terminal([str(BIN / "python"), "-c", block.code], cwd=cwd)
        elif block.language == "python":
            result = subprocess.run(
                [str(BIN / "python"), "-c", tiny_python(block.code)],
                cwd=cwd,
                env=env,
                capture_output=True,
                text=True,
                timeout=600,
            )
            assert result.returncode == 0, f"{block.where()}:\n{result.stdout[-3000:]}{result.stderr[-3000:]}"
        else:
            cwd = run_console(block, cwd, env)


def has_dvc(page: Path) -> bool:
    return any(
        command.startswith("dvc ")
        for block in page_blocks(page)
        if block.language == "console" and block.exempt is None
        for command, _ in console_commands(block.code)
    )


@pytest.fixture(scope="module")
def page_runs(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Future]]:
    """Every page this session runs, three at a time (pages are independent; on two cores a third page fills the
    time the others spend starting processes and waiting on files), the DVC page first since it takes longest."""
    chosen = [
        item.callspec.params["page"]
        for item in request.session.items
        if getattr(item, "originalname", "") == "test_every_block_on_the_page_runs"
    ]
    with ThreadPoolExecutor(3) as pool:
        runs = {
            page.name: pool.submit(run_page, page, tmp_path_factory.mktemp(page.stem) / "project")
            for page in sorted(chosen, key=lambda page: not has_dvc(page))
        }
        yield runs
        for run in runs.values():
            run.cancel()  # pages of a session stopped early


@pytest.mark.slow
@pytest.mark.parametrize("page", pages(), ids=lambda p: p.stem)
def test_every_block_on_the_page_runs(page: Path, page_runs: dict[str, Future]):
    page_runs[page.name].result()


# --- the harness itself --------------------------------------------------------------------------


def test_training_commands_get_tiny_budgets():
    assert tiny("retro-gamer train runs/snake --episodes 5000 --minutes 10  # resume") == (
        "retro-gamer train runs/snake --episodes 20 --minutes 0.1"
    )
    created = tiny("retro-gamer create --game snake --output runs/snake trainer.episodes=300")
    assert "trainer.episodes=3" in created and "trainer.num_envs=2" in created and "tracking" not in created
    module = tiny("MLFLOW_TRACKING_URI=http://x:5000 python -m retro_gamer.train +game=snake trainer.time_limit=60")
    assert module.startswith("MLFLOW_TRACKING_URI=http://x:5000 python -m retro_gamer.train +game=snake")
    assert "trainer.time_limit=0.1" in module and f"trainer.episodes={EPISODES}" in module
    assert tiny("retro-gamer eval runs/snake --episodes 50 --json") == "retro-gamer eval runs/snake --episodes 2 --json"
    searched = tiny("retro-gamer tune snake --study s --trials 20")
    assert searched.startswith("retro-gamer tune snake --study s --trials 2 trainer.")
    assert searched.endswith(f"trainer.total_env_steps={STEPS}")
    swept = tiny("python -m retro_gamer.train +game=snake -m trainer.episodes=300,600 trainer.lr=1e-3,3e-4")
    assert "trainer.episodes=3,6" in swept and "trainer.lr=1e-3,3e-4" in swept
    assert tiny("dvc repro") == "dvc repro" and tiny("ls runs | head") == "ls runs | head"
    assert tiny("(ulimit -f 64; retro-gamer train runs/x --episodes 900)").endswith("--episodes 900)")


def test_stable_baselines3_budgets_get_small_in_python_blocks():
    assert tiny_python("model.learn(total_timesteps=100_000)\n") == f"model.learn(total_timesteps={STEPS})\n"


def test_marks_and_expected_output_are_read_as_documented(tmp_path: Path):
    page = tmp_path / "page.rst"
    page.write_text(
        "T\n=\n\n.. fails:\n\n.. code-block:: console\n   :caption: c\n\n   % retro-gamer train nowhere \\\n"
        "     --episodes 3\n   error: nowhere: run directory ... exist.\n\n"
        ".. not-tested: it serves until\n   stopped\n\n.. code-block:: console\n\n   % mlflow ui\n"
    )
    fails, exempt = page_blocks(page)
    assert fails.fails and fails.exempt is None and exempt.exempt == "it serves until stopped"
    [(command, shown)] = console_commands(fails.code)
    assert command == "retro-gamer train nowhere  --episodes 3"
    assert shows("x\nerror: nowhere: run directory does not exist.\n", shown)
    assert not shows("error: elsewhere: run directory does not exist.\n", shown)
