"""The learning-curve picture: episode returns (raw and smoothed) and lengths, as a PNG with no display."""

from __future__ import annotations

from pathlib import Path

from retro_gamer import checkpoint
from retro_gamer.config import read_config
from retro_gamer.errors import RetroGamerError

CURVE_FILE = "learning_curve.png"


def plot_learning_curve(run_dir: Path, output: Path | None = None) -> Path:
    """Draw the run's episode history (kept in ``resume.pt``) to ``output`` (default ``run_dir/learning_curve.png``)."""
    import matplotlib

    matplotlib.use("Agg")  # files only: works with no display
    import matplotlib.pyplot as plt
    import numpy as np

    run_dir = Path(run_dir)
    read_config(run_dir)  # says clearly when the folder is not a run
    resume = run_dir / checkpoint.RESUME_FILE
    if not resume.is_file():
        raise RetroGamerError(f"{run_dir} has no training history yet ({resume.name} is missing): train first.")
    state = checkpoint.load(resume)
    returns = state["returns"].numpy()
    lengths = state["lengths"].numpy()
    window = max(1, min(100, len(returns) // 10))
    smooth = np.convolve(returns, np.ones(window) / window, mode="valid")
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(8, 6), sharex=True)
    top.plot(np.arange(1, len(returns) + 1), returns, alpha=0.25, label="episode return")
    top.plot(np.arange(window, len(returns) + 1), smooth, label=f"mean of {window}")
    top.set_ylabel("return")
    top.legend()
    bottom.plot(np.arange(1, len(lengths) + 1), lengths, alpha=0.5)
    bottom.set_ylabel("episode length (turns)")
    bottom.set_xlabel("episode")
    fig.suptitle(f"{run_dir}: {len(returns)} episodes")
    output = output or run_dir / CURVE_FILE
    fig.savefig(output, dpi=100)
    plt.close(fig)
    return output
