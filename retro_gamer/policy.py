"""Use a trained model in a game: :class:`TrainedPolicy` chooses keys, :class:`PolicyInput` presses them.

Loading needs ``config.toml`` and a checkpoint, nothing from the trainer: weights load with
``weights_only=True`` (a checkpoint can never run code) and ``map_location`` (GPU-trained
checkpoints load on a CPU). A model URI (``models:/…``, ``runs:/…``) is first downloaded from MLflow
as such a folder (:mod:`retro_gamer.tracking.mlflow_model`); MLflow is imported only then.
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

from retro_gamer.config.schema import CONFIG_FILE, ModelKind, RunConfig, read_config, to_toml_dict
from retro_gamer.dqn.network import QNetwork
from retro_gamer.env.environment import check_board_size, make_encoder
from retro_gamer.errors import IncompatibleRunError, RetroGamerError
from retro_gamer.extras import require
from retro_gamer.games import is_model_uri
from retro_gamer.run.checkpoint import compatibility_problems, resolve_checkpoint
from retro_gamer.run.checkpoint import load as load_checkpoint


def resolve_source(source: str | os.PathLike, tracking_uri: str | None = None) -> Path:
    """The run directory a policy comes from: a folder, or a model URI (``runs:/…``, ``models:/…``)
    downloaded from the MLflow store ``tracking_uri``."""
    if is_model_uri(source):
        require("mlflow", "train", f"The model URI {source}")
        from retro_gamer.tracking.mlflow_model import download_policy

        return download_policy(str(source), tracking_uri)
    path = Path(source)
    if not path.is_dir():
        problem = "is not a run directory" if path.exists() else "does not exist"
        raise RetroGamerError(
            f"Policy source '{source}' {problem}. Pass the folder that holds config.toml "
            "and checkpoints/ (for example runs/snake/), or a model URI such as models:/NAME@champion."
        )
    if not (path / CONFIG_FILE).is_file():
        # a common slip: the folder that holds the runs (runs/) instead of one run (runs/snake/)
        runs = sorted(str(path / child.name) for child in path.iterdir() if (child / CONFIG_FILE).is_file())
        if runs:
            raise RetroGamerError(
                f"{source} is not a run directory; it holds runs: {', '.join(runs)} — pass one of them."
            )
    return path


class OneBlasThread:
    """Numpy's BLAS held to one thread for a block, then given back the count it had.

    One observation is too little work to share: a second BLAS thread only adds a wake-up, and on a busy
    CPU a wait for a core that another process holds. The caller's own setting is restored on the way out,
    so a game (or a trainer) that uses BLAS itself keeps its threads. The libraries are looked up once, on
    first use, after numpy has loaded its BLAS."""

    def __init__(self) -> None:
        self._libraries: list[Any] | None = None
        self._before: list[int | None] = []

    def __enter__(self) -> None:
        if self._libraries is None:
            from threadpoolctl import ThreadpoolController

            self._libraries = ThreadpoolController().select(user_api="blas").lib_controllers
        self._before = [lib.get_num_threads() for lib in self._libraries]
        for lib, threads in zip(self._libraries, self._before):
            if threads != 1:
                lib.set_num_threads(1)

    def __exit__(self, *exc: object) -> None:
        for lib, threads in zip(self._libraries or (), self._before):
            if threads is not None and threads != 1:
                lib.set_num_threads(threads)


class NumpyForward:
    """A :class:`~retro_gamer.dqn.network.QNetwork`'s forward pass for one observation, in numpy on the CPU: the
    fast path of :meth:`TrainedPolicy.get_action`.

    A game calls ``get_action`` every turn, so one call must never stall it. Torch spends most of a call
    on its per-operation cost and shares the work with its intra-op threads: on a busy CPU a call then
    waits for a core that another process holds, and the longer a call, the likelier the scheduler
    preempts it. This runs on the calling thread only (call it inside :class:`OneBlasThread`) and never
    touches torch's settings, so the caller's stay as they are. It keeps its own C-ordered copies of the
    weights (a trained policy's weights do not change) and writes into buffers made once.

    Convolutions (3x3, padding 1, as :class:`~retro_gamer.dqn.network.QNetwork` builds them) are matrix
    products over the gathered 3x3 neighbourhoods of each output cell. Results match torch's to float32
    rounding (the sums run in another order).
    """

    def __init__(self, q: QNetwork):
        params = {name: t.detach().cpu().numpy() for name, t in q.state_dict().items()}
        h, w = q.board_shape
        self.onehot_table = np.ascontiguousarray(q.onehot.cpu().numpy())  # class -> channels, the blank all zeros
        self.onehot = np.zeros((h * w, q.n_classes - 1), np.float32)
        self.convs: list[_Conv] = []
        if q.kind is ModelKind.cnn and h * w:
            shape = (h, w)
            for i, module in enumerate(q.features.children()):  # a Sequential's layers, in order
                if isinstance(module, torch.nn.Conv2d):
                    self.convs.append(
                        _Conv(params[f"features.{i}.weight"], params[f"features.{i}.bias"], shape, module.stride[0])
                    )
                    shape = self.convs[-1].out_shape
        last = self.convs[-1].out if self.convs else self.onehot
        self.board_features = last.size
        self.layers = [
            (
                np.ascontiguousarray(params[f"trunk.{i}.weight"].T),
                params[f"trunk.{i}.bias"].copy(),
                np.zeros(module.out_features, np.float32),
            )
            for i, module in enumerate(q.trunk)
            if isinstance(module, torch.nn.Linear)
        ]
        first = next((m for m in q.trunk if isinstance(m, torch.nn.Linear)), q.advantage)
        self.input = np.zeros(first.in_features, np.float32)  # the board's features, then the extras
        # torch flattens a convolution's output (channel, row, column); ours is (row, column, channel)
        self.board_input = (
            self.input[: self.board_features].reshape(last.shape[1], last.shape[0]).T
            if self.convs
            else self.input[: self.board_features].reshape(last.shape)
        )
        # the dueling head V + A - mean(A) is linear in its input: one matrix product (weights summed in float64)
        weight, bias = params["advantage.weight"].T.astype(np.float64), params["advantage.bias"].astype(np.float64)
        if q.value is not None:
            weight = weight - weight.mean(axis=1, keepdims=True) + params["value.weight"].T
            bias = bias - bias.mean() + params["value.bias"]
        self.head = (np.ascontiguousarray(weight, np.float32), bias.astype(np.float32))
        self.q = np.zeros(len(bias), np.float32)

    def __call__(self, board: np.ndarray, extras: np.ndarray) -> np.ndarray:
        """Q-values (actions,) for one board (h, w) of class indices and its extras (k,). The array returned is
        overwritten by the next call."""
        if self.board_features:
            np.take(self.onehot_table, board.ravel(), axis=0, out=self.onehot)
            x: np.ndarray = self.onehot
            for conv in self.convs:
                x = conv(x)
            self.board_input[...] = x
        self.input[self.board_features :] = extras
        x = self.input
        for weight, bias, out in self.layers:
            np.matmul(x, weight, out=out)
            out += bias
            x = np.maximum(out, 0.0, out=out)
        np.matmul(x, self.head[0], out=self.q)
        self.q += self.head[1]
        return self.q


class _Conv:
    """One 3x3 convolution (padding 1) and its ReLU, for :class:`NumpyForward`: ``(h*w, in) -> (h'*w', out)``."""

    def __init__(self, weight: np.ndarray, bias: np.ndarray, shape: tuple[int, int], stride: int):
        out_channels, in_channels = weight.shape[:2]
        h, w = shape
        self.out_shape = ((h - 1) // stride + 1, (w - 1) // stride + 1)
        self.padded = np.zeros(((h + 2) * (w + 2), in_channels), np.float32)  # the border stays zero
        self.interior = self.padded.reshape(h + 2, w + 2, in_channels)[1:-1, 1:-1]
        rows = (np.arange(self.out_shape[0]) * stride)[:, None, None, None] + np.arange(3)[None, None, :, None]
        columns = (np.arange(self.out_shape[1]) * stride)[None, :, None, None] + np.arange(3)[None, None, None, :]
        self.index = (rows * (w + 2) + columns).ravel()  # (output row, output column, dy, dx) into padded
        n_out = self.out_shape[0] * self.out_shape[1]
        self.columns = np.zeros((n_out, 9 * in_channels), np.float32)
        self.gathered = self.columns.reshape(len(self.index), in_channels)  # the same memory, a row per neighbour
        self.weight = np.ascontiguousarray(weight.transpose(2, 3, 1, 0).reshape(9 * in_channels, out_channels))
        self.bias = bias.copy()
        self.out = np.zeros((n_out, out_channels), np.float32)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        self.interior[...] = x.reshape(self.interior.shape)
        np.take(self.padded, self.index, axis=0, out=self.gathered)
        np.matmul(self.columns, self.weight, out=self.out)
        self.out += self.bias
        return np.maximum(self.out, 0.0, out=self.out)


class TrainedPolicy:
    """A trained network that looks at a game and names the key to press.

    ``source`` is a run directory or a model URI (``runs:/<run_id>/policy``, ``models:/NAME/VERSION``,
    ``models:/NAME@ALIAS``, ``models:/<model_id>``) looked up in ``tracking_uri`` (default:
    ``MLFLOW_TRACKING_URI``, else the current project's store). A model holds one checkpoint, so
    ``checkpoint`` is for run directories only.

    ``agent`` names the character the model plays when the game has several (the egocentric
    crop centres on it); it defaults to the agent named at training time.
    """

    def __init__(
        self,
        source: str | os.PathLike,
        checkpoint: str | os.PathLike | None = None,
        device: str = "cpu",
        agent: str | None = None,
        tracking_uri: str | None = None,
    ):
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
        # on the CPU, actions come from numpy on this thread alone (see NumpyForward); elsewhere from torch
        self._numpy = NumpyForward(self.network) if self.device.type == "cpu" else None
        self._one_blas_thread = OneBlasThread()
        self.encoder = make_encoder(self.config.game, self.run_dir, agent)
        if self.encoder.observation_function is not None:
            self.encoder.set_extras_size(dims["extras_size"])
        self.keys: list[str | None] = list(self.config.game.actions) + [None]
        self._rng = random.Random()
        self._board_size = self.config.game.resolved()[0]

    def q_values(self, game: Any) -> np.ndarray:
        """The network's value of each action (``keys`` order; the last is the no-op) in this position."""
        return self._q_values(game).copy()

    def _q_values(self, game: Any) -> np.ndarray:
        """:meth:`q_values` in an array the next call may overwrite."""
        if tuple(game.board_size) != self._board_size:
            check_board_size(game, self.config.game, f"{self} was trained on")
        obs = self.encoder.encode(game, rendered=False)
        if self._numpy is not None:
            with self._one_blas_thread:
                return self._numpy(obs.board, obs.extras)
        with torch.inference_mode():
            q = self.network(
                torch.from_numpy(obs.board)[None].to(self.device), torch.from_numpy(obs.extras)[None].to(self.device)
            )
        return q[0].cpu().numpy()

    def get_action(self, game: Any) -> str | None:
        """The greedy key for this turn (``'KEY_RIGHT'``, ``'q'``, …), or ``None`` to press nothing.

        On the CPU it runs on the calling thread only and leaves torch's and numpy's thread settings as they
        were (see :class:`NumpyForward`), so a game on a busy machine is not held up waiting for a core."""
        return self.keys[int(self._q_values(game).argmax())]

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
            while pressed := self._terminal.inkey(timeout=0):
                if pressed.name == "KEY_ESCAPE" or pressed == "q":
                    self.quit = True
                    self.game.end()
        key = self.policy.act(self.game, self.epsilon)
        return set() if key is None else {keystroke(key)}
