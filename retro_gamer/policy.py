"""Use a trained model in a game: :class:`TrainedPolicy` chooses keys, :class:`PolicyInput` presses them.

Loading needs ``config.toml`` and a checkpoint, nothing from the trainer: weights load with
``weights_only=True`` (a checkpoint can never run code) and ``map_location`` (GPU-trained
checkpoints load on a CPU). A model URI (``models:/…``, ``runs:/…``) is first downloaded from MLflow
as such a folder (:mod:`retro_gamer.mlflow_model`); MLflow is imported only then.
"""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
from blessed.keyboard import Keystroke
from retro.input import InputSource

from retro_gamer.checkpoint import compatibility_problems, load as load_checkpoint, resolve_checkpoint
from retro_gamer.config import RunConfig, read_config, to_toml_dict
from retro_gamer.errors import IncompatibleRunError, RetroGamerError
from retro_gamer.env import check_board_size, make_encoder
from retro_gamer.games import is_model_uri
from retro_gamer.network import QNetwork


def resolve_source(source: str | os.PathLike, tracking_uri: str | None = None) -> Path:
    """The run directory a policy comes from: a folder, or a model URI (``runs:/…``, ``models:/…``)
    downloaded from the MLflow store ``tracking_uri``."""
    if is_model_uri(source):
        from retro_gamer.mlflow_model import download_policy

        return download_policy(str(source), tracking_uri)
    path = Path(source)
    if not path.is_dir():
        problem = "is not a run directory" if path.exists() else "does not exist"
        raise RetroGamerError(
            f"Policy source '{source}' {problem}. Pass the folder that holds config.toml "
            "and checkpoints/ (for example runs/snake/), or a model URI such as models:/NAME@champion."
        )
    return path


class TrainedPolicy:
    """A trained network that looks at a game and names the key to press.

    ``source`` is a run directory or a model URI (``runs:/<run_id>/policy``, ``models:/NAME/VERSION``,
    ``models:/NAME@ALIAS``, ``models:/<model_id>``) looked up in ``tracking_uri`` (default:
    ``MLFLOW_TRACKING_URI``, else the current project's store). A model holds one checkpoint, so
    ``checkpoint`` is for run directories only.

    ``agent`` names the character the model plays when the game has several (the egocentric
    crop centres on it); it defaults to the agent named at training time.
    """

    def __init__(self, source: str | os.PathLike, checkpoint: str | os.PathLike | None = None,
                 device: str = "cpu", agent: str | None = None, tracking_uri: str | None = None):
        from_model = is_model_uri(source)
        if checkpoint is not None and from_model:
            raise RetroGamerError(
                f"checkpoint={str(checkpoint)!r} cannot be combined with the model URI '{source}': a logged "
                "model holds exactly one checkpoint, the one it was logged with. Load the run directory to "
                "pick another checkpoint, or use the URI of the model logged from that checkpoint."
            )
        self.run_dir = resolve_source(source, tracking_uri)
        self.source = str(source) if from_model else str(self.run_dir)
        self.config: RunConfig = read_config(self.run_dir)
        self.checkpoint_path = resolve_checkpoint(self.run_dir, checkpoint)
        payload = load_checkpoint(self.checkpoint_path, map_location=device)
        problems = compatibility_problems(payload["config"], to_toml_dict(self.config))
        if problems:
            raise IncompatibleRunError(
                f"{self.checkpoint_path} was trained with a different setup than {self.run_dir / 'config.toml'}:\n"
                + "\n".join(f"  - {p}" for p in problems)
                + "\nUse a checkpoint from this run, or restore the config.toml it was trained with."
            )
        self.episode: int = payload["episode"]
        dims = payload["observation"]
        self.device = torch.device(device)
        self.network = QNetwork.from_dims(self.config.model, dims).to(self.device)
        self.network.load_state_dict(payload["weights"])
        self.network.eval()
        self.encoder = make_encoder(self.config.game, self.run_dir, agent)
        if self.encoder.observation_function is not None:
            self.encoder.set_extras_size(dims["extras_size"])
        self.keys: list[str | None] = list(self.config.game.actions) + [None]
        self._rng = random.Random()
        self._board_size = tuple(self.config.game.board_size)

    def q_values(self, game: Any) -> np.ndarray:
        """The network's value of each action (``keys`` order; the last is the no-op) in this position."""
        if tuple(game.board_size) != self._board_size:
            check_board_size(game, self.config.game, f"{self} was trained on")
        obs = self.encoder.encode(game, rendered=False)
        with torch.inference_mode():
            q = self.network(torch.from_numpy(obs.board)[None].to(self.device),
                             torch.from_numpy(obs.extras)[None].to(self.device))
        return q[0].cpu().numpy()

    def get_action(self, game: Any) -> str | None:
        """The greedy key for this turn (``'KEY_RIGHT'``, ``'q'``, …), or ``None`` to press nothing."""
        return self.keys[int(self.q_values(game).argmax())]

    def act(self, game: Any, epsilon: float = 0.0) -> str | None:
        """Like :meth:`get_action`, but a random key with probability ``epsilon`` (for evaluations)."""
        if epsilon > 0 and self._rng.random() < epsilon:
            return self._rng.choice(self.keys)
        return self.get_action(game)

    def __repr__(self) -> str:
        return f"TrainedPolicy({self.source!r}, checkpoint={self.checkpoint_path.stem!r})"


def keystroke(key: str) -> Keystroke:
    """The keystroke retro's keyboard input would deliver for a key name."""
    if key.startswith("KEY_"):
        return Keystroke(ucs="", code=None, name=key)
    return Keystroke(ucs=key, code=None, name=None)


class PolicyInput(InputSource):
    """An input source driven by a policy: each turn it presses the key the model chooses.

    Pass it to ``game.play(input_source=...)`` to watch, or set ``game.input_source`` to step
    headless. With ``escape_quits=True`` (a real terminal), Escape or ``q`` ends the game.
    """

    def __init__(self, policy: TrainedPolicy, game: Any, epsilon: float = 0.0, escape_quits: bool = False):
        check_board_size(game, policy.config.game, f"{policy} was trained on")
        self.policy = policy
        self.game = game
        self.epsilon = epsilon
        self._terminal = None
        if escape_quits:
            from blessed import Terminal

            self._terminal = Terminal()
        self.quit = False

    def collect(self) -> set:
        if self._terminal is not None:
            while (pressed := self._terminal.inkey(timeout=0)):
                if pressed.name == "KEY_ESCAPE" or pressed == "q":
                    self.quit = True
                    self.game.end()
        key = self.policy.act(self.game, self.epsilon)
        return set() if key is None else {keystroke(key)}
