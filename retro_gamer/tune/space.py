"""A search space: which game, what every trial shares, what is searched, and how a trial is judged.

A space is a YAML file in ``conf/tune/`` (or anywhere, by path). What is searched is written in Hydra's sweep
grammar, so a trial is an ordinary composed run (``python -m retro_gamer.train +game=GAME OVERRIDES…``) with one
value picked for each searched key::

    game: snake
    overrides: [trainer.total_env_steps=60000]
    params:
      trainer.lr: tag(log, interval(1e-4, 3e-3))   # a float, log-uniform
      trainer.n_step: range(1, 6)                  # 1, 2, 3, 4 or 5 (the end is excluded, as Python's range)
      model.hidden: choice([64], [128, 128])       # one of the listed values

``interval`` is continuous (``tag(int, interval(1, 8))`` for whole numbers), ``range`` is evenly stepped,
``choice`` lists values; ``tag(log, …)`` samples on a log scale. Every trial has the same step budget
(``trainer.total_env_steps``, required) so their objectives compare, and the same evaluation games.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from retro_gamer.config.schema import config_dir
from retro_gamer.errors import ConfigError

SPACE_KEYS = ("game", "overrides", "params", "objective", "pruner")
OBJECTIVE_KEYS = ("metric", "direction", "seeds", "episodes", "report_every", "eval_seed")
PRUNER_KEYS = ("kind", "startup_trials", "warmup_steps")


@dataclass(frozen=True)
class Objective:
    """How a trial is judged: the greedy evaluation of its trained policy (``episodes`` games from ``eval_seed``,
    the same games for every trial), ``metric`` averaged over one training per seed of ``seeds``. Every
    ``report_every`` env steps of a training, the latest checkpoint is evaluated the same way and reported, so the
    pruner can stop a trial that is behind the others at the same point."""

    metric: str = "mean_return"  # or final_state.KEY: the mean of a game.state value at the games' end
    direction: str = "maximize"
    seeds: tuple[int, ...] = (0,)
    episodes: int = 20
    report_every: int | None = None  # None: a quarter of the step budget
    eval_seed: int = 12345


@dataclass(frozen=True)
class Pruner:
    """Optuna's median pruner: a trial whose report is worse than the median of earlier trials' at the same step
    stops, once ``startup_trials`` trials have finished and past ``warmup_steps`` env steps; ``none`` never."""

    kind: str = "median"
    startup_trials: int = 5
    warmup_steps: int = 0


@dataclass(frozen=True)
class Param:
    """One searched key and its Optuna distribution. A choice among lists is a choice among their override text
    (``[64,64]``): Optuna's categories are plain values."""

    key: str
    distribution: Any  # optuna.distributions.BaseDistribution


@dataclass(frozen=True)
class SearchSpace:
    source: Path
    game: str
    overrides: tuple[str, ...]
    params: tuple[Param, ...]
    objective: Objective
    pruner: Pruner
    total_env_steps: int
    text: str = field(repr=False)  # the file as written: kept with the study

    @property
    def fingerprint(self) -> str:
        """Names the space's content and the worker's own overrides, so a worker whose trials would differ (another
        file, or other overrides on its command line) is refused by the study."""
        return hashlib.sha256("\n".join([self.text, *self.overrides]).encode()).hexdigest()[:16]

    @property
    def report_every(self) -> int:
        return self.objective.report_every or max(1, self.total_env_steps // 4)

    def sample(self, trial: Any) -> dict[str, str]:
        """The trial's value of each searched key, as override text (``trainer.lr`` → ``0.00042``)."""
        from optuna.distributions import CategoricalDistribution, IntDistribution

        chosen = {}
        for p in self.params:
            d = p.distribution
            if isinstance(d, CategoricalDistribution):
                value = trial.suggest_categorical(p.key, d.choices)
            elif isinstance(d, IntDistribution):
                value = trial.suggest_int(p.key, d.low, d.high, step=d.step, log=d.log)
            else:
                value = trial.suggest_float(p.key, d.low, d.high, step=d.step, log=d.log)
            chosen[p.key] = override_value(value)
        return chosen


def space_path(name: str) -> Path:
    """``snake`` → ``conf/tune/snake.yaml``; a path (it has a ``/`` or ends in ``.yaml``) as it is."""
    if "/" in name or name.endswith((".yaml", ".yml")):
        return Path(name)
    return config_dir() / "tune" / f"{name}.yaml"


def available_spaces() -> list[str]:
    return sorted(p.stem for p in (config_dir() / "tune").glob("*.yaml"))


def read_space(name: str, extra_overrides: list[str] | tuple[str, ...] = ()) -> SearchSpace:
    """Read and check a space; ``extra_overrides`` (the command line's) come after the file's own, and one that sets
    a searched key fixes it (the file itself may not both search and fix a key)."""
    path = space_path(name)
    if not path.is_file():
        shipped = ", ".join(available_spaces()) or "none"
        raise ConfigError(
            str(path), [f"no such search space. Name one in conf/tune/ ({shipped}) or give a path to a YAML file."]
        )
    text = path.read_text(encoding="utf-8")
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise ConfigError(str(path), [f"not valid YAML: {err}"]) from None
    if not isinstance(data, dict):
        raise ConfigError(str(path), ["a search space is a mapping with the keys " + ", ".join(SPACE_KEYS)])
    problems = _unknown(data, SPACE_KEYS, "")
    game = data.get("game")
    if not isinstance(game, str) or not game:
        problems.append("game: name the game every trial trains (e.g. game: snake)")
    own = _strings(data.get("overrides", []), "overrides", problems)
    overrides = [*own, *extra_overrides]
    params = []
    raw_params = data.get("params")
    if not isinstance(raw_params, dict) or not raw_params:
        problems.append("params: a mapping of each searched key to its sweep, e.g. trainer.lr: interval(1e-4, 1e-2)")
    else:
        fixed_here = {_key(o) for o in extra_overrides}  # the command line fixes a searched key: not searched
        for key, sweep in raw_params.items():
            try:
                params.append(parse_param(str(key), str(sweep)))
            except ValueError as err:
                problems.append(f"params.{key}: {err}")
        params = [p for p in params if p.key not in fixed_here]
        if raw_params and not params and not problems:
            problems.append("params: the command line's overrides fix every searched key; nothing is left to search")
    objective = _section(data, "objective", Objective, OBJECTIVE_KEYS, problems)
    pruner = _section(data, "pruner", Pruner, PRUNER_KEYS, problems)
    searched = {p.key for p in params}
    budget = _last_value(overrides, "trainer.total_env_steps")
    if any(_key(o) in searched for o in own):
        fixed = sorted(_key(o) for o in own if _key(o) in searched)
        problems.append(f"{', '.join(fixed)}: both searched (params) and fixed (overrides); keep one")
    if budget is None or not budget.isdigit() or int(budget) < 1:
        problems.append(
            "overrides: trainer.total_env_steps=N is required (a whole number): every trial trains the same "
            "number of env steps, so their objectives compare"
        )
    if objective is not None:
        problems += _objective_problems(objective)
    if pruner is not None and pruner.kind not in ("median", "none"):
        problems.append(f"pruner.kind: {pruner.kind!r} is not median or none")
    if problems:
        raise ConfigError(str(path), problems)
    assert objective is not None and pruner is not None and budget is not None and isinstance(game, str)
    return SearchSpace(path, game, tuple(overrides), tuple(params), objective, pruner, int(budget), text)


def parse_param(key: str, sweep: str) -> Param:
    """``trainer.lr`` and ``tag(log, interval(1e-4, 1e-2))`` → an Optuna distribution, through Hydra's own parser
    of sweep overrides (the grammar of ``python -m retro_gamer.train -m trainer.lr=…``)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.core.override_parser.types import ChoiceSweep, IntervalSweep, RangeSweep
    from hydra.errors import HydraException
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    try:
        (override,) = OverridesParser.create().parse_overrides([f"{key}={sweep}"])
    except HydraException as err:
        raise ValueError(f"{sweep!r} is not Hydra sweep syntax ({str(err).splitlines()[0]})") from None
    value = override.value()
    log = "log" in getattr(value, "tags", set())
    if isinstance(value, ChoiceSweep):
        options = [v if isinstance(v, (str, int, float, bool)) else override_value(v) for v in value.list]
        if len({override_value(v) for v in options}) != len(options):
            raise ValueError("choice(...) lists a value twice")
        return Param(key, CategoricalDistribution(options))
    if isinstance(value, RangeSweep):
        start, stop, step = value.start, value.stop, value.step
        if start is None or stop is None or step is None or step <= 0 or stop <= start:
            raise ValueError("range(start, stop[, step]) needs start < stop and a positive step")
        last = start + step * (math.ceil((stop - start) / step) - 1)  # stop is excluded, as in Python's range
        if all(float(v).is_integer() for v in (start, stop, step)):
            return Param(key, IntDistribution(int(start), int(last), step=int(step), log=log and step == 1))
        return Param(key, FloatDistribution(float(start), float(last), step=float(step)))
    if isinstance(value, IntervalSweep):
        low, high = value.start, value.end
        if low is None or high is None or not low < high or (log and low <= 0):
            raise ValueError("interval(low, high) needs low < high (and low > 0 with tag(log, …))")
        if "int" in value.tags:  # Hydra's interval is always of floats; tag(int, …) asks for whole numbers
            return Param(key, IntDistribution(math.ceil(low), math.floor(high), log=log))
        return Param(key, FloatDistribution(float(low), float(high), log=log))
    raise ValueError(f"{sweep!r} is one value, not a sweep: write choice(…), range(…) or interval(…)")


def override_value(value: Any) -> str:
    """A value as Hydra override text: ``[64, 64]`` → ``[64,64]``, ``0.1`` → ``0.1``, True → ``true``; text (a
    choice's option as written) stays as it is."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(override_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ",".join(f"{k}:{override_value(v)}" for k, v in value.items()) + "}"
    return repr(value)


def _section(data: dict[str, Any], name: str, kind: type, keys: tuple[str, ...], problems: list[str]) -> Any:
    raw = data.get(name) or {}
    if not isinstance(raw, dict):
        problems.append(f"{name}: a mapping with the keys {', '.join(keys)}")
        return None
    problems += _unknown(raw, keys, f"{name}.")
    known = {k: (tuple(v) if isinstance(v, list) else v) for k, v in raw.items() if k in keys}
    return kind(**known)


def _objective_problems(o: Objective) -> list[str]:
    problems = []
    if o.metric != "mean_return" and not o.metric.startswith("final_state."):
        problems.append(f"objective.metric: {o.metric!r} is not mean_return or final_state.KEY (a game.state value)")
    if o.direction not in ("maximize", "minimize"):
        problems.append(f"objective.direction: {o.direction!r} is not maximize or minimize")
    if not o.seeds or not all(isinstance(s, int) and s >= 0 for s in o.seeds) or len(set(o.seeds)) != len(o.seeds):
        problems.append("objective.seeds: a list of different whole numbers, e.g. [0, 1]")
    for name in ("episodes", "report_every", "eval_seed"):
        value = getattr(o, name)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
            problems.append(f"objective.{name}: a whole number of at least 1, not {value!r}")
    return problems


def _unknown(data: dict[str, Any], keys: tuple[str, ...], prefix: str) -> list[str]:
    import difflib

    problems = []
    for key in data:
        if key not in keys:
            near = difflib.get_close_matches(str(key), keys, 1)
            hint = f"; did you mean {prefix}{near[0]}?" if near else f" (known: {', '.join(keys)})"
            problems.append(f"{prefix}{key}: unknown key{hint}")
    return problems


def _strings(value: Any, name: str, problems: list[str]) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) and "=" in v for v in value):
        problems.append(f"{name}: a list of overrides such as trainer.total_env_steps=60000")
        return []
    return value


def _key(override: str) -> str:
    return override.split("=", 1)[0].lstrip("+~")


def _last_value(overrides: list[str], key: str) -> str | None:
    values = [o.split("=", 1)[1] for o in overrides if _key(o) == key and "=" in o]
    return values[-1].strip() if values else None
