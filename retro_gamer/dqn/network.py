"""Q-networks built from the model config: observation (board indices + extras) → one value per action."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from retro_gamer.config.schema import ModelConfig, ModelKind


class QNetwork(nn.Module):
    """One-hot board (blank cells are all-zero) → MLP or small strided CNN → (dueling) Q-values."""

    onehot: torch.Tensor  # a buffer: class index -> channels

    def __init__(
        self, cfg: ModelConfig, board_shape: tuple[int, int], n_classes: int, extras_size: int, n_actions: int
    ):
        super().__init__()
        self.kind = ModelKind(cfg.kind)
        self.board_shape = tuple(board_shape)
        self.n_classes = n_classes
        self.dueling = cfg.dueling
        h, w = self.board_shape
        channels = n_classes - 1 if h * w else 0
        # one-hot by table lookup: row i is class i's channels, the blank row is all zeros
        self.register_buffer("onehot", torch.eye(n_classes)[:, 1:].contiguous(), persistent=False)
        if self.kind is ModelKind.cnn and h * w:
            layers: list[nn.Module] = []
            in_ch = channels
            for i, out_ch in enumerate(cfg.channels):
                stride = cfg.strides[min(i, len(cfg.strides) - 1)]
                layers += [nn.Conv2d(in_ch, out_ch, 3, stride=stride, padding=1), nn.ReLU()]
                in_ch = out_ch
            self.features: nn.Module = nn.Sequential(*layers, nn.Flatten())
            with torch.no_grad():
                board_features = self.features(torch.zeros(1, channels, h, w)).shape[1]
        else:
            self.features = nn.Flatten()
            board_features = channels * h * w
        sizes = [board_features + extras_size, *cfg.hidden]
        trunk: list[nn.Module] = []
        for a, b in zip(sizes[:-1], sizes[1:]):
            trunk += [nn.Linear(a, b), nn.ReLU()]
        self.trunk = nn.Sequential(*trunk)
        self.advantage = nn.Linear(sizes[-1], n_actions)
        self.value = nn.Linear(sizes[-1], 1) if self.dueling else None

    @classmethod
    def from_dims(cls, cfg: ModelConfig, dims: dict[str, Any]) -> QNetwork:
        """Build from the ``observation`` sizes a checkpoint records (see ``GameEnvironment.dims``)."""
        return cls(cfg, tuple(dims["board_shape"]), dims["n_classes"], dims["extras_size"], dims["n_actions"])

    def one_hot(self, board: torch.Tensor) -> torch.Tensor:
        """(B, h, w) class indices → (B, h, w, C) floats,, by table lookup (cheaper than ``F.one_hot``)."""
        return F.embedding(board.long(), self.onehot)

    def forward(self, board: torch.Tensor, extras: torch.Tensor, onehot: torch.Tensor | None = None) -> torch.Tensor:
        """Q-values (B, actions). ``onehot``: :meth:`one_hot` of ``board``, when another network of the same
        shape made it already (learning evaluates the next boards with both the online and target networks)."""
        x = extras
        if board.shape[-1]:
            if onehot is None:
                onehot = self.one_hot(board)
            if self.kind is ModelKind.cnn:
                onehot = onehot.permute(0, 3, 1, 2)
            features = self.features(onehot)
            x = torch.cat([features, extras], dim=1) if extras.shape[1] else features  # a cat copies the batch
        x = self.trunk(x)
        advantage: torch.Tensor = self.advantage(x)
        if self.value is None:
            return advantage
        value: torch.Tensor = self.value(x)
        return value + advantage - advantage.mean(dim=1, keepdim=True)


class NumpyMLP:
    """The forward pass of an MLP :class:`QNetwork` in numpy, over the network's own parameters (views of
    them, on the CPU: they see every later change). For the few games of one action choice, torch's fixed
    cost per operation would be most of the time; numpy's is a fraction of it."""

    def __init__(self, q: QNetwork):
        if q.kind is not ModelKind.mlp:
            raise ValueError("NumpyMLP runs an MLP QNetwork only")
        layers = [m for m in q.trunk if isinstance(m, nn.Linear)]
        self.trunk = [(m.weight.detach().numpy().T, m.bias.detach().numpy()) for m in layers]
        self.advantage = (q.advantage.weight.detach().numpy().T, q.advantage.bias.detach().numpy())
        self.value = None if q.value is None else (q.value.weight.detach().numpy().T, q.value.bias.detach().numpy())
        self.onehot = q.onehot.numpy()

    def __call__(self, board: np.ndarray, extras: np.ndarray) -> np.ndarray:
        """Q-values, (B, actions), for boards (B, h, w) of class indices and extras (B, k), as :meth:`QNetwork.forward`."""
        x = extras
        if board.shape[-1]:
            x = np.take(self.onehot, board, axis=0).reshape(len(board), -1)  # np.take: cheaper than fancy indexing
            if extras.shape[1]:
                x = np.concatenate([x, extras], axis=1)
        for weight, bias in self.trunk:
            x = np.maximum(x @ weight + bias, 0.0)
        advantage: np.ndarray = x @ self.advantage[0] + self.advantage[1]
        if self.value is None:
            return advantage
        value: np.ndarray = x @ self.value[0] + self.value[1]
        q: np.ndarray = value + advantage - advantage.mean(axis=1, keepdims=True)
        return q
