"""Exact 90 % intervals on a match's rates: Clopper–Pearson.

Chosen over a bootstrap because it never collapses: a pairing won 200 times in 200 games gets
[0.985, 1], where resampling those games can only give [1, 1]. The score counts a draw as half a
win; the same formula with ``wins + draws/2`` successes is conservative, because an episode worth
0, ½ or 1 varies less than a win-or-loss coin of the same mean.
"""

from __future__ import annotations

CONFIDENCE = 0.9


def clopper_pearson(successes: float, trials: int, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """The ``confidence`` interval on a rate from ``successes`` in ``trials`` (successes may be a half-integer).

    The bounds are the beta quantiles of the exact binomial test; a rate of 0 or 1 keeps its own end."""
    from scipy.special import betaincinv

    if trials < 1:
        raise ValueError(f"an interval needs at least one trial, got {trials}")
    if not 0 <= successes <= trials:
        raise ValueError(f"successes must lie between 0 and the {trials} trials, got {successes}")
    tail = (1 - confidence) / 2
    low = 0.0 if successes == 0 else float(betaincinv(successes, trials - successes + 1, tail))
    high = 1.0 if successes == trials else float(betaincinv(successes + 1, trials - successes, 1 - tail))
    return low, high
