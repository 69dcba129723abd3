"""Checkpoints on disk: atomic writes, latest by episode number, and the resume compatibility check.

A policy checkpoint ``checkpoints/ep_NNNN.pt`` holds weights and the config snapshot only, so it
stays small and loads anywhere. ``resume.pt`` holds what only training needs (optimizer, target
network, schedule counters, RNG states, episode history and, unless switched off, the replay memory).

The files of a run directory form one unit at every instant: ``resume.pt`` is written first and
carries the policy weights too, so a kill between the two writes leaves a resume state one
checkpoint ahead, and the next start writes the checkpoint it implies (:func:`restore_missing_checkpoint`).
Every write is temp file → fsync → rename → fsync of the folder; a stray temp file is never
mistaken for a checkpoint and is removed when training starts.

``checkpoints/average.pt``, when a run has one, is the run's policy: the mean of the weights of its newest
checkpoints (:func:`write_average`), which ``TrainedPolicy(run_dir)`` loads before the newest single checkpoint.
Training that goes on in the run removes it, since it no longer describes where the run has got to.
"""

from __future__ import annotations

import io
import os
import re
import time
from pathlib import Path
from typing import Any

import torch

from retro_gamer.errors import IncompatibleRunError, RetroGamerError, SaveError
from retro_gamer.files import atomic_write_bytes, remove_stale_temp_files

CHECKPOINT_DIR = "checkpoints"
RESUME_FILE = "resume.pt"
AVERAGE_FILE = "average.pt"
REPLAY_DIR = "replay"
FORMAT = 1
_NAME = re.compile(r"^ep_(\d+)\.pt$")


def save(path: Path, payload: dict[str, Any]) -> None:
    """Serialise, then write atomically; a full disk or a write error leaves the previous file intact."""
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    try:
        atomic_write_bytes(path, buffer.getvalue())
    except OSError as err:
        raise SaveError(
            f"Could not save {path} ({buffer.tell() / 1e6:.1f} MB): {err.strerror or err}. Nothing was overwritten: "
            f"the previous checkpoint and {RESUME_FILE} are intact. Free some space (or fix the folder's permissions), "
            "then resume with the same command."
        ) from None


def checkpoint_name(episode: int) -> str:
    return f"ep_{episode:04d}.pt"


def list_checkpoints(run_dir: Path) -> list[tuple[int, Path]]:
    """``(episode, path)`` pairs sorted by episode number (ep_10000 after ep_9900); temp files never count."""
    folder = Path(run_dir) / CHECKPOINT_DIR
    found = [(int(m.group(1)), p) for p in folder.glob("ep_*.pt") if (m := _NAME.match(p.name))]
    return sorted(found)


POLICY_KEYS = (
    "format",
    "episode",
    "env_steps",
    "updates",
    "mean_return",
    "wall_seconds",
    "config",
    "observation",
    "weights",
)


def remove_stale_files(run_dir: Path, replay_manifest: dict[str, Any] | None) -> list[Path]:
    """Temp files a killed save left behind, replay chunks that the saved resume state does not list, and an
    average of checkpoints that the run is about to train past."""
    run_dir = Path(run_dir)
    removed = remove_stale_temp_files(run_dir, run_dir / CHECKPOINT_DIR, run_dir / REPLAY_DIR)
    average = run_dir / CHECKPOINT_DIR / AVERAGE_FILE
    if average.is_file():
        average.unlink()
        removed.append(average)
    return removed + prune_replay(run_dir, replay_manifest)


def save_replay(run_dir: Path, replay: Any, manifest: dict[str, Any] | None) -> dict[str, Any]:
    """Write the replay chunks changed since the last save, under new names so the ``resume.pt`` on
    disk still finds its own; return the manifest the new ``resume.pt`` carries. Saving costs what
    changed (about one checkpoint interval of transitions), not the whole memory."""
    names = list(manifest["chunks"]) if manifest else []
    names = (names + [None] * replay.n_chunks)[: replay.n_chunks]
    changed = replay.changed_chunks()
    token = f"{time.time_ns():x}"
    for k in range(replay.n_chunks):
        if names[k] is None or k in changed:
            names[k] = f"chunk_{k:03d}_{token}.pt"
            save(Path(run_dir) / REPLAY_DIR / names[k], {"format": FORMAT, **replay.chunk(k)})
    return {**replay.state_dict(), "chunks": names}


def load_replay_chunks(run_dir: Path, manifest: dict[str, Any]) -> list[dict[str, Any]]:
    return [load(Path(run_dir) / REPLAY_DIR / name) for name in manifest["chunks"]]


def prune_replay(run_dir: Path, manifest: dict[str, Any] | None) -> list[Path]:
    """Delete replay chunks that ``manifest`` (the saved resume state's) does not list."""
    keep = set(manifest["chunks"]) if manifest else set()
    folder = Path(run_dir) / REPLAY_DIR
    doomed = [p for p in folder.glob("chunk_*.pt") if p.name not in keep] if folder.is_dir() else []
    for path in doomed:
        path.unlink(missing_ok=True)
    return doomed


def write_policy_checkpoint(run_dir: Path, payload: dict[str, Any]) -> Path:
    """Write ``checkpoints/ep_NNNN.pt`` from the policy part of ``payload``."""
    path = Path(run_dir) / CHECKPOINT_DIR / checkpoint_name(payload["episode"])
    save(path, {key: payload[key] for key in POLICY_KEYS})
    return path


def write_average(run_dir: Path, last: int) -> Path:
    """Write :data:`AVERAGE_FILE`: the newest policy checkpoint with its weights replaced by the mean of the newest
    ``last`` checkpoints' weights (their names under ``averaged``). From then on it is the run's policy.

    Why: a DQN's greedy policy swings from checkpoint to checkpoint while it keeps learning, so which generation
    of an adversarial run rates best would be a matter of where its training stopped. The mean of points along
    the way plays steadier and better (weight averaging: Izmailov et al. 2018, "Averaging weights leads to wider
    optima"; for DQN, Nikishin et al. 2018). Training continues from ``resume.pt``'s own weights, not the mean.
    """
    chosen = [path for _, path in list_checkpoints(run_dir)[-last:]]
    if not chosen:
        raise RetroGamerError(f"No checkpoints in {Path(run_dir) / CHECKPOINT_DIR} to average: train first.")
    payloads = [load(path) for path in chosen]
    newest = payloads[-1]
    weights = {
        name: torch.stack([p["weights"][name] for p in payloads]).mean(dim=0) if tensor.is_floating_point() else tensor
        for name, tensor in newest["weights"].items()
    }
    path = Path(run_dir) / CHECKPOINT_DIR / AVERAGE_FILE
    save(path, {**{key: newest[key] for key in POLICY_KEYS}, "weights": weights, "averaged": [p.name for p in chosen]})
    return path


def restore_missing_checkpoint(run_dir: Path, resume_state: dict[str, Any]) -> Path | None:
    """A kill between writing ``resume.pt`` and its checkpoint leaves the checkpoint missing:
    write it from the resume state, which carries the same weights. Returns the path if it wrote one."""
    path = Path(run_dir) / CHECKPOINT_DIR / checkpoint_name(resume_state["episode"])
    if path.is_file():
        return None
    return write_policy_checkpoint(run_dir, resume_state)


def latest_checkpoint(run_dir: Path) -> Path | None:
    found = list_checkpoints(run_dir)
    return found[-1][1] if found else None


def resolve_checkpoint(run_dir: Path, checkpoint: str | os.PathLike[str] | None) -> Path:
    """The checkpoint named ``ep_0500``, ``ep_0500.pt`` or a path; when ``None``, the run's policy: its
    :data:`AVERAGE_FILE` if it has one, else the latest."""
    available = list_checkpoints(run_dir)
    if checkpoint is None:
        average = Path(run_dir) / CHECKPOINT_DIR / AVERAGE_FILE
        if average.is_file():
            return average
        if not available:
            raise RetroGamerError(
                f"No checkpoints in {Path(run_dir) / CHECKPOINT_DIR}: train first (retro-gamer train {run_dir})."
            )
        return available[-1][1]
    path = Path(checkpoint)
    if path.suffix == ".pt" and path.is_file():
        return path
    name = path.name if path.suffix == ".pt" else f"{path.name}.pt"
    candidate = Path(run_dir) / CHECKPOINT_DIR / name
    if candidate.is_file():
        return candidate
    names = ", ".join(p.stem for _, p in available) or "(none yet)"
    raise RetroGamerError(
        f"Checkpoint '{checkpoint}' not found in {Path(run_dir) / CHECKPOINT_DIR}. Available: {names}."
    )


def load(path: Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint without running any code from it (``weights_only=True``)."""
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # noqa: BLE001 - torch raises several types for truncated or foreign files
        raise RetroGamerError(
            f"Checkpoint {path} is corrupted or not a retro-gamer checkpoint "
            f"({type(err).__name__}).{_damaged_hint(Path(path))}"
        ) from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise RetroGamerError(f"{path} is not a retro-gamer checkpoint (format {FORMAT}).")
    return payload


def _damaged_hint(path: Path) -> str:
    """What to do about a damaged file, which depends on which file it is."""
    if path.name == RESUME_FILE:
        saved = list_checkpoints(path.parent)
        if not saved:
            return f" Move it aside (mv {path} {path}.damaged) to start the run over."
        return (
            f" The policy checkpoints are intact: move it aside (mv {path} {path}.damaged) and the next start "
            f"resumes from {saved[-1][1].name}, saying what that loses (optimizer state, replay memory, history)."
        )
    if path.parent.name == REPLAY_DIR:
        return ""
    previous = [p.name for _, p in list_checkpoints(path.parent.parent) if p != path]
    return f" Try the previous one: {previous[-1]}." if previous else ""


def prune(run_dir: Path, keep: int | None) -> None:
    """Delete the oldest policy checkpoints beyond ``keep`` (``None`` keeps them all)."""
    if keep is None or keep <= 0:
        return
    for _, path in list_checkpoints(run_dir)[:-keep]:
        path.unlink(missing_ok=True)


# What a resumed run must share with the checkpoints it resumes from, and why.
_FIXED = {
    ("metadata", "actions"): "the network has one output per action",
    ("metadata", "board_size"): "the board encoding has one input per cell",
    ("metadata", "character_set"): "the board encoding has one channel per character",
    ("metadata", "observation_function"): "the observation would mean something else",
    ("preprocessing", "board"): "it changes the network's inputs",
    ("preprocessing", "observe_state"): "it changes the network's inputs",
    ("preprocessing", "crop"): "it changes the board the network sees",
    ("model", "kind"): "it changes the network's shape",
    ("model", "hidden"): "it changes the network's shape",
    ("model", "channels"): "it changes the network's shape",
    ("model", "strides"): "it changes the network's shape",
    ("model", "dueling"): "it changes the network's shape",
}
_CNN_ONLY = {("model", "channels"), ("model", "strides")}
# a key saved runs may lack, because it came later: what they used instead
_BEFORE_THE_KEY = {("model", "strides"): [1, 2]}


def compatibility_problems(was: dict[str, Any], now: dict[str, Any]) -> list[str]:
    """Was/now/why lines for every change that the saved weights cannot follow."""
    problems = []
    for (section, key), why in _FIXED.items():
        missing = _BEFORE_THE_KEY.get((section, key))
        old, new = was.get(section, {}).get(key, missing), now.get(section, {}).get(key, missing)
        if (section, key) in _CNN_ONLY and "cnn" not in (
            was.get("model", {}).get("kind"),
            now.get("model", {}).get("kind"),
        ):
            continue  # only a convolutional network has channels and strides
        if old != new:
            problems.append(f"{section}.{key} was {old!r}, now {new!r}: {why}.")
    return problems


def check_compatible(was: dict[str, Any], now: dict[str, Any], run_dir: Path) -> None:
    problems = compatibility_problems(was, now)
    if problems:
        listing = "\n".join(f"  - {p}" for p in problems)
        raise IncompatibleRunError(
            f"Cannot resume {run_dir}: its checkpoints were trained with a different setup.\n{listing}\n"
            f"Either undo the change, train in a new run_dir, or delete {Path(run_dir) / CHECKPOINT_DIR} "
            f"and {Path(run_dir) / RESUME_FILE} to start over."
        )
