"""Every mistake and fault gets one clear paragraph, and nothing already on disk is lost.

One test per class of mistake, on real games and real files. The CLI runs in-process (``cli.main``)
so each case costs milliseconds rather than a fresh interpreter; what a user sees is its exit code
and stderr, so that is what is checked.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import retro.examples.nav as nav
from conftest import TINY

from retro_gamer.cli import app as cli
from retro_gamer.errors import GameFault
from retro_gamer.policy import PolicyInput, TrainedPolicy
from retro_gamer.run.lock import run_lock

QUICK = [*TINY, "trainer.exploration_turns=50"]


def run_cli(capsys, *args: str) -> tuple[int, str, str]:
    code = cli.main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def refused(capsys, *args: str, says: tuple[str, ...] = (), code: int = 2) -> str:
    """The command fails with ``code``, one clear answer that contains ``says``, and no traceback."""
    got, out, err = run_cli(capsys, *args)
    assert got == code, out + err
    assert "Traceback" not in err and err.startswith("error: "), err
    for phrase in says:
        assert phrase in err, err
    return err


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` (but the lock file) and its bytes, to prove nothing changed."""
    return {
        str(p.relative_to(folder)): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name != ".lock"
    }


def write_game(folder: Path, module: str, body: str, actions: str = '["KEY_LEFT", "KEY_RIGHT"]') -> Path:
    """A game project: ``module``.py with ``body`` (after the imports) and its [tool.retro-gamer] table."""
    folder.mkdir(parents=True, exist_ok=True)
    header = "import math\nfrom pathlib import Path\nfrom retro.game import Game\n"
    (folder / f"{module}.py").write_text(header + textwrap.dedent(body))
    (folder / "pyproject.toml").write_text(
        f'[tool.retro-gamer]\nactions = {actions}\nreward = "points"\nmax_turns = 50\n'
    )
    return folder


WALKER = """
class Walker:
    name = "walker"
    character = "W"
    position = (0, 0)

    def handle_keystroke(self, keystroke, game):
        x, y = self.position
        dx = {"KEY_LEFT": -1, "KEY_RIGHT": 1}.get(keystroke.name, 0)
        if game.on_board((x + dx, y)):
            self.position = (x + dx, y)

    def play_turn(self, game):
        game.state["points"] = game.state["points"] + 1
        if game.turn_number >= 20:
            game.end()
"""


@pytest.fixture
def walker_run(tmp_path: Path, monkeypatch, capsys) -> Path:
    """A created (untrained) run of a tiny real game, made from its own project folder."""
    module = f"walker_{os.getpid()}_{tmp_path.name}"[:60].replace("-", "_")
    write_game(
        tmp_path,
        module,
        WALKER + "\ndef create_game():\n    return Game([Walker()], {'points': 0}, board_size=(8, 4))\n",
    )
    monkeypatch.chdir(tmp_path)
    code, out, err = run_cli(capsys, "create", "--game", f"{module}.py", "--output", "run", *QUICK)
    assert code == 0, out + err
    return tmp_path / "run"


# --- losing or changing what is on disk -------------------------------------------------------


def test_an_incomplete_or_unreadable_config_toml_is_refused_and_nothing_is_written(walker_run: Path, capsys):
    config = walker_run / "config.toml"
    whole = config.read_text()
    config.write_text(whole[: whole.index("[model]")])  # cut off before [model]: still valid TOML
    before = snapshot(walker_run)
    refused(
        capsys,
        "train",
        str(walker_run),
        says=("is incomplete", "section [model] is missing", "section [training] is missing", "retro-gamer create"),
    )
    config.write_text(whole.replace("lr = ", "# lr = "))
    refused(capsys, "train", str(walker_run), says=("[training] lacks lr",))
    config.write_bytes(b"\xff\xfe not text")
    refused(capsys, "info", str(walker_run), says=("is not UTF-8 text",))
    config.write_text(whole)
    assert snapshot(walker_run) == {**before, "config.toml": whole.encode()}
    assert not (walker_run / "resume.pt").exists()


def test_a_damaged_config_is_rewritten_by_create_force_and_checked_against_the_checkpoints(
    trained_snake: Path, tmp_path: Path, capsys
):
    run = tmp_path / "snake"
    shutil.copytree(trained_snake, run)
    whole = (run / "config.toml").read_text()
    (run / "config.toml").write_text(whole[: whole.index("[training]")])
    err = refused(
        capsys,
        "create",
        "--game",
        "snake",
        "--output",
        str(run),
        "--force",
        *TINY,
        "model.hidden=[64]",
        says=("model.hidden was [", "now [64]"),
    )
    assert "Cannot resume" in err and (run / "config.toml").read_text() == whole[: whole.index("[training]")]
    code, out, err = run_cli(capsys, "create", "--game", "snake", "--output", str(run), "--force", *TINY)
    assert code == 0, err
    assert TrainedPolicy(run).episode == 6


def test_one_process_at_a_time_holds_a_run_directory_and_a_crash_releases_it(walker_run: Path, capsys):
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys; from retro_gamer.run.lock import run_lock\n"
            f"with run_lock({str(walker_run)!r}):\n    print('held', flush=True); sys.stdin.read()",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        before = snapshot(walker_run)
        err = refused(
            capsys,
            "train",
            str(walker_run),
            says=(f"process {holder.pid}", f"kill -INT {holder.pid}", "Only one process may train"),
        )
        refused(capsys, "clean", str(walker_run), "-y", says=("is in use by",))
        refused(
            capsys, "create", "--game", "snake", "--output", str(walker_run), "--force", *TINY, says=("is in use by",)
        )
        assert snapshot(walker_run) == before, err
    finally:
        holder.send_signal(signal.SIGKILL)  # a crash: the kernel drops its lock, no stale lock file remains
        holder.wait()
    with run_lock(walker_run):
        assert "walker" in (walker_run / ".lock").read_text() or (walker_run / ".lock").read_text().startswith("{")
    assert (walker_run / ".lock").read_text() == ""  # released: empty again


def test_nonsensical_settings_are_refused_before_anything_is_written(walker_run: Path, tmp_path: Path, capsys):
    before = snapshot(walker_run)
    refused(
        capsys,
        "train",
        str(walker_run),
        "--episodes",
        "-5",
        says=("--episodes: trainer.episodes = -5: must be a whole number from 1",),
    )
    assert snapshot(walker_run) == before
    err = refused(
        capsys,
        "create",
        "--game",
        "snake",
        "--output",
        str(tmp_path / "bad"),
        *TINY,
        "trainer.lr=-1",
        "trainer.checkpoint_every=0",
        "trainer.num_envs=0",
        "trainer.batch_size=0",
        "trainer.buffer_size=-2",
        "trainer.time_limit=0",
        "model.hidden=[-3]",
        "trainer.device=gpu",
        "trainer.episodes=99999999999999",
    )
    for key in (
        "trainer.lr = -1.0",
        "checkpoint_every = 0",
        "num_envs = 0",
        "batch_size = 0",
        "buffer_size = -2",
        "time_limit = 0.0",
        "model.hidden = [-3]: each item must be",
        "device = 'gpu': must be auto, cpu",
        "episodes = 99999999999999",
    ):
        assert key in err
    assert not (tmp_path / "bad").exists()
    edited = (walker_run / "config.toml").read_text().replace("lr = ", "lr = -1.0 #", 1)
    (walker_run / "config.toml").write_text(edited)
    refused(capsys, "train", str(walker_run), says=("[training] lr = -1.0: must be a number above 0 and at most 1",))
    with pytest.raises(SystemExit) as exit_:
        cli.main(["eval", str(walker_run), "--episodes", "0"])
    assert exit_.value.code == 2 and "'0' is not a whole number from 1" in capsys.readouterr().err


def test_a_board_of_another_size_is_a_was_now_refusal(walker_run: Path, trained_snake: Path, capsys):
    game_file = next(walker_run.parent.glob("walker_*.py"))
    game_file.write_text(game_file.read_text().replace("board_size=(8, 4)", "board_size=(12, 6)"))
    sys.modules.pop(game_file.stem, None)
    refused(
        capsys,
        "train",
        str(walker_run),
        says=("the game's board is 12x6, but this run was set up for a 8x4 board", "retro-gamer create"),
    )
    snake_policy = TrainedPolicy(trained_snake)
    with pytest.raises(
        GameFault, match=r"board is 25x25, but TrainedPolicy\(.*\) was trained on a 32x16 board \(game snake"
    ):
        PolicyInput(snake_policy, nav.create_game())
    with pytest.raises(GameFault, match="was trained on a 32x16 board"):
        snake_policy.get_action(nav.create_game())


# --- faults in the user's own game code -------------------------------------------------------


def test_a_game_that_raises_shows_the_games_own_frames_only(tmp_path: Path, monkeypatch, capsys):
    module = f"boom_{os.getpid()}"
    write_game(
        tmp_path,
        module,
        WALKER
        + """
class Bomb:
    name = "bomb"
    character = "B"
    position = (5, 0)

    def play_turn(self, game):
        if Path("armed").exists() and game.turn_number == 7:
            self.explode(game)

    def explode(self, game):
        fuel = 0
        game.state["points"] = 1 / fuel


def create_game():
    return Game([Walker(), Bomb()], {"points": 0}, board_size=(8, 4))
""",
    )
    monkeypatch.chdir(tmp_path)
    code, out, err = run_cli(capsys, "create", "--game", f"{module}.py", "--output", "run", *QUICK)
    assert code == 0, err
    before = snapshot(tmp_path / "run")
    Path("armed").touch()
    err = refused(
        capsys,
        "train",
        "run",
        says=(
            "the game's code failed while running `retro-gamer train`",
            f'{module}.py", line',
            "in play_turn",
            "self.explode(game)",
            "in explode",
            'game.state["points"] = 1 / fuel',
            "ZeroDivisionError: division by zero",
        ),
    )
    assert "retro_gamer" not in err and "site-packages" not in err
    assert {k: v for k, v in snapshot(tmp_path / "run").items() if k == "config.toml"} == {
        "config.toml": before["config.toml"]
    }


@pytest.mark.parametrize("where", ["create", "games-process"])
def test_a_game_that_calls_exit_is_a_clear_failure_not_a_silent_success(
    where: str, tmp_path: Path, monkeypatch, capsys
):
    """``exit()`` in a game raises SystemExit, which would end retro-gamer with status 0 and no word; it is the
    game's fault like any other, in this process (at create) or in the games' process (while training)."""
    module = f"quitter_{where.replace('-', '_')}_{os.getpid()}"
    write_game(
        tmp_path,
        module,
        WALKER
        + """
import sys


class Quitter:
    name = "quitter"
    character = "Q"
    position = (5, 0)

    def play_turn(self, game):
        if Path("armed").exists() and game.turn_number == 7:
            sys.exit()


def create_game():
    if Path("quit_at_once").exists():
        exit()
    return Game([Walker(), Quitter()], {"points": 0}, board_size=(8, 4))
""",
    )
    monkeypatch.chdir(tmp_path)
    create = ["create", "--game", f"{module}.py", "--output", "run", *QUICK, "trainer.game_process=true"]
    if where == "create":
        Path("quit_at_once").touch()
        refused(capsys, *create, says=(f'{module}.py", line', "exit()", "SystemExit", "end an episode with game.end()"))
        assert not Path("run").exists()
        return
    assert run_cli(capsys, *create)[0] == 0
    Path("armed").touch()
    refused(
        capsys,
        "train",
        "run",
        "--episodes",
        "6",
        says=("the game's code failed while running `retro-gamer train`", "in play_turn", "sys.exit()", "SystemExit"),
    )


def test_broken_game_modules_and_factories_are_named_at_create(tmp_path: Path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    write_game(tmp_path / "a", "syntax_game", "def create_game(:\n    pass\n")
    refused(
        capsys,
        "create",
        "--game",
        "a/syntax_game.py",
        "--output",
        "r1",
        says=("syntax error at", "syntax_game.py, line 4", "def create_game(:"),
    )
    write_game(
        tmp_path / "b",
        "needs_size",
        "def create_game(size):\n    return Game([], {'points': 0}, board_size=(size, size))\n",
    )
    refused(
        capsys,
        "create",
        "--game",
        "b/needs_size.py",
        "--output",
        "r2",
        says=("takes (size)", "size would be missing", "default value"),
    )
    write_game(
        tmp_path / "c",
        "typo_keys",
        WALKER + "\ndef create_game():\n    return Game([Walker()], {'points': 0})\n",
        actions='["KEY_LEFT", "KEY_RIGT", "space"]',
    )
    refused(
        capsys,
        "create",
        "--game",
        "c/typo_keys.py",
        "--output",
        "r3",
        says=(
            "actions[1] = 'KEY_RIGT' is neither a single character nor a key name",
            "Did you mean 'KEY_RIGHT'?",
            "actions[2] = 'space'",
        ),
    )
    assert not any((tmp_path / r).exists() for r in ("r1", "r2", "r3"))


@pytest.mark.parametrize(
    "bad, says",
    [
        ("None", "game.state['points'] (the reward) became None on turn 3"),
        ("float('nan')", "game.state['points'] (the reward) became nan on turn 3"),
        ("math.inf", "became inf on turn 3"),
        ("'ten'", "became 'ten' on turn 3"),
    ],
)
def test_a_reward_that_stops_being_a_finite_number_is_refused_the_turn_it_appears(
    tmp_path: Path, monkeypatch, capsys, bad: str, says: str
):
    module = f"reward_{os.getpid()}_{abs(hash(bad))}"
    write_game(
        tmp_path,
        module,
        WALKER.replace(
            'game.state["points"] = game.state["points"] + 1',
            f'game.state["points"] = {bad} if game.turn_number == 3 else 1',
        )
        + "\ndef create_game():\n    return Game([Walker()], {'points': 0}, board_size=(8, 4))\n",
    )
    monkeypatch.chdir(tmp_path)
    assert (
        run_cli(capsys, "create", "--game", f"{module}.py", "--output", "run", *QUICK, "game.observe_state=[points]")[0]
        == 0
    )
    refused(capsys, "train", "run", says=(says, "it must stay a finite number"))
    metrics = Path("run/metrics.json")
    assert not metrics.exists() or "NaN" not in metrics.read_text() and "Infinity" not in metrics.read_text()


def test_an_observed_value_that_goes_bad_is_named(tmp_path: Path, monkeypatch, capsys):
    module = f"observed_{os.getpid()}"
    write_game(
        tmp_path,
        module,
        WALKER
        + """
class Gauge:
    name = "gauge"
    character = "g"
    position = (7, 3)

    def play_turn(self, game):
        game.state["fuel"] = "low" if Path("armed").exists() and game.turn_number == 4 else 3.0


def create_game():
    return Game([Walker(), Gauge()], {'points': 0, 'fuel': 3.0}, board_size=(8, 4))
""",
    )
    monkeypatch.chdir(tmp_path)
    code, out, err = run_cli(
        capsys, "create", "--game", f"{module}.py", "--output", "run", *QUICK, "game.observe_state=[fuel]"
    )
    assert code == 0, err
    Path("armed").touch()
    refused(capsys, "train", "run", says=("game.state['fuel'] (the observe_state entry) became 'low' on turn 4",))


def test_a_game_that_never_ends_is_warned_about_at_create(tmp_path: Path, monkeypatch, capsys):
    module = f"endless_{os.getpid()}"
    write_game(
        tmp_path,
        module,
        WALKER.replace("game.end()", "pass")
        + "\ndef create_game():\n    return Game([Walker()], {'points': 0}, board_size=(8, 4))\n",
    )
    monkeypatch.chdir(tmp_path)
    code, out, err = run_cli(capsys, "create", "--game", f"{module}.py", "--output", "run", *QUICK)
    assert code == 0
    assert "warning: in 50 turns of random play the game never ended by itself" in err
    assert "max_turns = 50" in err


# --- the file system --------------------------------------------------------------------------


def mount_tmpfs(folder: Path, options: str) -> None:
    """Mount a small tmpfs on ``folder``, or skip the test saying why it cannot."""
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a small tmpfs needs root and mount(8); this test runs as an unprivileged user")
    result = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)], capture_output=True, text=True
    )
    if result.returncode != 0:
        pytest.skip(f"this container may not mount a tmpfs ({result.stderr.strip()})")


@pytest.fixture
def read_only_folder(tmp_path: Path):
    """A folder nobody may write to: a read-only tmpfs as root (root ignores permissions), else chmod."""
    folder = tmp_path / "ro"
    folder.mkdir()
    if os.geteuid() != 0:
        folder.chmod(0o555)
        yield folder
        folder.chmod(0o755)
        return
    mount_tmpfs(folder, "size=1m,ro")
    yield folder
    subprocess.run(["umount", str(folder)], check=True)


def test_a_full_disk_stops_training_with_one_paragraph_and_every_saved_file_intact(
    trained_snake: Path, tmp_path: Path, capsys
):
    disk = tmp_path / "disk"
    disk.mkdir()
    mount_tmpfs(disk, "size=16m")
    try:
        run = disk / "snake"
        shutil.copytree(trained_snake, run)
        before = snapshot(run)
        free = shutil.disk_usage(disk).free
        (disk / "filler").write_bytes(b"\0" * (free - 64 * 1024))  # 64 KB left: less than one checkpoint
        code, out, err = run_cli(capsys, "train", str(run), "--episodes", "9")
        assert code == 1 and "Traceback" not in err, out + err
        assert "Could not save" in err and "No space left on device" in err and "are intact" in err
        after = snapshot(run)
        for name in ("resume.pt", "checkpoints/ep_0003.pt", "checkpoints/ep_0006.pt"):
            assert after[name] == before[name], name
        assert not list(run.rglob("*.tmp"))
        (disk / "filler").unlink()
        code, out, err = run_cli(capsys, "train", str(run), "--episodes", "9")
        assert code == 0, err  # space freed: the same command goes on
    finally:
        subprocess.run(["umount", str(disk)], check=True)


def test_file_system_refusals_are_one_paragraph_and_write_nothing(
    walker_run: Path, trained_snake: Path, read_only_folder: Path, tmp_path: Path, capsys
):
    refused(
        capsys,
        "create",
        "--game",
        "snake",
        "--output",
        str(read_only_folder / "run"),
        *TINY,
        says=("cannot use", "Read-only file system" if os.geteuid() == 0 else "Permission denied"),
    )
    (tmp_path / "a_file").write_text("keep me")
    refused(
        capsys,
        "create",
        "--game",
        "snake",
        "--output",
        str(tmp_path / "a_file"),
        *TINY,
        says=("is a file, not a folder",),
    )
    assert (tmp_path / "a_file").read_text() == "keep me"
    refused(
        capsys,
        "create",
        "--game",
        "snake",
        "--output",
        str(tmp_path / ("n" * 300)),
        *TINY,
        says=("File name too long", "255 bytes"),
    )
    refused(
        capsys,
        "plot",
        str(trained_snake),
        "-o",
        str(tmp_path / "missing" / "curve.png"),
        says=("the folder", "does not exist", "mkdir -p"),
    )
    refused(
        capsys, "plot", str(trained_snake), "-o", str(tmp_path / "curve.xyz"), says=("unknown extension '.xyz'", ".png")
    )
    refused(
        capsys,
        "replay",
        str(trained_snake),
        "-o",
        str(tmp_path / "a_file" / "x.html"),
        says=("is a file, not a folder",),
    )
    assert not (tmp_path / "missing").exists() and not (tmp_path / "curve.xyz").exists()


def test_a_damaged_resume_state_says_how_to_go_on_and_a_lost_replay_chunk_is_refilled(
    trained_snake: Path, tmp_path: Path, capsys
):
    run = tmp_path / "snake"
    shutil.copytree(trained_snake, run)
    whole = (run / "resume.pt").read_bytes()
    (run / "resume.pt").write_bytes(whole[:1000])
    refused(
        capsys,
        "train",
        str(run),
        "--episodes",
        "7",
        says=(
            "resume.pt is corrupted",
            f"mv {run / 'resume.pt'} {run / 'resume.pt'}.damaged",
            "resumes from ep_0006.pt",
        ),
    )
    (run / "resume.pt").write_bytes(whole)
    for chunk in (run / "replay").glob("chunk_*.pt"):
        chunk.unlink()
    code, out, err = run_cli(capsys, "train", str(run), "--episodes", "7")
    assert code == 0, err
    assert "without replay memory (" in out and "is missing or damaged)" in out


def test_the_hydra_entry_point_explains_a_run_dir_in_the_way_and_bad_overrides(tmp_path: Path):
    from conftest import run_module

    (tmp_path / "a_file").write_text("keep me")
    for overrides, says in (
        (["run_dir=a_file/run"], "Not a directory. Part of that path is a file"),
        (["trainer.episodes=1e99"], "could not be converted to Integer"),
        (["trainer.num_envs=0"], "trainer.num_envs = 0: must be a whole number from 1"),
        (["model.strides=[]"], "model.strides = []: give at least one stride"),
    ):
        result = run_module(["-m", "retro_gamer.train", "+game=snake", *TINY, *overrides], cwd=tmp_path)
        assert result.returncode == 2 and "Traceback" not in result.stderr and says in result.stderr, result.stderr
    assert (tmp_path / "a_file").read_text() == "keep me" and not (tmp_path / "runs" / "snake").exists()


def test_an_observation_function_that_changes_its_size_or_goes_nan_is_named(tmp_path: Path, monkeypatch, capsys):
    module = f"obsfn_{os.getpid()}"
    write_game(
        tmp_path,
        module,
        WALKER
        + """
def create_game():
    return Game([Walker()], {'points': 0}, board_size=(8, 4))


def observe(game):
    if Path("nan").exists() and game.turn_number == 5:
        return [float("nan"), 1.0]
    return [1.0, 2.0, 3.0] if Path("grow").exists() and game.turn_number == 5 else [1.0, 2.0]
""",
    )
    monkeypatch.chdir(tmp_path)
    code, out, err = run_cli(
        capsys,
        "create",
        "--game",
        f"{module}.py",
        "--output",
        "run",
        *QUICK,
        f"game.observation_function={module}:observe",
    )
    assert code == 0, err
    Path("grow").touch()
    refused(capsys, "train", "run", says=("returned 3 value(s) on turn 5", "but 2 numbers at the start"))
    Path("grow").unlink()
    Path("nan").touch()
    refused(capsys, "train", "run", says=("returned a NaN or infinite value on turn 5",))
