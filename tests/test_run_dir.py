"""After a failure, a run directory describes only what was saved: metrics.json keeps the last checkpoint's
totals, no replay chunk outlives the save that wrote it, and a refusal found at the start writes nothing."""

from __future__ import annotations

import json
import resource
import shutil
import signal
import subprocess
import sys
from pathlib import Path

from conftest import TINY
from test_hardening import WALKER, refused, run_cli, write_game

from retro_gamer.config.compose import compose_app, run_config_from_hydra
from retro_gamer.launch import train_run
from retro_gamer.run import checkpoint
from retro_gamer.run.directory import prepare_run


def snapshot(run: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(run)): p.read_bytes() for p in sorted(run.rglob("*")) if p.is_file() and p.name != ".lock"
    }


def test_a_full_disk_leaves_metrics_and_replay_as_saved(tmp_path: Path):
    run = tmp_path / "run"
    cfg = run_config_from_hydra(
        compose_app(["+game=snake", *TINY, "trainer.episodes=4", "trainer.checkpoint_every=2"]), "snake"
    )
    train_run(run, prepare_run(cfg, run, "snake"), progress=False)
    metrics = (run / "metrics.json").read_bytes()
    assert json.loads(metrics)["episodes"] == 4
    limit = (run / checkpoint.RESUME_FILE).stat().st_size - 1  # the next resume state will not fit; a chunk will

    def small_disk() -> None:  # the kernel refuses writes past this size with EFBIG, as a full disk refuses with ENOSPC
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    result = subprocess.run(
        [sys.executable, "-m", "retro_gamer.cli", "train", str(run), "--episodes", "8"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        preexec_fn=small_disk,
    )
    assert result.returncode == 1 and "Could not save" in result.stderr, result.stderr
    assert (run / "metrics.json").read_bytes() == metrics  # not the 6 or 8 episodes that were never saved
    listed = set(checkpoint.load(run / checkpoint.RESUME_FILE)["replay"]["chunks"])
    assert {p.name for p in (run / checkpoint.REPLAY_DIR).glob("chunk_*.pt")} == listed  # no orphan chunk


def test_a_board_that_grew_is_refused_before_anything_is_written(tmp_path: Path, monkeypatch, capsys):
    module = f"grower_{tmp_path.name}"[:50].replace("-", "_")
    write_game(
        tmp_path,
        module,
        WALKER + "\ndef create_game():\n    return Game([Walker()], {'points': 0}, board_size=(8, 4))\n",
    )
    monkeypatch.chdir(tmp_path)
    assert run_cli(capsys, "create", "--game", f"{module}.py", "--output", "run", *TINY, "trainer.episodes=2")[0] == 0
    assert run_cli(capsys, "train", "run")[0] == 0
    before = snapshot(tmp_path / "run")
    game = tmp_path / f"{module}.py"
    game.write_text(game.read_text().replace("board_size=(8, 4)", "board_size=(9, 4)"))
    # the edit keeps the file's size, and within the same second its mtime: Python would trust the old bytecode
    shutil.rmtree(tmp_path / "__pycache__", ignore_errors=True)
    sys.modules.pop(module, None)
    refused(
        capsys, "train", "run", "--episodes", "4", says=("the game's board is 9x4, but this run was set up for a 8x4",)
    )
    assert snapshot(tmp_path / "run") == before  # config.toml, metrics.json and training.log included
    refused(capsys, "train", "run", says=("the game's board is 9x4",))  # found by the trainer itself: the same
    assert snapshot(tmp_path / "run") == before


def test_torch_threads_come_back_when_the_games_cannot_open(tmp_path: Path, monkeypatch, capsys):
    import torch

    from retro_gamer.config.schema import read_config
    from retro_gamer.dqn.trainer import DQNTrainer

    module = f"vanishing_{tmp_path.name}"[:50].replace("-", "_")
    write_game(
        tmp_path,
        module,
        WALKER + "\ndef create_game():\n    return Game([Walker()], {'points': 0}, board_size=(8, 4))\n",
    )
    monkeypatch.chdir(tmp_path)
    assert run_cli(capsys, "create", "--game", f"{module}.py", "--output", "run", *TINY)[0] == 0  # trainer.threads=1
    (tmp_path / f"{module}.py").unlink()
    sys.modules.pop(module, None)
    before = torch.get_num_threads()
    torch.set_num_threads(3)
    try:
        try:
            DQNTrainer(read_config(tmp_path / "run"), tmp_path / "run")
        except Exception as err:  # the game file is gone
            assert "does not exist" in str(err)
        else:
            raise AssertionError("the trainer opened games whose file is gone")
        assert torch.get_num_threads() == 3
    finally:
        torch.set_num_threads(before)
