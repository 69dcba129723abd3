"""Resume continues exactly, after any stop: SIGTERM, a second Ctrl+C, SIGKILL, a failure, a full disk."""

from __future__ import annotations

import json
import os
import random
import resource
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import torch
from conftest import TINY, run_module

from retro_gamer.config.compose import compose_app, run_config_from_hydra
from retro_gamer.dqn.callbacks import Callback
from retro_gamer.dqn.trainer import DQNTrainer
from retro_gamer.launch import train_run
from retro_gamer.run import checkpoint
from retro_gamer.run.directory import prepare_run

TIMING_KEYS = {"wall_seconds", "env_steps_per_s"}
# one game at a time, so a stop at an episode end leaves no game in progress (see README: Stopping)
EXACT = [
    "trainer.num_envs=1",
    "trainer.checkpoint_every=5",
    "trainer.buffer_size=500",
    "trainer.target_update_every=20",
]


def snake(*overrides: str):
    return run_config_from_hydra(compose_app(["+game=snake", *TINY, *overrides]), "snake")


class SignalAt(Callback):
    """Sends this process a real signal when an episode ends, the way a scheduler or a user would."""

    def __init__(self, episode: int, sig: int = signal.SIGTERM):
        self.episode, self.sig = episode, sig

    def on_episode_end(self, trainer, episode, episode_return, length) -> None:
        if episode == self.episode:
            os.kill(os.getpid(), self.sig)


class Ends(Callback):
    """Records what the end-of-training hook was told."""

    def __init__(self) -> None:
        self.summaries: list[dict[str, Any]] = []

    def on_train_end(self, trainer, summary) -> None:
        self.summaries.append(summary)


def final_state(run: Path) -> tuple[dict, dict]:
    metrics = json.loads((run / "metrics.json").read_text())
    weights = checkpoint.load(checkpoint.latest_checkpoint(run))["weights"]
    return {k: v for k, v in metrics.items() if k not in TIMING_KEYS}, weights


@pytest.mark.parametrize(
    "replay",
    ["trainer.prioritized=false", "trainer.prioritized=true", "trainer.prioritized=true trainer.learner_process=true"],
)
def test_stopped_with_sigterm_and_resumed_equals_uninterrupted(tmp_path: Path, replay: str):
    cfg = snake("trainer.episodes=24", *EXACT, *replay.split())
    straight, stopped = tmp_path / "straight", tmp_path / "stopped"
    train_run(straight, prepare_run(cfg, straight, "snake"), progress=False)

    ends = Ends()
    first = train_run(stopped, prepare_run(cfg, stopped, "snake"), callbacks=[SignalAt(13), ends], progress=False)
    assert first["stopped_by"] == "interrupted" and first["episodes"] == 13
    assert ends.summaries[0]["status"] == "interrupted"
    assert checkpoint.load(stopped / checkpoint.RESUME_FILE)["replay"]["size"] > 0
    random.random()  # the caller's own randomness between the two sessions must not matter
    second = train_run(stopped, prepare_run(cfg, stopped, "snake"), progress=False)
    assert second["stopped_by"] == "episodes" and second["episodes"] == 24
    assert "resumed at episode 13 from resume.pt with its replay memory" in (stopped / "training.log").read_text()

    (metrics_a, weights_a), (metrics_b, weights_b) = final_state(straight), final_state(stopped)
    assert metrics_a == metrics_b
    assert metrics_a["updates"] > 20  # learning and target copies happened on both sides of the stop
    assert weights_a.keys() == weights_b.keys()
    assert all(torch.equal(weights_a[k], weights_b[k]) for k in weights_a)


# A run saved by the code before retro_gamer.run.training_state (commit d0e57ea): these settings, stopped by SIGTERM
# at episode 13 of 24 (SignalAt), learning and playing in helper processes; its files as that code left them.
FORMAT_1_RUN = Path(__file__).parent / "data" / "resume_v1"
FORMAT_1_SETTINGS = [
    "trainer.episodes=24",
    *EXACT,
    "trainer.prioritized=true",
    "trainer.learner_process=true",
    "trainer.game_process=true",
    "model.hidden=[8]",
    "trainer.keep_checkpoints=1",
]


def test_a_run_saved_by_the_earlier_code_resumes_exactly(tmp_path: Path):
    """resume.pt, ep_0013.pt and the replay chunk written before TrainingState read the same now: resumed, the run
    ends as one trained straight through by this code."""
    cfg = snake(*FORMAT_1_SETTINGS)
    straight, saved = tmp_path / "straight", tmp_path / "saved"
    shutil.copytree(FORMAT_1_RUN, saved)
    train_run(straight, prepare_run(cfg, straight, "snake"), progress=False)
    resumed = train_run(saved, prepare_run(cfg, saved, "snake"), progress=False)
    assert resumed["stopped_by"] == "episodes" and resumed["episodes"] == 24
    assert "resumed at episode 13 from resume.pt with its replay memory" in (saved / "training.log").read_text()
    (metrics_a, weights_a), (metrics_b, weights_b) = final_state(straight), final_state(saved)
    assert metrics_a == metrics_b and metrics_a["updates"] > 48  # learning went on after the stop
    assert weights_a.keys() == weights_b.keys() and all(torch.equal(weights_a[k], weights_b[k]) for k in weights_a)


def test_a_run_saved_by_the_earlier_code_without_its_replay_chunks_says_so(tmp_path: Path):
    run = tmp_path / "run"
    shutil.copytree(FORMAT_1_RUN, run)
    shutil.rmtree(run / checkpoint.REPLAY_DIR)
    trainer = DQNTrainer(prepare_run(snake(*FORMAT_1_SETTINGS), run, "snake"), run)
    try:
        assert trainer.resume_note.startswith("resumed at episode 13 from resume.pt without replay memory (")
        assert trainer.resume_note.endswith("the next 64 steps refill it before learning resumes")
        assert trainer._learn_from == trainer.env_steps + 64 and trainer.stored == 0
    finally:
        trainer._close()


def test_a_policy_checkpoint_saved_by_the_earlier_code_restarts_a_run(tmp_path: Path):
    run = tmp_path / "run"
    shutil.copytree(FORMAT_1_RUN, run)
    (run / checkpoint.RESUME_FILE).unlink()
    saved = checkpoint.load(run / checkpoint.CHECKPOINT_DIR / "ep_0013.pt")
    trainer = DQNTrainer(prepare_run(snake(*FORMAT_1_SETTINGS), run, "snake"), run)
    try:
        assert (trainer.episode, trainer.env_steps, trainer.updates) == (13, saved["env_steps"], saved["updates"])
        assert all(torch.equal(v, saved["weights"][k]) for k, v in trainer.q.state_dict().items())
        assert "from ep_0013.pt only" in trainer.resume_note
    finally:
        trainer._close()


def test_several_games_stop_promptly_and_keep_their_steps(tmp_path: Path):
    """With several games at once, the games still in progress at a stop are cut short (their steps
    go to replay memory as truncations, their episodes are not counted): the one documented difference."""
    run = tmp_path / "run"
    summary = train_run(
        run,
        prepare_run(snake("trainer.episodes=40", "trainer.num_envs=4"), run, "snake"),
        callbacks=[SignalAt(9)],
        progress=False,
    )
    stopped = summary["episodes"]
    assert 9 <= stopped < 9 + 4  # the turn that ended episode 9 may have ended others too; they count
    state = checkpoint.load(run / checkpoint.RESUME_FILE)
    assert state["replay"]["size"] == state["env_steps"]  # every step taken is in replay memory
    assert len(state["returns"]) == stopped
    summary = train_run(
        run, prepare_run(snake(f"trainer.episodes={stopped + 3}", "trainer.num_envs=4"), run, "snake"), progress=False
    )
    assert summary["episodes"] == stopped + 3


def test_without_saved_replay_learning_waits_for_a_refill_and_says_so(tmp_path: Path):
    run = tmp_path / "run"
    cfg = snake("trainer.episodes=6", "trainer.save_replay=false", "trainer.warmup_steps=64")
    train_run(run, prepare_run(cfg, run, "snake"), progress=False)
    before = checkpoint.load(run / checkpoint.RESUME_FILE)
    assert before["replay"] is None
    trainer = DQNTrainer(
        prepare_run(
            snake("trainer.episodes=7", "trainer.save_replay=false", "trainer.warmup_steps=100000"), run, "snake"
        ),
        run,
    )
    assert "without replay memory" in trainer.resume_note
    trainer.train()
    assert trainer.updates == before["updates"]  # the refill is still under way: no learning from a near-empty memory


def test_resume_without_resume_state_says_what_was_lost(tmp_path: Path):
    run = tmp_path / "run"
    train_run(run, prepare_run(snake("trainer.episodes=4", "trainer.checkpoint_every=2"), run, "snake"), progress=False)
    before = json.loads((run / "metrics.json").read_text())
    (run / checkpoint.RESUME_FILE).unlink()
    result = run_module(["-m", "retro_gamer.cli", "train", str(run), "--episodes", "6"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "from ep_0004.pt only" in result.stdout and "optimizer state, replay memory" in result.stdout
    after = json.loads((run / "metrics.json").read_text())
    assert after["episodes"] == 6 and after["updates"] >= before["updates"]
    assert after["wall_seconds"] > before["wall_seconds"]  # the wall clock carries over from the checkpoint


def test_a_failing_run_still_runs_the_end_of_training_hooks(tmp_path: Path):
    project = tmp_path / "project"
    project.mkdir()
    (project / "crash.py").write_text(
        "from retro.examples.snake import create_game as snake\n"
        "import retro_gamer\n"
        "calls = 0\n"
        "def create_game():\n"
        "    global calls\n"
        "    calls += 1\n"
        "    if calls == 12:\n"
        "        raise RuntimeError('the game broke on its 12th start')\n"
        "    return snake()\n"
    )
    cfg = snake("trainer.episodes=50", "trainer.game_process=false")  # the count is of this process's starts
    from dataclasses import replace

    cfg = prepare_run(
        replace(cfg, game=replace(cfg.game, factory="crash.py")), project / "run", "test", base_dir=project
    )
    ends = Ends()
    with pytest.raises(RuntimeError, match="12th start"):
        train_run(project / "run", cfg, callbacks=[ends], progress=False)
    assert [s["status"] for s in ends.summaries] == ["failed"]


def test_a_second_stop_exits_at_once_with_one_line(tmp_path: Path):
    command = [
        sys.executable,
        "-m",
        "retro_gamer.train",
        "+game=snake",
        "trainer.episodes=100000",
        "trainer.checkpoint_every=2",
        "run_dir=run",
        *TINY,
    ]
    proc = subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    run = tmp_path / "run"
    deadline = time.monotonic() + 120
    while not checkpoint.list_checkpoints(run) and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)  # two different signals are both delivered, however close together:
    proc.send_signal(signal.SIGTERM)  # the first asks for a stop, the second is the "stop at once"
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    assert err.strip().splitlines()[-1].startswith("Stopped at once; the files saved before are intact. Resume with: ")
    for _, path in checkpoint.list_checkpoints(run):
        checkpoint.load(path)
    resumed = run_module(["-m", "retro_gamer.cli", "train", "run", "--episodes", "3"], cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr


def test_sigkill_at_random_moments_never_breaks_the_run(tmp_path: Path):
    rng = random.Random(7)
    command = [
        sys.executable,
        "-m",
        "retro_gamer.train",
        "+game=snake",
        "trainer.episodes=100000",
        "run_dir=run",
        "trainer.checkpoint_every=1",
        *TINY,
        "trainer.buffer_size=30000",
    ]
    run = tmp_path / "run"
    for kill in range(4):
        proc = subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 120
        start = checkpoint.latest_checkpoint(run)
        while checkpoint.latest_checkpoint(run) == start and time.monotonic() < deadline:
            time.sleep(0.02)  # wait until this session has saved at least once…
        time.sleep(rng.uniform(0.0, 0.5))  # …then kill it at a random moment, saving or not
        proc.kill()
        proc.wait()
        resume = checkpoint.load(run / checkpoint.RESUME_FILE)
        saved = checkpoint.list_checkpoints(run)
        for _, path in saved:
            assert checkpoint.load(path)["episode"] == int(path.stem[3:])
        # the resume state is never behind the newest checkpoint, and at most one interval ahead
        assert saved[-1][0] <= resume["episode"] <= saved[-1][0] + 1, (kill, resume["episode"], saved[-1])
    final = run_module(
        ["-m", "retro_gamer.cli", "train", "run", "--episodes", str(resume["episode"] + 2)], cwd=tmp_path
    )
    assert final.returncode == 0, final.stderr
    assert not list(run.rglob("*.tmp"))  # stray temp files were cleaned, never taken for checkpoints
    assert [e for e, _ in checkpoint.list_checkpoints(run)][-3:] == [
        resume["episode"],
        resume["episode"] + 1,
        resume["episode"] + 2,
    ]


def test_a_checkpoint_cut_off_by_a_kill_is_rewritten_from_the_resume_state(tmp_path: Path):
    run = tmp_path / "run"
    train_run(run, prepare_run(snake("trainer.episodes=4", "trainer.checkpoint_every=2"), run, "snake"), progress=False)
    latest = checkpoint.latest_checkpoint(run)
    weights = checkpoint.load(latest)["weights"]
    latest.unlink()  # as if killed after resume.pt was renamed into place, before the checkpoint was
    (run / "checkpoints" / ".ep_0006.pt.x1y2z3.tmp").write_bytes(b"half a checkpoint")
    trainer = DQNTrainer(prepare_run(snake("trainer.episodes=4", "trainer.checkpoint_every=2"), run, "snake"), run)
    assert "re-wrote ep_0004.pt" in trainer.resume_note
    assert all(torch.equal(weights[k], v) for k, v in checkpoint.load(latest)["weights"].items())
    assert not list(run.rglob("*.tmp"))


def test_model_channels_and_strides_mean_nothing_to_an_mlp():
    was = {"model": {"kind": "mlp", "channels": [32, 64], "strides": [1, 2]}}
    assert checkpoint.compatibility_problems(was, {"model": {"kind": "mlp", "channels": [8], "strides": [2]}}) == []
    assert checkpoint.compatibility_problems(
        {"model": {"kind": "cnn", "channels": [32]}}, {"model": {"kind": "cnn", "channels": [8]}}
    )


def test_a_cnn_saved_before_strides_existed_used_1_then_2():
    saved = {"model": {"kind": "cnn", "channels": [8, 16]}}  # config.toml of a run from before model.strides
    assert (
        checkpoint.compatibility_problems(saved, {"model": {"kind": "cnn", "channels": [8, 16], "strides": [1, 2]}})
        == []
    )
    [problem] = checkpoint.compatibility_problems(
        saved, {"model": {"kind": "cnn", "channels": [8, 16], "strides": [2, 2]}}
    )
    assert problem.startswith("model.strides was [1, 2], now [2, 2]")


def test_evaluate_leaves_the_callers_random_state_alone(trained_snake: Path):
    from retro_gamer.dqn.evaluate import evaluate
    from retro_gamer.policy import TrainedPolicy

    policy = TrainedPolicy(trained_snake)
    random.seed(99)
    expected = random.Random(99).random()
    first = evaluate(policy.config, policy.network, episodes=2, base_dir=policy.run_dir)
    assert random.random() == expected
    assert evaluate(policy.config, policy.network, episodes=2, base_dir=policy.run_dir) == first  # still repeatable


def test_a_full_disk_while_saving_is_a_clear_error_and_loses_nothing(tmp_path: Path):
    run = tmp_path / "run"
    train_run(run, prepare_run(snake("trainer.episodes=4", "trainer.checkpoint_every=2"), run, "snake"), progress=False)
    before = {p.name: p.read_bytes() for p in [run / checkpoint.RESUME_FILE, *run.glob("checkpoints/*.pt")]}
    limit = max(len(b) for b in before.values()) - 1  # the next resume state will not fit

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
    assert result.returncode == 1, result.stderr
    assert "Could not save" in result.stderr and "intact" in result.stderr and "Traceback" not in result.stderr
    for name, data in before.items():
        path = run / name if name == checkpoint.RESUME_FILE else run / "checkpoints" / name
        assert path.read_bytes() == data
    assert not list(run.rglob("*.tmp"))


@pytest.mark.filterwarnings("ignore:.*meta parameter")
def test_resume_state_loads_on_any_device(tmp_path: Path):
    """Everything is read onto the CPU first: RNG states stay CPU tensors whatever the training device."""
    run = tmp_path / "run"
    train_run(run, prepare_run(snake("trainer.episodes=3"), run, "snake"), progress=False)
    trainer = DQNTrainer(prepare_run(snake("trainer.episodes=3", "trainer.device=meta"), run, "snake"), run)
    assert trainer.device.type == "meta" and trainer.episode == 3
    assert next(trainer.q.parameters()).device.type == "meta"
    assert all(
        v.device.type == "meta"
        for s in trainer.learner.optimizer.state.values()
        for v in s.values()
        if torch.is_tensor(v) and v.dim()
    )


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU; the CPU/meta path is tested above")
@pytest.mark.parametrize("first,then", [("cuda", "cpu"), ("cpu", "cuda"), ("cuda", "cuda")])
def test_resume_across_real_devices(tmp_path: Path, first: str, then: str):
    run = tmp_path / "run"
    train_run(run, prepare_run(snake("trainer.episodes=4", f"trainer.device={first}"), run, "snake"), progress=False)
    summary = train_run(
        run, prepare_run(snake("trainer.episodes=6", f"trainer.device={then}"), run, "snake"), progress=False
    )
    assert summary["episodes"] == 6
    assert (checkpoint.load(run / checkpoint.RESUME_FILE)["cuda_random"] != []) == (then == "cuda")


def python_310() -> str | None:
    """A working Python 3.10 (pyenv's shims exist even where that version is not selected, so try each)."""
    candidates = sorted(Path.home().glob(".pyenv/versions/3.10*/bin/python3.10")) + [shutil.which("python3.10")]
    for candidate in filter(None, candidates):
        if subprocess.run([str(candidate), "--version"], capture_output=True).returncode == 0:
            return str(candidate)
    return None


@pytest.mark.slow
@pytest.mark.skipif(
    python_310() is None, reason="no working Python 3.10 on this machine to prove the lowest supported version"
)
def test_config_files_read_and_write_on_the_lowest_python(tmp_path: Path, trained_snake: Path):
    """pyproject says >=3.10: config.toml and [tool.retro-gamer] are read with tomli there."""
    venv = tmp_path / "venv310"
    subprocess.run([python_310(), "-m", "venv", str(venv)], check=True, timeout=120)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q"]
    subprocess.run([*pip, "--no-deps", "-e", str(Path(__file__).resolve().parent.parent)], check=True, timeout=300)
    subprocess.run([*pip, "tomli", "tomli-w", "omegaconf", "pyyaml", "retro-games"], check=True, timeout=300)
    script = (
        "import sys; from retro_gamer.config.schema import read_config, write_config;"
        f"cfg = read_config({str(trained_snake)!r}); write_config(cfg, {str(tmp_path)!r});"
        f"assert read_config({str(tmp_path)!r}) == cfg; print(sys.version_info[:2], cfg.game.name)"
    )
    out = subprocess.run([str(venv / "bin" / "python"), "-c", script], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "(3, 10) snake" in out.stdout
