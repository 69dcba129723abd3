"""Greedy (or epsilon-greedy) episodes with a Q-network: how good is a checkpoint?"""

from __future__ import annotations

import numbers
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from retro_gamer.config import RunConfig
from retro_gamer.env import GameEnvironment
from retro_gamer.games import game_factory
from retro_gamer.network import QNetwork


def evaluate(cfg: RunConfig, q: QNetwork, episodes: int = 50, epsilon: float = 0.0, seed: int = 12345,
             base_dir: Path | None = None, parallel: int = 10) -> dict[str, Any]:
    """Play ``episodes`` games; report mean/std return, mean length and mean final numeric state values.

    Games draw from Python's global ``random``: it is seeded for a repeatable evaluation and put
    back as it was afterwards, so a caller's own random sequence is not disturbed.
    """
    saved = random.getstate()
    random.seed(seed)
    try:
        return _play(cfg, q, episodes, epsilon, np.random.default_rng(seed), base_dir, parallel)
    finally:
        random.setstate(saved)


def _play(cfg: RunConfig, q: QNetwork, episodes: int, epsilon: float, rng: np.random.Generator,
          base_dir: Path | None, parallel: int) -> dict[str, Any]:
    device = next(q.parameters()).device
    factory = game_factory(cfg.game, base_dir)
    envs = [GameEnvironment(cfg.game, factory, base_dir) for _ in range(min(parallel, episodes))]
    observations = [env.reset() for env in envs]
    board = np.stack([o.board for o in observations])
    extras = np.stack([o.extras for o in observations])
    returns, lengths, finals = [], [], []
    ep_return = np.zeros(len(envs))
    started = len(envs)
    active = list(range(len(envs)))
    q.eval()
    while active:
        with torch.inference_mode():
            q_values = q(torch.from_numpy(board[active]).to(device), torch.from_numpy(extras[active]).to(device))
            actions = q_values.argmax(1).cpu().numpy()
        for slot, i in enumerate(active[:]):
            action = int(actions[slot])
            if epsilon and rng.random() < epsilon:
                action = int(rng.integers(envs[i].n_actions))
            obs, reward, terminated, truncated = envs[i].step(action)
            ep_return[i] += reward
            if terminated or truncated:
                returns.append(ep_return[i])
                lengths.append(envs[i].turns)
                finals.append({k: v for k, v in envs[i].game.state.items() if isinstance(v, numbers.Real) and not isinstance(v, bool)})
                ep_return[i] = 0.0
                if started < episodes:
                    obs = envs[i].reset()
                    started += 1
                else:
                    active.remove(i)
            board[i], extras[i] = obs.board, obs.extras
    keys = sorted(set().union(*finals)) if finals else []
    return {
        "episodes": len(returns),
        "mean_return": float(np.mean(returns)),
        "std_return": float(np.std(returns)),
        "mean_length": float(np.mean(lengths)),
        "final_state": {k: float(np.mean([f[k] for f in finals if k in f])) for k in keys},
    }
