"""Which optional packages come with which extra, and the one-line answer when a face needs one that is missing.

The core install (``pip install retro-gamer``) loads and plays a trained policy. Training, tracking, plots and the
``retro-gamer`` command need ``pip install 'retro-gamer[train]'``; the DVC pipeline ``[dvc]``; a game as a Gymnasium
environment ``[gym]``, Stable-Baselines3 beside it ``[sb3]``, chase as a PettingZoo environment ``[pettingzoo]``;
``retro-gamer tune`` ``[tune]``, a PostgreSQL store or study ``[db]``, SLURM multiruns ``[slurm]``; ``[all]`` is all of them.
Each face (the command, ``python -m retro_gamer.train``, tracking, a plot, a model URI) asks here before it imports
the packages, so a missing one is a :class:`~retro_gamer.errors.RetroGamerError` naming the extra to install
instead of a ``ModuleNotFoundError`` deep in a traceback. Asking imports nothing.
"""

from __future__ import annotations

import sys
from importlib.util import find_spec

from retro_gamer.errors import RetroGamerError

# The modules each extra brings (as imported), with the name its package goes by.
EXTRAS: dict[str, dict[str, str]] = {
    "train": {
        "hydra": "Hydra",
        "hydra_plugins.hydra_joblib_launcher": "Hydra's joblib launcher",
        "mlflow": "MLflow",
        "rich": "rich",
        "matplotlib": "matplotlib",
        "scipy": "SciPy",
        "yaml": "PyYAML",
    },
    "dvc": {"dvc": "DVC"},
    "gym": {"gymnasium": "Gymnasium", "PIL": "Pillow"},  # and [train]: games resolve as the CLI resolves them
    "sb3": {"stable_baselines3": "Stable-Baselines3"},  # and [gym]
    "pettingzoo": {"pettingzoo": "PettingZoo"},  # and [gym]
    "tune": {"optuna": "Optuna"},  # and [train]
    "db": {"psycopg2": "psycopg2", "psycopg": "psycopg", "flask_wtf": "Flask-WTF"},  # PostgreSQL; basic-auth server
    "slurm": {"hydra_plugins.hydra_submitit_launcher": "Hydra's submitit launcher"},  # and [train]
}


def installed(module: str) -> bool:
    """Whether ``module`` can be imported, found without importing it (a dotted name imports its parents)."""
    try:
        return find_spec(module) is not None
    except (ImportError, ValueError):  # a parent package missing, or a module without a spec
        return False


def require(module: str, extra: str, for_what: str) -> None:
    """Raise :class:`RetroGamerError` when ``module`` is missing: ``for_what`` needs it, and ``extra`` brings it."""
    if not installed(module):
        name = EXTRAS.get(extra, {}).get(module, module)
        raise RetroGamerError(
            f"{for_what} needs {name}, which comes with the [{extra}] extra: pip install 'retro-gamer[{extra}]'"
        )


def require_extra(extra: str, for_what: str) -> None:
    """:func:`require` every module of ``extra``: the first one missing is named."""
    for module in EXTRAS[extra]:
        require(module, extra, for_what)


def exit_without_extra(extra: str, for_what: str) -> None:
    """For a command, before it imports anything of ``extra``: the missing package's line on stderr and exit 2."""
    try:
        require_extra(extra, for_what)
    except RetroGamerError as err:
        print(f"error: {err}", file=sys.stderr)
        raise SystemExit(err.exit_code) from None
