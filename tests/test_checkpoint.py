"""Checkpoint files: numeric latest, atomic writes, clear errors, and the compatibility check."""

from __future__ import annotations

from pathlib import Path

import pytest

from retro_gamer.errors import IncompatibleRunError, RetroGamerError
from retro_gamer.files import atomic_write_bytes
from retro_gamer.run import checkpoint


def touch_checkpoint(run_dir: Path, episode: int) -> Path:
    path = run_dir / "checkpoints" / checkpoint.checkpoint_name(episode)
    checkpoint.save(path, {"format": checkpoint.FORMAT, "episode": episode})
    return path


def test_latest_is_chosen_by_episode_number(tmp_path: Path):
    for episode in (9900, 10000, 500, 50):
        touch_checkpoint(tmp_path, episode)
    assert checkpoint.latest_checkpoint(tmp_path).name == "ep_10000.pt"
    assert [e for e, _ in checkpoint.list_checkpoints(tmp_path)] == [50, 500, 9900, 10000]


def test_a_stale_temp_file_never_becomes_latest(tmp_path: Path):
    touch_checkpoint(tmp_path, 100)
    (tmp_path / "checkpoints" / ".ep_0200.pt.abcd.tmp").write_bytes(b"half a file")
    (tmp_path / "checkpoints" / "ep_0300.pt.tmp").write_bytes(b"half a file")
    assert checkpoint.latest_checkpoint(tmp_path).name == "ep_0100.pt"


def test_atomic_write_leaves_the_old_file_when_writing_fails(tmp_path: Path):
    path = touch_checkpoint(tmp_path, 100)
    before = path.read_bytes()
    with pytest.raises(TypeError):
        atomic_write_bytes(path, "not bytes")  # fails mid-write
    assert path.read_bytes() == before
    assert [p.name for p in path.parent.iterdir()] == ["ep_0100.pt"]


def test_resolve_by_name_and_unknown_lists_available(tmp_path: Path):
    touch_checkpoint(tmp_path, 500)
    touch_checkpoint(tmp_path, 1000)
    assert checkpoint.resolve_checkpoint(tmp_path, "ep_0500").name == "ep_0500.pt"
    assert checkpoint.resolve_checkpoint(tmp_path, "ep_0500.pt").name == "ep_0500.pt"
    assert checkpoint.resolve_checkpoint(tmp_path, None).name == "ep_1000.pt"
    with pytest.raises(RetroGamerError, match="Available: ep_0500, ep_1000"):
        checkpoint.resolve_checkpoint(tmp_path, "ep_0700")


def test_truncated_checkpoint_names_the_file_and_suggests_the_previous(tmp_path: Path):
    touch_checkpoint(tmp_path, 100)
    bad = touch_checkpoint(tmp_path, 200)
    bad.write_bytes(bad.read_bytes()[:40])
    with pytest.raises(RetroGamerError, match=r"ep_0200.pt is corrupted.*previous one: ep_0100.pt"):
        checkpoint.load(bad)


def test_keep_checkpoints_prunes_the_oldest(tmp_path: Path):
    for episode in (100, 200, 300, 1000):
        touch_checkpoint(tmp_path, episode)
    checkpoint.prune(tmp_path, 2)
    assert [e for e, _ in checkpoint.list_checkpoints(tmp_path)] == [300, 1000]


def test_incompatible_changes_say_was_now_why_and_the_way_out(tmp_path: Path):
    was = {
        "metadata": {"actions": ["KEY_UP"], "board_size": [8, 8]},
        "model": {"hidden": [64]},
        "training": {"lr": 1.0},
    }
    now = {
        "metadata": {"actions": ["KEY_UP", "KEY_DOWN"], "board_size": [8, 8]},
        "model": {"hidden": [64]},
        "training": {"lr": 0.5},
    }
    with pytest.raises(IncompatibleRunError) as err:
        checkpoint.check_compatible(was, now, tmp_path)
    message = str(err.value)
    assert (
        "metadata.actions was ['KEY_UP'], now ['KEY_UP', 'KEY_DOWN']: the network has one output per action" in message
    )
    assert "new run_dir" in message and "lr" not in message


def test_the_average_is_the_runs_policy_until_training_goes_on(trained_snake: Path, tmp_path: Path):
    """write_average: the mean of the newest checkpoints' weights, loaded by TrainedPolicy(run) before the newest
    single checkpoint; any checkpoint still loads by name; training again in the run removes the average."""
    import shutil

    import torch

    from retro_gamer.policy import TrainedPolicy

    run = shutil.copytree(trained_snake, tmp_path / "snake")
    first, second = (checkpoint.load(path)["weights"] for _, path in checkpoint.list_checkpoints(run)[-2:])
    assert any(not torch.equal(first[name], second[name]) for name in first)  # two different points to average
    path = checkpoint.write_average(run, 2)
    saved = checkpoint.load(path)
    assert saved["averaged"] == ["ep_0003.pt", "ep_0006.pt"] and saved["episode"] == 6
    for name, tensor in saved["weights"].items():
        assert torch.allclose(tensor, (first[name] + second[name]) / 2)
    policy = TrainedPolicy(run)
    assert policy.checkpoint_path == path
    assert all(torch.equal(policy.network.state_dict()[name], saved["weights"][name]) for name in saved["weights"])
    assert TrainedPolicy(run, checkpoint="ep_0006").checkpoint_path.name == "ep_0006.pt"
    only_newest = checkpoint.load(checkpoint.write_average(run, 1))["weights"]
    assert all(torch.equal(only_newest[name], second[name]) for name in second)
    assert path in checkpoint.remove_stale_files(run, None)  # what the trainer does when it resumes a run
    assert checkpoint.resolve_checkpoint(run, None).name == "ep_0006.pt"


def test_nothing_to_average_says_train_first(tmp_path: Path):
    with pytest.raises(RetroGamerError, match="No checkpoints .* to average: train first"):
        checkpoint.write_average(tmp_path, 10)
