"""The payoff matrix as a picture: the player's score in every pairing, as a PNG with no display.

Players are rows and enemies columns, so a side's progress reads along one axis: a better player
generation is a bluer row, a better enemy generation a redder column. The colour map diverges from white
at 0.5 (a pairing either side wins as often as it loses), blue toward the player, red toward the enemy.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import TYPE_CHECKING

from retro_gamer.adversarial.verdicts import Payoff
from retro_gamer.extras import require
from retro_gamer.files import atomic_write_bytes, check_output_file

if TYPE_CHECKING:
    from matplotlib.figure import Figure

MAX_COLUMNS_WITH_INTERVALS = 8  # wider matrices show the score alone: the interval text would not fit a cell


def draw_heatmap(payoff: Payoff, title: str) -> Figure:
    """Each cell coloured by the player's score and annotated with it (and its interval when it fits).

    A bare Figure, not pyplot's: it needs no display or backend choice, and nothing keeps it once dropped."""
    require("matplotlib", "train", "The tournament's heat map")
    from matplotlib.colors import Normalize
    from matplotlib.figure import Figure

    names, opponents, score, low, high = payoff.view("player")
    rows, cols = score.shape
    fig = Figure(figsize=(2.2 + 1.15 * cols, 1.6 + 0.75 * rows), layout="constrained")
    ax = fig.subplots()
    # 0 and 1 at the ends put a drawn pairing (0.5) at the map's white centre
    image = ax.imshow(score, cmap="RdBu", norm=Normalize(0, 1), aspect="auto")
    with_intervals = payoff.low is not None and cols <= MAX_COLUMNS_WITH_INTERVALS
    for i in range(rows):
        for j in range(cols):
            text = f"{score[i, j]:.2f}" + (f"\n[{low[i, j]:.2f}, {high[i, j]:.2f}]" if with_intervals else "")
            ax.text(
                j,
                i,
                text,
                ha="center",
                va="center",
                fontsize=8,
                color="white" if abs(score[i, j] - 0.5) > 0.3 else "black",
            )
    ax.set_xticks(range(cols), opponents)
    ax.set_yticks(range(rows), names)
    ax.set_xlabel("enemy generation")
    ax.set_ylabel("player generation")
    fig.colorbar(image, ax=ax, label="player's score (wins + draws/2)")
    ax.set_title(title, fontsize=10)
    return fig


def write_heatmap(payoff: Payoff, path: str | Path, title: str) -> Path:
    """Draw :func:`draw_heatmap` to the PNG ``path`` (its folder is created, as for the tournament's other
    files), written atomically: never a half-drawn file."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    path = check_output_file(Path(path), (".png",), "heat map")
    buffer = io.BytesIO()
    draw_heatmap(payoff, title).savefig(buffer, dpi=100, format="png")
    atomic_write_bytes(path, buffer.getvalue())
    return path
