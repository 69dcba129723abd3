"""Typed configs: the Hydra schema users override, and ``config.toml``, the file a run lives by.

Hydra composes ``conf/`` against :class:`AppConfig`, so a typo such as ``trainer.lrr=1`` is
rejected before anything runs. The result is resolved into a :class:`RunConfig` and written to
``run_dir/config.toml``; from then on that file alone rebuilds the network and resumes training.
"""

from __future__ import annotations

import difflib
import math
import re
from dataclasses import asdict, dataclass, field, fields
from enum import Enum
from pathlib import Path
from typing import Any

import tomli_w
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from retro_gamer.compat import tomllib
from retro_gamer.errors import ConfigError
from retro_gamer.files import atomic_write_bytes
from retro_gamer.games import GameDescription, parse_description

CONFIG_FILE = "config.toml"


class ModelKind(str, Enum):
    mlp = "mlp"
    cnn = "cnn"


# --- the allowed range of each setting ----------------------------------------------------------
# Kept beside the fields they govern (as field metadata), and checked by :func:`setting_problems`
# whenever a config is composed, read from config.toml or about to be written, so a nonsensical
# value is refused before anything on disk changes.


def _number(low: float, high: float, *, whole: bool = True, above: bool = False, each: bool = False) -> dict[str, Any]:
    """Metadata: a number in [low, high] (or (low, high] with ``above``); ``each`` item of a list."""
    kind = "whole number" if whole else "number"
    span = f"above {low:,} and at most {high:,}" if above else f"from {low:,} to {high:,}"
    return {"allowed": (f"a {kind} {span}", lambda v: _in_range(v, low, high, whole, above), each)}


def _in_range(value: Any, low: float, high: float, whole: bool, above: bool) -> bool:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (whole and not float(value).is_integer()):
        return False
    return math.isfinite(value) and (value > low if above else value >= low) and value <= high


def _device_ok(value: Any) -> bool:
    return isinstance(value, str) and re.fullmatch(r"auto|(cpu|cuda|mps|xpu|hip|meta)(:\d{1,2})?", value) is not None


def _name_ok(value: Any) -> bool:
    return value is None or (isinstance(value, str) and 0 < len(value) <= 200 and value.strip() == value)


_DEVICE = {"allowed": ("auto, cpu, cuda, cuda:N, mps or another torch device type (xpu, hip, meta)", _device_ok, False)}
_NAME = {"allowed": ("a name of 1 to 200 characters without leading or trailing spaces", _name_ok, False)}
_UNLIMITED = 10**9


@dataclass
class ModelConfig:
    """The Q-network. ``mlp`` flattens the one-hot board; ``cnn`` convolves it first."""

    kind: ModelKind = ModelKind.mlp
    hidden: list[int] = field(default_factory=lambda: [128, 128], metadata=_number(1, 65_536, each=True))
    channels: list[int] = field(default_factory=lambda: [32, 64], metadata=_number(1, 4_096, each=True))  # cnn only
    # cnn only: layer i strides by strides[i], the last value repeated for deeper layers; [1, 2] (the first layer
    # at full resolution, later ones halving it) is also what a run saved before the key existed used
    strides: list[int] = field(default_factory=lambda: [1, 2], metadata=_number(1, 8, each=True))
    dueling: bool = True


@dataclass
class TrainerConfig:
    """DQN hyperparameters. Steps are environment steps summed over all parallel games."""

    algorithm: str = "dqn"  # the only one so far; the field keeps room for others
    episodes: int = field(default=20_000, metadata=_number(1, _UNLIMITED))
    # stop when the run's env-step counter (over all its sessions) reaches exactly this: the reproducible budget
    total_env_steps: int | None = field(default=None, metadata=_number(1, 10**12))
    time_limit: float | None = field(
        default=None, metadata=_number(0, 10**6, whole=False, above=True)
    )  # minutes of wall clock, then stop cleanly
    seed: int = field(default=0, metadata=_number(0, 2**32 - 1))
    device: str = field(default="auto", metadata=_DEVICE)  # auto: see retro_gamer.runtime.placement.training_device
    lr: float = field(default=5e-4, metadata=_number(0, 1, whole=False, above=True))
    gamma: float = field(default=0.99, metadata=_number(0, 1, whole=False))
    n_step: int = field(default=3, metadata=_number(1, 1_000))
    # Few large gradient steps (256 transitions every 48 env steps) rather than many small ones: on a CPU a small
    # network's gradient step costs about the same whatever the batch, so this learns more per second.
    batch_size: int = field(default=256, metadata=_number(1, 65_536))
    buffer_size: int = field(default=100_000, metadata=_number(1, 100_000_000))
    num_envs: int = field(default=8, metadata=_number(1, 1_024))
    warmup_steps: int = field(default=5_000, metadata=_number(0, _UNLIMITED))
    epsilon_start: float = field(default=1.0, metadata=_number(0, 1, whole=False))
    epsilon_end: float = field(default=0.02, metadata=_number(0, 1, whole=False))
    epsilon_decay_steps: int = field(default=150_000, metadata=_number(1, _UNLIMITED))
    # epsilon reaches epsilon_end by this fraction of the run's budget in env steps (total_env_steps, else the
    # steps time_limit is measured to give, inside the run), when that comes before epsilon_decay_steps; no effect
    # without a budget
    exploration_fraction: float | None = field(default=None, metadata=_number(0, 1, whole=False, above=True))
    train_every: int = field(default=48, metadata=_number(1, 1_000_000))  # env steps per gradient step
    target_update_every: int = field(
        default=125, metadata=_number(1, _UNLIMITED)
    )  # gradient steps between target-network copies (6,000 env steps)
    grad_clip: float = field(default=10.0, metadata=_number(0, 1e6, whole=False, above=True))
    prioritized: bool = False
    priority_alpha: float = field(default=0.6, metadata=_number(0, 1, whole=False))
    priority_beta: float = field(default=0.4, metadata=_number(0, 1, whole=False))
    exploration_turns: int = field(
        default=500, metadata=_number(1, 10_000_000)
    )  # random turns to discover the character set when not given
    checkpoint_every: int = field(default=100, metadata=_number(1, _UNLIMITED))  # episodes
    keep_checkpoints: int | None = field(default=None, metadata=_number(1, _UNLIMITED))  # None keeps all
    save_replay: bool = True  # keep the replay memory in resume.pt, so a resumed run learns exactly as before
    threads: int = field(default=0, metadata=_number(0, 1_024))  # torch CPU threads; 0 = torch's default (all cores)
    # play the games in a second process while this one learns (the same games, in two groups that take turns);
    # learn in a second process while this one plays and chooses actions. None: chosen when the run is created
    # and written to config.toml (retro_gamer.runtime.placement.choose_placement)
    game_process: bool | None = None
    learner_process: bool | None = None


@dataclass
class TrackingConfig:
    """MLflow tracking (see :mod:`retro_gamer.tracking.mlflow_run`; where the store is: :mod:`retro_gamer.tracking.store`)."""

    enabled: bool = True
    uri: str | None = None  # None: MLFLOW_TRACKING_URI, else SQLite under the project's mlruns/
    experiment: str | None = field(default=None, metadata=_NAME)  # None: the game's name
    role: str = field(
        default="single", metadata=_NAME
    )  # player, enemy or single: tagged, so adversarial rounds filter apart
    tags: dict[str, str] = field(default_factory=dict)  # more tags, e.g. round and opponent from the pipeline
    replay_every: int | None = field(
        default=None, metadata=_number(0, _UNLIMITED)
    )  # a replay at every Nth checkpoint; 0 never; None: as often as 1 % of the time allows
    log_checkpoints: bool = (
        False  # copy each policy checkpoint to the run's artifacts (the final policy is the logged model)
    )
    register_as: str | None = field(
        default=None, metadata=_NAME
    )  # register the final policy model under this name, alias "newest"


@dataclass
class AppConfig:
    """What Hydra composes. ``game`` stays untyped here: :func:`parse_description` validates it
    with messages that name the file and suggest the nearest key."""

    game: Any = None
    model: ModelConfig = field(default_factory=ModelConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    run_dir: str = "runs/default"


@dataclass
class RunConfig:
    """A resolved run: what ``config.toml`` holds."""

    game: GameDescription
    model: ModelConfig = field(default_factory=ModelConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    # why each automatic choice was made when the run was created (view, network, exploration, placement);
    # the choices themselves are the settings above, kept as they are on every start
    chosen: dict[str, str] = field(default_factory=dict)


_TOML_NAMES = {"model": "model", "trainer": "training", "tracking": "tracking"}


def setting_problems(cfg: RunConfig, in_toml: bool = False) -> list[str]:
    """Every setting outside its allowed range, as "KEY = VALUE: must be …" lines.

    Keys are named the way the reader wrote them: ``trainer.lr`` for overrides, ``[training] lr``
    for ``config.toml`` (``in_toml``).
    """
    problems = []
    for attr, toml_name in _TOML_NAMES.items():
        section = getattr(cfg, attr)
        for f in fields(section):
            rule = f.metadata.get("allowed")
            value = getattr(section, f.name)
            if rule is None or (value is None and f.default is None):
                continue
            allowed, ok, each = rule
            items = value if each and isinstance(value, list) else [value]
            if not all(ok(v) for v in items) or (each and len(items) > 64):
                shown = repr(value) if len(repr(value)) <= 60 else repr(value)[:57] + "..."
                key = f"[{toml_name}] {f.name}" if in_toml else f"{attr}.{f.name}"
                problems.append(f"{key} = {shown}: {'each item ' if each else ''}must be {allowed}.")
    if not problems and not cfg.model.strides:
        key = "[model] strides" if in_toml else "model.strides"
        problems.append(
            f"{key} = []: give at least one stride (layer i strides by strides[i], the last one repeated "
            "for deeper layers), e.g. [1, 2]."
        )
    t = cfg.trainer
    if not problems and t.batch_size > t.buffer_size:
        key = "[training] " if in_toml else "trainer."
        problems.append(
            f"{key}batch_size = {t.batch_size} is larger than {key}buffer_size = {t.buffer_size}: "
            "a batch is drawn from the replay memory, so the memory must hold at least one batch."
        )
    return problems


def check_settings(cfg: RunConfig, source: str, in_toml: bool = False) -> RunConfig:
    """Refuse a config with a nonsensical setting (see :func:`setting_problems`); returns ``cfg``."""
    problems = setting_problems(cfg, in_toml)
    if problems:
        raise ConfigError(source, problems)
    return cfg


def register_configs() -> None:
    """Register the schema with Hydra's ConfigStore (``conf/config.yaml`` lists ``app_schema``) and the
    ``job_dir`` resolver that names a multirun's job folders."""
    from hydra.core.config_store import ConfigStore

    ConfigStore.instance().store(name="app_schema", node=AppConfig)
    if not OmegaConf.has_resolver("job_dir"):
        OmegaConf.register_new_resolver("job_dir", job_dir)


def job_dir(override_dirname: str, job_number: int) -> str:
    """A multirun job's folder: its overrides (``trainer.lr=0.001``) when that makes a legal name,
    else ``job<N>_<hash>``, since folder names stop at 255 bytes and a long command line exceeds that."""
    import hashlib

    if len(override_dirname.encode()) <= 200:
        return override_dirname
    return f"job{job_number}_{hashlib.sha1(override_dirname.encode()).hexdigest()[:10]}"


def config_dir() -> Path:
    """The Hydra config tree: inside the package when installed from a wheel, else the repo's ``conf/``."""
    package = Path(__file__).resolve().parents[1]
    packaged = package / "conf"
    return packaged if packaged.is_dir() else package.parent / "conf"


def available_games() -> list[str]:
    return sorted(p.stem for p in (config_dir() / "game").glob("*.yaml"))


# --- config.toml ---------------------------------------------------------------------------
# Section layout of the published retro-gamer package: where each game key lives.
_GAME_SECTIONS = {
    "game": ("name", "factory", "opponent"),
    "metadata": ("actions", "reward", "board_size", "character_set", "observation_function", "max_turns", "rules"),
    "preprocessing": ("spatial", "board", "observe_state", "crop"),
}
_SECTIONS = {"model": ModelConfig, "training": TrainerConfig, "tracking": TrackingConfig}
CHOSEN_SECTION = "chosen"  # the reasons for the automatic choices: text for people, never read back as settings
# What a run cannot do without: config.toml always holds these, so a file that lacks one was cut off or
# damaged, and taking defaults would silently train something else. [tracking] only reports, so it may go.
_NEWER = {"save_replay"}  # newer than the first config.toml files, which take their defaults
_REQUIRED = {
    "game": ["factory"],
    "metadata": ["actions", "reward", "board_size", "character_set", "max_turns"],
    "preprocessing": ["spatial", "board", "observe_state"],
    "model": [f.name for f in fields(ModelConfig)],
    "training": [f.name for f in fields(TrainerConfig) if f.default is not None and f.name not in _NEWER],
}


def missing_parts(doc: dict[str, Any]) -> list[str]:
    """The sections and keys of :data:`_REQUIRED` that ``doc`` lacks, one line per section."""
    lines = []
    for section, keys in _REQUIRED.items():
        if not isinstance(doc.get(section), dict):
            lines.append(f"section [{section}] is missing.")
            continue
        absent = [k for k in keys if k not in doc[section]]
        if absent:
            lines.append(f"[{section}] lacks {', '.join(absent)}.")
    return lines


def _drop_none(data: dict[str, Any]) -> dict[str, Any]:
    """TOML has no null: absent means default."""
    return {k: (_drop_none(v) if isinstance(v, dict) else v) for k, v in data.items() if v is not None}


def to_toml_dict(cfg: RunConfig) -> dict[str, Any]:
    """The ``config.toml`` document for ``cfg`` (also the config snapshot inside checkpoints)."""
    game = asdict(cfg.game)
    if game["board_size"] is not None:
        game["board_size"] = list(game["board_size"])
    doc: dict[str, Any] = {section: {k: game[k] for k in keys} for section, keys in _GAME_SECTIONS.items()}
    for section, attr in (("model", cfg.model), ("training", cfg.trainer), ("tracking", cfg.tracking)):
        doc[section] = OmegaConf.to_container(OmegaConf.structured(attr), enum_to_str=True)
    if cfg.chosen:
        doc[CHOSEN_SECTION] = dict(cfg.chosen)
    return _drop_none(doc)


def _typed_section(schema: type, data: dict[str, Any], source: str, section: str, problems: list[str]) -> Any:
    known = [f.name for f in fields(schema)]
    unknown = [k for k in data if k not in known]
    for key in unknown:
        close = difflib.get_close_matches(key, known, n=1, cutoff=0.5)
        hint = f" Did you mean '{close[0]}'?" if close else ""
        problems.append(f"[{section}] has unknown key '{key}'.{hint}")
    merged = OmegaConf.structured(schema)
    for key, value in data.items():
        if key in unknown:
            continue
        try:  # one key at a time, so every bad value is reported, not just the first
            merged = OmegaConf.merge(merged, {key: value})
        except OmegaConfBaseException as err:
            problems.append(f"[{section}] {key} = {value!r}: {str(err).splitlines()[0]}")
    return OmegaConf.to_object(merged)


def from_toml_dict(doc: dict[str, Any], source: str) -> RunConfig:
    """Validate a ``config.toml`` document; every problem is reported at once."""
    missing = missing_parts(doc)
    if missing:
        raise ConfigError(
            source,
            [
                "\n".join(
                    [
                        "is incomplete, so training from it would silently use defaults. Missing:",
                        *(f"  {line}" for line in missing),
                        "It was probably cut off or edited. Restore it from a backup, or write it again with "
                        "`retro-gamer create --game GAME --output RUN_DIR --force`: checkpoints are kept, and a setting "
                        "they cannot follow is refused.",
                    ]
                )
            ],
        )
    problems: list[str] = []
    for section in doc:
        if section not in _GAME_SECTIONS and section not in _SECTIONS and section != CHOSEN_SECTION:
            valid = list(_GAME_SECTIONS) + list(_SECTIONS) + [CHOSEN_SECTION]
            close = difflib.get_close_matches(section, valid, n=1)
            problems.append(f"unknown section [{section}].{f' Did you mean [{close[0]}]?' if close else ''}")
    game_data: dict[str, Any] = {}
    for section, keys in _GAME_SECTIONS.items():
        for key, value in doc.get(section, {}).items():
            if key not in keys:
                home = next((s for s, ks in _GAME_SECTIONS.items() if key in ks), None)
                where = f" It belongs in [{home}]." if home else ""
                problems.append(f"[{section}] has unknown key '{key}'.{where}")
            else:
                game_data[key] = value
    typed = {s: _typed_section(schema, doc.get(s, {}), source, s, problems) for s, schema in _SECTIONS.items()}
    try:
        game = parse_description(game_data, source)
    except ConfigError as err:
        problems += err.problems
    chosen = doc.get(CHOSEN_SECTION, {})
    if not isinstance(chosen, dict) or not all(isinstance(v, str) for v in chosen.values()):
        problems.append(f"[{CHOSEN_SECTION}] must hold text only (why each automatic choice was made).")
    if problems:
        raise ConfigError(source, problems)
    cfg = RunConfig(
        game=game, model=typed["model"], trainer=typed["training"], tracking=typed["tracking"], chosen=dict(chosen)
    )
    return check_settings(cfg, source, in_toml=True)


def write_config(cfg: RunConfig, run_dir: Path) -> Path:
    """Write ``run_dir/config.toml`` atomically; a config with a nonsensical setting is never written."""
    path = Path(run_dir) / CONFIG_FILE
    check_settings(cfg, str(path), in_toml=True)
    atomic_write_bytes(path, tomli_w.dumps(to_toml_dict(cfg)).encode())
    return path


def read_config(run_dir: Path) -> RunConfig:
    """Read ``run_dir/config.toml``; a missing or malformed file is a :class:`ConfigError` saying where."""
    path = Path(run_dir) / CONFIG_FILE
    if not Path(run_dir).is_dir():
        raise ConfigError(
            str(run_dir),
            [
                "run directory does not exist. Create one with `retro-gamer create` or train with `python -m retro_gamer.train +game=NAME run_dir=DIR`."
            ],
        )
    if not path.is_file():
        raise ConfigError(str(path), ["not found: this folder is not a training run (no config.toml)."])
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as err:
        raise ConfigError(
            str(path),
            [
                f"is not UTF-8 text (byte {err.start}: {err.object[err.start : err.start + 1]!r}), "
                "so it is not a config.toml this tool wrote. Restore it from a backup or "
                "recreate it with `retro-gamer create ... --force`."
            ],
        ) from None
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(str(path), [f"is not valid TOML: {err}. Fix that line or recreate the run."]) from None
    return from_toml_dict(doc, str(path))
