"""The learning-curve picture: episode returns (raw and smoothed) and lengths, as a PNG with no display."""

from __future__ import annotations

import io
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from retro_gamer.config.schema import read_config
from retro_gamer.errors import RetroGamerError
from retro_gamer.extras import require
from retro_gamer.files import atomic_write_bytes, check_output_file
from retro_gamer.run import checkpoint

if TYPE_CHECKING:
    from matplotlib.figure import Figure

CURVE_FILE = "learning_curve.png"


def moving_average(values: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """The episode numbers, means and window of a trailing moving average over up to 100 episodes (a tenth of
    the run, so a short run still shows a trend): single episodes vary too much to read a trend from."""
    window = max(1, min(100, len(values) // 10))
    return np.arange(window, len(values) + 1), np.convolve(values, np.ones(window) / window, mode="valid"), window


def draw_learning_curve(returns: np.ndarray, lengths: np.ndarray, title: str) -> Figure:
    """Returns on top, lengths below: each episode's value faint and thin, its moving average drawn over it.

    A bare Figure, not pyplot's: it needs no display or backend choice, and nothing keeps it once dropped."""
    require("matplotlib", "train", "The learning curve")
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8, 6))
    axes = fig.subplots(2, 1, sharex=True)
    for ax, values, label, unit in (
        (axes[0], returns, "episode return", "return"),
        (axes[1], lengths, "episode length", "episode length (turns)"),
    ):
        ax.plot(np.arange(1, len(values) + 1), values, alpha=0.25, linewidth=0.6, label=label)
        x, mean, window = moving_average(values)
        ax.plot(x, mean, linewidth=1.5, label=f"mean of {window}")
        ax.set_ylabel(unit)
        ax.legend()
    axes[1].set_xlabel("episode")
    fig.suptitle(title)
    return fig


def plot_learning_curve(run_dir: Path, output: Path | None = None) -> Path:
    """Draw the run's episode history (kept in ``resume.pt``) to ``output`` (default ``run_dir/learning_curve.png``)."""
    require("matplotlib", "train", "The learning curve")
    from matplotlib.backend_bases import FigureCanvasBase

    run_dir = Path(run_dir)
    read_config(run_dir)  # says clearly when the folder is not a run
    formats = (".png", *(f".{ext}" for ext in FigureCanvasBase.get_supported_filetypes() if ext != "png"))
    output = check_output_file(Path(output or run_dir / CURVE_FILE), formats, "plot")
    resume = run_dir / checkpoint.RESUME_FILE
    if not resume.is_file():
        raise RetroGamerError(f"{run_dir} has no training history yet ({resume.name} is missing): train first.")
    state = checkpoint.load(resume)
    returns = state["returns"].numpy()
    fig = draw_learning_curve(returns, state["lengths"].numpy(), f"{run_dir}: {len(returns)} episodes")
    buffer = io.BytesIO()
    fig.savefig(buffer, dpi=100, format=output.suffix[1:].lower())
    atomic_write_bytes(output, buffer.getvalue())  # never a half-drawn file
    return output
