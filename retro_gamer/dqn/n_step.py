"""n-step returns: a game's last steps turned into the transitions that replay memory keeps.

Pure arithmetic on one game's pending steps, with no networks and no torch, so the rules can be tested by
hand (``tests/test_dqn_math.py``) apart from the trainer that plays the games.

The rules, for ``pending`` steps s_0 … s_(m-1) (oldest first) with rewards r_0 … r_(m-1), and the
observation after the newest step, which every transition made in that call pairs with:

* a full window (m = n, not at an episode end) yields one transition, for s_0:
  return r_0 + γ r_1 + … + γ^(n-1) r_(n-1), discount γ^n;
* at an episode end (``flush``) every remaining step s_i is flushed, oldest first, each with the rewards
  from it to the end: return Σ_k γ^k r_(i+k), discount γ^(m-i);
* the discount is 0 when the game really ended (``ended``: terminated, nothing follows), and γ^(m-i)
  when it was cut short (truncated at ``max_turns``, or stopped by Ctrl+C/SIGTERM/the time limit), so the
  learner's target still bootstraps from the last observation: the game would have gone on.
"""

from __future__ import annotations

from collections import deque
from typing import NamedTuple

import numpy as np

PendingStep = tuple[np.ndarray, np.ndarray, int, float]
"""One step of a game not yet in replay memory: (board, extras, action, reward)."""


class NStepTransition(NamedTuple):
    """A step's observation and action with its n-step return; the next observation is the caller's."""

    board: np.ndarray
    extras: np.ndarray
    action: int
    n_step_return: float
    discount: float  # what the learner multiplies the next observation's value by: 0 at a real end


def n_step_transitions(
    pending: deque[PendingStep], gamma: float, n: int, ended: bool, flush: bool
) -> list[NStepTransition]:
    """The transitions due now from ``pending`` (see the module's rules), oldest first; their steps are
    popped from it. Call it after appending each step, so ``pending`` never holds more than ``n`` steps:
    without ``flush``, it yields at most one transition, once ``n`` steps are pending."""
    transitions = []
    while pending and (flush or len(pending) >= n):
        n_step_return = 0.0
        for k, (_, _, _, reward) in enumerate(pending):
            n_step_return += (gamma**k) * reward
        discount = 0.0 if ended else gamma ** len(pending)
        board, extras, action, _ = pending.popleft()
        transitions.append(NStepTransition(board, extras, action, n_step_return, discount))
        if not flush:
            break
    return transitions
