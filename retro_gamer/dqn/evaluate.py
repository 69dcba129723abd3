"""Greedy (or epsilon-greedy) episodes with a Q-network: how good is a checkpoint?

"Good" needs a yardstick: the same games played at random (the baseline), and which keys the
agent pressed (an agent that learned to press one key into a wall shows up there at once)."""

from __future__ import annotations

import math
import numbers
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from retro_gamer.config.schema import RunConfig
from retro_gamer.dqn.network import QNetwork
from retro_gamer.env.environment import GameEnvironment, check_rules
from retro_gamer.games import game_factory

NO_OP = "no-op"  # the name the key shares use for the last action, no key pressed this turn


def standard_errors_apart(a: dict[str, Any], b: dict[str, Any]) -> float:
    """How many standard errors of the difference separate two :func:`evaluate` results' mean returns, ``a``'s
    above ``b``'s; infinite, with the gap's sign, when neither varies."""
    error = (a["std_return"] ** 2 / a["episodes"] + b["std_return"] ** 2 / b["episodes"]) ** 0.5
    gap = a["mean_return"] - b["mean_return"]
    return gap / error if error else math.copysign(math.inf, gap)


def evaluate(
    cfg: RunConfig,
    q: QNetwork,
    episodes: int = 50,
    epsilon: float = 0.0,
    seed: int = 12345,
    base_dir: Path | None = None,
    parallel: int = 10,
    baseline: bool = False,
) -> dict[str, Any]:
    """Play ``episodes`` games; report mean/std return, mean length, mean final numeric state values and
    ``key_shares`` (the share of turns each action was chosen, by action name, :data:`NO_OP` included).

    With ``baseline``, ``random_play`` holds the same report for as many games played with epsilon 1 from
    the same seed, so a result can be read against what no learning at all scores.

    Games draw from Python's global ``random``: it is seeded for a repeatable evaluation and put
    back as it was afterwards, so a caller's own random sequence is not disturbed.
    """
    result = _seeded(cfg, q, episodes, epsilon, seed, base_dir, parallel)
    if baseline:
        result["random_play"] = _seeded(cfg, q, episodes, 1.0, seed, base_dir, parallel)
    return result


def _seeded(
    cfg: RunConfig, q: QNetwork, episodes: int, epsilon: float, seed: int, base_dir: Path | None, parallel: int
) -> dict[str, Any]:
    saved = random.getstate()
    random.seed(seed)
    try:
        return _play(cfg, q, episodes, epsilon, np.random.default_rng(seed), base_dir, parallel)
    finally:
        random.setstate(saved)


def _play(
    cfg: RunConfig,
    q: QNetwork,
    episodes: int,
    epsilon: float,
    rng: np.random.Generator,
    base_dir: Path | None,
    parallel: int,
) -> dict[str, Any]:
    device = next(q.parameters()).device
    factory = game_factory(cfg.game, base_dir)
    check_rules(cfg.game, factory, "This policy")
    envs = [GameEnvironment(cfg.game, factory, base_dir) for _ in range(min(parallel, episodes))]
    observations = [env.reset() for env in envs]
    board = np.stack([o.board for o in observations])
    extras = np.stack([o.extras for o in observations])
    returns, lengths, finals = [], [], []
    pressed = np.zeros(envs[0].n_actions, dtype=np.int64)
    ep_return = np.zeros(len(envs))
    started = len(envs)
    active = list(range(len(envs)))
    q.eval()
    while active:
        if epsilon < 1:  # at epsilon 1 every action is random: the network's answer would go unused
            with torch.inference_mode():
                q_values = q(torch.from_numpy(board[active]).to(device), torch.from_numpy(extras[active]).to(device))
                actions = q_values.argmax(1).cpu().numpy()
        for slot, i in enumerate(active[:]):
            if epsilon and rng.random() < epsilon:
                action = int(rng.integers(envs[i].n_actions))
            else:
                action = int(actions[slot])
            pressed[action] += 1
            obs, reward, terminated, truncated = envs[i].step(action)
            ep_return[i] += reward
            if terminated or truncated:
                returns.append(ep_return[i])
                lengths.append(envs[i].turns)
                finals.append(
                    {
                        k: v
                        for k, v in envs[i].game.state.items()
                        if isinstance(v, numbers.Real) and not isinstance(v, bool)
                    }
                )
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
        "key_shares": {key or NO_OP: float(n / pressed.sum()) for key, n in zip(envs[0].keys, pressed)},
    }
