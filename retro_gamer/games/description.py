"""What a game is, for training: one schema read from Hydra YAML or ``[tool.retro-gamer]``.

Validation collects every problem before raising, so a user fixes a file in one pass
instead of one error per run.
"""

from __future__ import annotations

import difflib
import functools
import numbers
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from retro_gamer.errors import ConfigError


@dataclass
class Crop:
    """An egocentric window: the board seen from ``agent``, ``radius`` cells each way."""

    agent: str
    radius: int


@dataclass
class GameDescription:
    """Everything the trainer needs to know about a game besides its code."""

    factory: str
    actions: list[str]
    reward: str
    name: str = ""
    character_set: list[str] | None = None
    spatial: bool = False
    board: bool = True
    observe_state: list[str] = field(default_factory=list)
    observation_function: str | None = None
    max_turns: int = 2000
    crop: Crop | None = None
    opponent: str | None = None  # a policy source (run dir or model URI) passed to the factory as opponent=
    board_size: tuple[int, int] | None = None  # discovered from the game, never declared
    # the game module's RULES (a version text) when the run was created, discovered, never declared: a game whose
    # rules change meaning refuses a policy trained under other rules
    rules: str | None = None

    @property
    def n_actions(self) -> int:
        """Actions the network chooses from: every key plus the no-op."""
        return len(self.actions) + 1

    def resolved(self) -> tuple[tuple[int, int], list[str]]:
        """The board size and character set: a run resolves them from the game when it is created
        (:func:`retro_gamer.run.directory.prepare_run`); before that no network or encoder can be built."""
        if self.board_size is None or self.character_set is None:
            raise ValueError(
                "board_size and character_set must be resolved first (see retro_gamer.run.directory.prepare_run)"
            )
        return self.board_size, self.character_set


DISCOVERED_KEYS = ("board_size", "rules")
KNOWN_KEYS = [f.name for f in fields(GameDescription) if f.name not in DISCOVERED_KEYS]
_CROP_KEYS = ["agent", "radius"]


def _unknown(key: str, known: list[str], where: str) -> str:
    close = difflib.get_close_matches(key, known, n=1, cutoff=0.5)
    hint = f" Did you mean '{close[0]}'?" if close else ""
    return f"unknown key '{where}{key}'.{hint} Valid keys: {', '.join(known)}."


@functools.cache
def key_names() -> frozenset[str]:
    """The names retro's keyboard input gives special keys (``KEY_LEFT``, ``KEY_ENTER``, …), from blessed."""
    from blessed.keyboard import get_keyboard_codes

    return frozenset(get_keyboard_codes().values())


def _nearest_key(action: str) -> str:
    names = sorted(key_names())
    guess = action.upper() if action.upper().startswith("KEY_") else "KEY_" + action.upper()
    close = [guess] if guess in names else difflib.get_close_matches(guess, names, n=1, cutoff=0.6)
    return (
        f" Did you mean '{close[0]}'?"
        if close
        else ' Use one character ("q") or a name such as KEY_UP, KEY_ENTER, KEY_ESCAPE.'
    )


def _is_str_list(value: Any) -> bool:
    return isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value)


def parse_description(
    data: Mapping[str, Any], source: str, defaults: Mapping[str, Any] | None = None
) -> GameDescription:
    """Check a raw mapping against the schema and build a description, reporting all problems at once.

    ``defaults`` fills keys the source may omit (a pyproject game's factory is its own module).
    """
    merged = {**(defaults or {}), **dict(data)}
    problems: list[str] = []
    for key in merged:
        if key not in KNOWN_KEYS and key not in DISCOVERED_KEYS:
            problems.append(_unknown(key, KNOWN_KEYS, ""))
    for key in ("factory", "actions", "reward"):
        if merged.get(key) in (None, "", []):
            example = {"factory": '"my_game:create_game"', "actions": '["KEY_LEFT", "KEY_RIGHT"]', "reward": '"score"'}[
                key
            ]
            problems.append(f"missing required key '{key}', for example {key} = {example}.")

    actions = merged.get("actions")
    if actions not in (None, []):
        if not isinstance(actions, (list, tuple)):
            problems.append(f"'actions' must be a list of key names, got {actions!r}.")
        else:
            for i, action in enumerate(actions):
                if not isinstance(action, str) or not action:
                    problems.append(
                        f'actions[{i}] = {action!r} is not a key name; use strings such as "KEY_UP" or "q".'
                    )
                elif len(action) > 1 and action not in key_names():
                    problems.append(
                        f"actions[{i}] = {action!r} is neither a single character nor a key name, so no "
                        f"keystroke would ever match it.{_nearest_key(action)}"
                    )
            dupes = sorted({a for a in actions if isinstance(a, str) and list(actions).count(a) > 1})
            if dupes:
                problems.append(f"'actions' lists {dupes} more than once; each key may appear once.")
    for key in ("factory", "reward", "name", "observation_function", "opponent"):
        value = merged.get(key)
        if value is not None and not isinstance(value, str):
            problems.append(f"'{key}' must be a string, got {value!r}.")
        elif isinstance(value, str) and len(value) > 1000:
            problems.append(f"'{key}' is {len(value):,} characters long ({value[:30]!r}…); 1,000 at most.")
    obs_fn = merged.get("observation_function")
    if isinstance(obs_fn, str) and ":" not in obs_fn:
        problems.append(f"'observation_function' must look like \"module:function\", got {obs_fn!r}.")
    charset = merged.get("character_set")
    if charset is not None:
        if not _is_str_list(charset) or any(len(c) != 1 for c in charset):
            problems.append(
                f"'character_set' must be a list of single characters, got {charset!r}; "
                "remove it to discover the characters automatically."
            )
        elif len(set(charset)) != len(charset) or " " in charset:
            problems.append("'character_set' must not repeat characters or include the blank ' '.")
    for key in ("spatial", "board"):
        if key in merged and not isinstance(merged[key], bool):
            problems.append(f"'{key}' must be true or false, got {merged[key]!r}.")
    if "observe_state" in merged and not _is_str_list(merged["observe_state"] or []):
        problems.append(f"'observe_state' must be a list of game.state keys, got {merged['observe_state']!r}.")
    max_turns = merged.get("max_turns", 2000)
    if isinstance(max_turns, bool) or not isinstance(max_turns, int) or not 0 < max_turns <= 10_000_000:
        problems.append(f"'max_turns' must be a whole number from 1 to 10,000,000, got {max_turns!r}.")

    crop = None
    raw_crop = merged.get("crop")
    if raw_crop is not None:
        if not isinstance(raw_crop, Mapping):
            problems.append(f"'crop' must be a table with 'agent' and 'radius', got {raw_crop!r}.")
        else:
            problems += [_unknown(k, _CROP_KEYS, "crop.") for k in raw_crop if k not in _CROP_KEYS]
            agent, radius = raw_crop.get("agent"), raw_crop.get("radius")
            if not isinstance(agent, str) or not agent:
                problems.append(f"'crop.agent' must name an agent (its .name), got {agent!r}.")
            if isinstance(radius, bool) or not isinstance(radius, int) or not 1 <= radius <= 1_000:
                problems.append(f"'crop.radius' must be a whole number from 1 to 1,000, got {radius!r}.")
            if isinstance(agent, str) and isinstance(radius, int):  # any problem with them is reported above
                crop = Crop(agent=agent, radius=radius)
    if merged.get("board") is False and not merged.get("observe_state") and not obs_fn:
        problems.append("'board' is false and 'observe_state' is empty: the agent would observe nothing.")
    if problems:
        raise ConfigError(source, problems)

    board_size = merged.get("board_size")
    return GameDescription(
        factory=merged["factory"],
        actions=list(merged["actions"]),
        reward=merged["reward"],
        name=merged.get("name") or "",
        character_set=list(charset) if charset is not None else None,
        spatial=merged.get("spatial", False),
        board=merged.get("board", True),
        observe_state=list(merged.get("observe_state") or []),
        observation_function=obs_fn,
        max_turns=max_turns,
        crop=crop,
        opponent=merged.get("opponent") or None,
        board_size=tuple(board_size) if board_size else None,
        rules=str(merged["rules"]) if merged.get("rules") is not None else None,
    )


def check_against_game(desc: GameDescription, game: Any, source: str) -> None:
    """Check the description against a freshly created game: the keys it names must exist."""
    from retro.game import Game

    if not isinstance(game, Game):
        raise ConfigError(
            source,
            [
                f"factory '{desc.factory}' returned {type(game).__name__}, not a retro.game.Game; it must `return Game(...)`."
            ],
        )
    problems: list[str] = []
    state_keys = sorted(game.state)

    def missing_state(key: str, what: str) -> str:
        close = difflib.get_close_matches(key, state_keys, n=1, cutoff=0.5)
        hint = f" Did you mean '{close[0]}'?" if close else ""
        return (
            f"{what} '{key}' is not a key of game.state.{hint} game.state has: {', '.join(state_keys) or '(nothing)'}."
        )

    if desc.reward not in game.state:
        problems.append(missing_state(desc.reward, "reward"))
    elif not isinstance(game.state[desc.reward], numbers.Real):
        problems.append(f"reward '{desc.reward}' must be a number in game.state, got {game.state[desc.reward]!r}.")
    for key in desc.observe_state:
        if key not in game.state:
            problems.append(missing_state(key, "observe_state entry"))
        elif not isinstance(game.state[key], numbers.Real):
            problems.append(f"observe_state entry '{key}' must be a number in game.state, got {game.state[key]!r}.")
    if desc.crop is not None and desc.crop.agent not in game.agents_by_name:
        names = sorted(game.agents_by_name)
        problems.append(
            f"crop.agent '{desc.crop.agent}' is not the name of any agent; named agents: {', '.join(names) or '(none)'}."
        )
    if problems:
        raise ConfigError(source, problems)
