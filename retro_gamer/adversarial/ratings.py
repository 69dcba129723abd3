"""Ratings for both sides on one Elo-style scale: a Bradley–Terry fit and its bootstrap interval.

One model for both sides, ``P(player i beats enemy j) = 1 / (1 + exp(θ_j − θ_i))``, fitted by maximum
likelihood on every episode of every pairing, a draw counting as half a win for each side, plus one virtual
drawn game per pairing so that a side that wins every episode still gets a finite rating. The log-likelihood
is concave; Newton's method from zero converges to its unique maximum with the θ summing to zero, so the fit
is deterministic (no sampling, no order dependence, unlike sequential Elo updates). Ratings are
``1000 + 400·log10(e)·θ``: Elo's scale (a 400-point gap means 10:1 odds) with mean 1000 over all
generations of both sides. Only player-versus-enemy differences are measured; two players are compared
through the enemies both met.

The interval (:func:`bootstrap_intervals`) is a percentile bootstrap: resample the episodes, refit, take
the 5th and 95th percentiles. The resampling unit is the episode *seed*: under common random numbers
episode k of every pairing starts from the same position, so those episodes are correlated and are drawn
together, the same indices for every pairing. The resamples come from the given seed, so the interval is
deterministic.
"""

from __future__ import annotations

import math

import numpy as np

from retro_gamer.adversarial.intervals import CONFIDENCE

ELO_SCALE = 400 / math.log(10)
ELO_MEAN = 1000.0
PRIOR_GAMES = 1.0  # virtual drawn games per pairing
RESAMPLES = 200


def fit_ratings(
    wins: np.ndarray, games: np.ndarray, prior_games: float = PRIOR_GAMES, iterations: int = 100
) -> tuple[np.ndarray, np.ndarray]:
    """Bradley–Terry ratings (Elo scale) from ``wins[i, j]`` player wins (draws as halves) in ``games[i, j]``
    games of player ``i`` against enemy ``j``. Returns (player ratings, enemy ratings)."""
    wins = np.asarray(wins, dtype=float) + prior_games / 2
    games = np.asarray(games, dtype=float) + prior_games
    n_players, n_enemies = games.shape
    theta = np.zeros(n_players + n_enemies)
    for _ in range(iterations):
        diff = theta[:n_players, None] - theta[None, n_players:]
        p = 1 / (1 + np.exp(-diff))
        residual = wins - games * p  # d loglik / d diff
        gradient = np.concatenate([residual.sum(1), -residual.sum(0)])
        weight = games * p * (1 - p)
        hessian = np.zeros((len(theta), len(theta)))
        hessian[:n_players, :n_players] = np.diag(weight.sum(1))
        hessian[n_players:, n_players:] = np.diag(weight.sum(0))
        hessian[:n_players, n_players:] = -weight
        hessian[n_players:, :n_players] = -weight.T
        step = np.linalg.lstsq(hessian, gradient, rcond=None)[0]  # minimum norm: keeps sum(θ) = 0
        theta += step
        if np.max(np.abs(step)) < 1e-12:
            break
    theta -= theta.mean()
    ratings = ELO_MEAN + ELO_SCALE * theta
    return ratings[:n_players], ratings[n_players:]


def fit_points(points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Ratings from ``points[i, j, k]``: the player's result of episode ``k`` of player ``i`` against enemy ``j``
    (1 a win, ½ a draw, 0 a loss)."""
    points = np.asarray(points, dtype=float)
    return fit_ratings(points.sum(-1), np.full(points.shape[:2], points.shape[2]))


def bootstrap_intervals(
    points: np.ndarray, resamples: int = RESAMPLES, seed: int = 0, confidence: float = CONFIDENCE
) -> tuple[np.ndarray, np.ndarray]:
    """The ``confidence`` percentile-bootstrap interval of every rating (see the module docstring):
    (player intervals, enemy intervals), each ``[[low, high], …]`` in generation order."""
    points = np.asarray(points, dtype=float)
    n_players, _, episodes = points.shape
    draws = np.random.default_rng(seed).integers(0, episodes, size=(resamples, episodes))
    samples = np.array([np.concatenate(fit_points(points[:, :, rows])) for rows in draws])
    tail = (1 - confidence) / 2
    bounds = np.quantile(samples, [tail, 1 - tail], axis=0).T
    return bounds[:n_players], bounds[n_players:]
