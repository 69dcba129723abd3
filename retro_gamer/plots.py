"""The learning-curve picture: episode returns (raw and smoothed) and lengths, as a PNG with no display."""

from __future__ import annotations

import io
from pathlib import Path

from retro_gamer import checkpoint
from retro_gamer.config import read_config
from retro_gamer.errors import RetroGamerError
from retro_gamer.files import atomic_write_bytes, check_output_file

CURVE_FILE = "learning_curve.png"


def plot_learning_curve(run_dir: Path, output: Path | None = None) -> Path:
    """Draw the run's episode history (kept in ``resume.pt``) to ``output`` (default ``run_dir/learning_curve.png``)."""
    import matplotlib

    matplotlib.use("Agg")  # files only: works with no display
    import matplotlib.pyplot as plt
    import numpy as np
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
    buffer = io.BytesIO()
    fig.savefig(buffer, dpi=100, format=output.suffix[1:].lower())
    plt.close(fig)
    atomic_write_bytes(output, buffer.getvalue())  # never a half-drawn file
    return output
