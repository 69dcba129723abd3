"""Every setting, for the site: tables rendered from ``retro_gamer.config.schema`` while the site builds.

* ``.. settings-reference::``: a section each for ``model``, ``trainer`` and ``tracking``, one row per key with its
  type, default, allowed values (the range that :func:`~retro_gamer.config.schema.setting_problems` checks, kept
  as field metadata) and what it does (``MEANINGS`` here, checked against the fields).
* ``.. game-keys-reference::``: the game description's keys (:class:`~retro_gamer.games.GameDescription`), with
  default, meaning and an example; the examples are checked by :func:`~retro_gamer.games.parse_description`
  while the site builds, and a key without one stops the build.
* ``.. config-groups::``: the Hydra config groups under ``conf/`` and their options.

Rendering at build time keeps the tables in step with the code: a new field is a new row.

    python docs/_tools/settings_reference.py     # print the tables as reStructuredText
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import MISSING, Field, fields
from enum import Enum
from typing import Any

from generated_rst import GeneratedRst  # this folder's
from sphinx.application import Sphinx

from retro_gamer.compat import tomllib
from retro_gamer.config import schema
from retro_gamer.games import description

SECTIONS = {"model": schema.ModelConfig, "trainer": schema.TrainerConfig, "tracking": schema.TrackingConfig}
TOML_SECTION = {"model": "model", "trainer": "training", "tracking": "tracking"}  # their names in config.toml

# What each setting does, in a student's words. The type, default and range come from the code; a field missing
# here (or a name here that is no field) stops the build, so the table always has every key.
MEANINGS = {
    "model": {
        "kind": "``mlp`` reads the one-hot board as one long list; ``cnn`` convolves it first (large boards).",
        "hidden": "Sizes of the fully connected layers.",
        "channels": "cnn only: channels of each 3x3 convolution layer.",
        "strides": "cnn only: stride of each convolution layer, the last repeated for deeper layers.",
        "dueling": "Split the network's head into a state value and each action's advantage.",
    },
    "trainer": {
        "algorithm": "The learning algorithm (DQN is the only one so far).",
        "episodes": "Stop when the run has played this many episodes, over all its sessions.",
        "total_env_steps": "Stop at exactly this many env steps over all sessions: the reproducible budget.",
        "time_limit": "Minutes of wall clock for this session, then stop cleanly (resume later).",
        "seed": "Seed of every random choice: the same seed and settings give the same run.",
        "device": "Where the network learns; ``auto`` picks the CPU for a small MLP, else a GPU if there is one.",
        "lr": "Learning rate of the Adam optimiser.",
        "gamma": "Discount: how much a reward one turn later is worth compared with one now.",
        "n_step": "Rewards summed over this many turns before the network's own estimate takes over.",
        "batch_size": "Transitions in one gradient step.",
        "buffer_size": "Transitions the replay memory holds; the oldest are dropped.",
        "num_envs": "Games played side by side; each turn the network chooses for all of them at once.",
        "warmup_steps": "Env steps of random play before learning starts.",
        "epsilon_start": "Share of random keys when learning starts.",
        "epsilon_end": "Share of random keys after the exploration schedule.",
        "epsilon_decay_steps": "Env steps over which epsilon falls from start to end.",
        "exploration_fraction": "With a budget, epsilon reaches its end by this share of it, if sooner.",
        "train_every": "Env steps between gradient steps.",
        "target_update_every": "Gradient steps between copies of the network to its target network.",
        "grad_clip": "Largest gradient norm; larger gradients are scaled down.",
        "prioritized": "Replay surprising transitions more often (prioritised replay).",
        "priority_alpha": "prioritized only: how strongly priorities skew sampling (0 is uniform).",
        "priority_beta": "prioritized only: how much the skew is corrected for in the loss.",
        "exploration_turns": "Turns of random play that discover the board's characters, when not given.",
        "checkpoint_every": "Episodes between policy checkpoints (and lines of training.log).",
        "keep_checkpoints": "Keep only this many newest checkpoints; unset keeps all.",
        "save_replay": "Save the replay memory with the resume state, so a resumed run learns exactly as before.",
        "threads": "CPU threads for torch; 0 leaves torch's own choice.",
        "game_process": "Play the games in a second process; unset: chosen when the run is created.",
        "learner_process": "Learn in a second process; unset: chosen when the run is created.",
    },
    "tracking": {
        "enabled": "Record the run in MLflow.",
        "uri": "The MLflow store; unset: ``MLFLOW_TRACKING_URI``, else SQLite under the project's ``mlruns/``.",
        "experiment": "The MLflow experiment; unset: the game's name.",
        "role": "A tag that tells sides apart: ``player``, ``enemy`` or ``single``.",
        "tags": "More MLflow tags, e.g. ``+tracking.tags.class=7b``.",
        "replay_every": "An episode replay at every Nth checkpoint; 0 never; unset: as often as 1 % of the time allows.",
        "log_checkpoints": "Copy every checkpoint to the run's artifacts (the final policy is always logged).",
        "register_as": "Register the final policy under this model name, with alias ``newest``.",
    },
}

# Each game key: what it means and a line of [tool.retro-gamer] that sets it (checked by parse_description).
GAME_KEYS = {
    "factory": (
        "The function that returns a new ``Game``: ``module:function``, ``path/to/file.py[:function]``, a package "
        "folder or a module (then its ``create_game``). In ``[tool.retro-gamer]``, the game's own module.",
        'factory = "my_game:create_game"',
    ),
    "actions": (
        "The keys the agent may press; a no-op (press nothing) is always added.",
        'actions = ["KEY_LEFT", "KEY_RIGHT", " "]',
    ),
    "reward": ("A ``game.state`` key; its change each turn is the agent's reward.", 'reward = "score"'),
    "name": ("The game's name: the MLflow experiment and the default run folder.", 'name = "my-game"'),
    "character_set": (
        "The board characters the agent tells apart; found by random play when left out.",
        'character_set = ["@", "$", "#"]',
    ),
    "spatial": (
        "Whether where things are matters more than what they are (a maze, a shooter): with many agents, "
        "a convolutional network is chosen.",
        "spatial = true",
    ),
    "board": ("Whether the agent sees the board at all.", "board = false"),
    "observe_state": (
        "``game.state`` numbers the agent sees besides the board.",
        'observe_state = ["energy", "lives"]',
    ),
    "observation_function": (
        "``module:function`` that turns a game into a list of numbers: the agent then sees those alone (no board, no ``observe_state``).",
        'observation_function = "my_game:observe"',
    ),
    "max_turns": ("Turns before an episode is cut off (a game that never ends stops here).", "max_turns = 500"),
    "crop": (
        "See the board from one agent: a window of ``radius`` cells each way around it (walls beyond the edge show).",
        'crop = {agent = "player", radius = 3}',
    ),
    "opponent": (
        "A run directory or model URI passed to the factory as ``opponent=``: the trained side of a two-sided game.",
        'opponent = "runs/enemy"',
    ),
}


def _words(annotation: str) -> str:
    """A field's type, as a student reads it."""
    names = {"int": "whole number", "float": "number", "bool": "true or false", "str": "text"}
    parts = [part.strip() for part in annotation.split("|")]
    shown = []
    for part in parts:
        if part == "None":
            continue
        if part.startswith("list["):
            shown.append(f"list of {names.get(part[5:-1], part[5:-1])}s")
        elif part.startswith("dict["):
            shown.append("table of text")
        elif part in names:
            shown.append(names[part])
        else:
            shown.append(" or ".join(member.value for member in getattr(schema, part)))
    return " or ".join(shown) + (", or unset" if "None" in parts else "")


def _default(f: Field) -> Any:
    return f.default_factory() if f.default_factory is not MISSING else f.default


def _toml(value: Any) -> str:
    """A value as it is written in config.toml or an override."""
    if value is None:
        return "unset"
    if isinstance(value, Enum):
        return str(value.value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, dict):
        return "{}" if not value else repr(value)
    return repr(value)


def _shown(value: Any) -> str:
    return "unset" if value is None else f"``{_toml(value)}``"


def _allowed(f: Field) -> str:
    rule = f.metadata.get("allowed")
    if rule is not None:
        text, _, each = rule
        return ("each " if each else "") + text
    return "—"  # the type says it all


def _cell(text: str) -> str:
    return text.replace("\n", " ") or "—"


def _table(header: list[str], rows: list[list[str]], widths: str) -> Iterator[str]:
    yield from (".. list-table::", "   :header-rows: 1", f"   :widths: {widths}", "")
    for row in [header, *rows]:
        yield f"   * - {_cell(row[0])}"
        yield from (f"     - {_cell(cell)}" for cell in row[1:])
    yield ""


def settings_rst() -> Iterator[str]:
    for name, cls in SECTIONS.items():
        title = f"``{name}.*`` (``[{TOML_SECTION[name]}]`` in config.toml)"
        yield from (title, "-" * len(title), "", " ".join((cls.__doc__ or "").split()), "")
        meanings = MEANINGS[name]
        names = [f.name for f in fields(cls)]
        if sorted(names) != sorted(meanings):
            raise ValueError(
                f"docs/_tools/settings_reference.py: MEANINGS[{name!r}] lacks {sorted(set(names) - set(meanings))} "
                f"and has {sorted(set(meanings) - set(names))}, which {cls.__name__} does not"
            )
        rows = [
            [
                f"``{name}.{f.name}``",
                _words(str(f.type)),
                _shown(_default(f)),
                _allowed(f),
                meanings[f.name],
            ]
            for f in fields(cls)
        ]
        yield from _table(["key", "type", "default", "allowed", "what it does"], rows, "22 14 12 22 30")


def game_keys_rst() -> Iterator[str]:
    keys = description.KNOWN_KEYS
    missing = [key for key in keys if key not in GAME_KEYS]
    if missing:
        raise ValueError(f"docs/_tools/settings_reference.py: GAME_KEYS has no meaning and example for {missing}")
    examples = tomllib.loads("\n".join(GAME_KEYS[key][1] for key in keys))
    description.parse_description(examples, "the examples on the configuration page")
    defaults = {f.name: f for f in fields(description.GameDescription)}
    rows = []
    for key in keys:
        f = defaults[key]
        default = "required" if f.default is MISSING and f.default_factory is MISSING else _shown(_default(f))
        rows.append([f"``{key}``", default, GAME_KEYS[key][0], f"``{GAME_KEYS[key][1]}``"])
    yield from _table(["key", "default", "what it says", "example"], rows, "16 12 40 32")


def config_groups_rst() -> Iterator[str]:
    conf = schema.config_dir()
    rows = []
    for group in sorted(p for p in conf.iterdir() if p.is_dir()):
        options = ", ".join(f"``{p.stem}``" for p in sorted(group.glob("*.yaml")))
        how = f"``+{group.name}=NAME``" if group.name == "game" else f"``{group.name}=NAME``"
        rows.append([f"``{group.name}``", options, how])
    yield from _table(["group", "options", "choose with"], rows, "15 55 30")


class SettingsReference(GeneratedRst):
    def lines(self) -> Iterator[str]:
        return settings_rst()


class GameKeysReference(GeneratedRst):
    def lines(self) -> Iterator[str]:
        return game_keys_rst()


class ConfigGroups(GeneratedRst):
    def lines(self) -> Iterator[str]:
        return config_groups_rst()


def setup(app: Sphinx) -> dict[str, object]:
    app.add_directive("settings-reference", SettingsReference)
    app.add_directive("game-keys-reference", GameKeysReference)
    app.add_directive("config-groups", ConfigGroups)
    return {"parallel_read_safe": True}


if __name__ == "__main__":
    print("\n".join([*config_groups_rst(), *settings_rst(), *game_keys_rst()]))
