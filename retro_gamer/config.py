"""Typed configs: the Hydra schema users override, and ``config.toml``, the file a run lives by.

Hydra composes ``conf/`` against :class:`AppConfig`, so a typo such as ``trainer.lrr=1`` is
rejected before anything runs. The result is resolved into a :class:`RunConfig` and written to
``run_dir/config.toml``; from then on that file alone rebuilds the network and resumes training.
"""

from __future__ import annotations

import difflib
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


@dataclass
class ModelConfig:
    """The Q-network. ``mlp`` flattens the one-hot board; ``cnn`` convolves it first."""

    kind: ModelKind = ModelKind.mlp
    hidden: list[int] = field(default_factory=lambda: [128, 128])
    channels: list[int] = field(default_factory=lambda: [32, 64])  # cnn only
    dueling: bool = True


@dataclass
class TrainerConfig:
    """DQN hyperparameters. Steps are environment steps summed over all parallel games."""

    algorithm: str = "dqn"  # the only one so far; the field keeps room for others
    episodes: int = 20_000
    time_limit: float | None = None  # minutes of wall clock, then stop cleanly
    seed: int = 0
    device: str = "auto"  # auto = cuda, then mps, then cpu
    lr: float = 5e-4
    gamma: float = 0.99
    n_step: int = 3
    batch_size: int = 64
    buffer_size: int = 100_000
    num_envs: int = 8
    warmup_steps: int = 5_000
    epsilon_start: float = 1.0
    epsilon_end: float = 0.02
    epsilon_decay_steps: int = 150_000
    train_every: int = 10  # env steps per gradient step
    target_update_every: int = 500  # gradient steps between target-network copies
    grad_clip: float = 10.0
    prioritized: bool = False
    priority_alpha: float = 0.6
    priority_beta: float = 0.4
    exploration_turns: int = 500  # random turns to discover the character set when not given
    checkpoint_every: int = 100  # episodes
    keep_checkpoints: int | None = None  # None keeps all
    save_replay: bool = True  # keep the replay memory in resume.pt, so a resumed run learns exactly as before
    threads: int = 0  # torch CPU threads; 0 = torch's default (all cores)


@dataclass
class TrackingConfig:
    """MLflow tracking (see :mod:`retro_gamer.tracking`; where the store is: :mod:`retro_gamer.store`)."""

    enabled: bool = True
    uri: str | None = None  # None: MLFLOW_TRACKING_URI, else SQLite under the project's mlruns/
    experiment: str | None = None  # None: the game's name
    role: str = "single"  # player, enemy or single: tagged, so adversarial rounds filter apart
    tags: dict[str, str] = field(default_factory=dict)  # more tags, e.g. round and opponent from the pipeline
    replay_every: int | None = None  # a replay at every Nth checkpoint; 0 never; None: as often as 1 % of the time allows
    log_checkpoints: bool = True  # copy each policy checkpoint to the run's artifacts
    register_as: str | None = None  # register the final policy model under this name, alias "latest"


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
    packaged = Path(__file__).parent / "conf"
    return packaged if packaged.is_dir() else Path(__file__).resolve().parent.parent / "conf"


def available_games() -> list[str]:
    return sorted(p.stem for p in (config_dir() / "game").glob("*.yaml"))


# --- config.toml ---------------------------------------------------------------------------
# Section layout of the published retro-gamer package: where each game key lives.
_GAME_SECTIONS = {
    "game": ("name", "factory", "opponent"),
    "metadata": ("actions", "reward", "board_size", "character_set", "observation_function", "max_turns"),
    "preprocessing": ("spatial", "board", "observe_state", "crop"),
}
_SECTIONS = {"model": ModelConfig, "training": TrainerConfig, "tracking": TrackingConfig}


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
    problems: list[str] = []
    for section in doc:
        if section not in _GAME_SECTIONS and section not in _SECTIONS:
            valid = list(_GAME_SECTIONS) + list(_SECTIONS)
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
    if problems:
        raise ConfigError(source, problems)
    return RunConfig(game=game, model=typed["model"], trainer=typed["training"], tracking=typed["tracking"])


def write_config(cfg: RunConfig, run_dir: Path) -> Path:
    path = Path(run_dir) / CONFIG_FILE
    atomic_write_bytes(path, tomli_w.dumps(to_toml_dict(cfg)).encode())
    return path


def read_config(run_dir: Path) -> RunConfig:
    """Read ``run_dir/config.toml``; a missing or malformed file is a :class:`ConfigError` saying where."""
    path = Path(run_dir) / CONFIG_FILE
    if not Path(run_dir).is_dir():
        raise ConfigError(str(run_dir), ["run directory does not exist. Create one with `retro-gamer create` or train with `python -m retro_gamer.train +game=NAME run_dir=DIR`."])
    if not path.is_file():
        raise ConfigError(str(path), ["not found: this folder is not a training run (no config.toml)."])
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(str(path), [f"is not valid TOML: {err}. Fix that line or recreate the run."]) from None
    return from_toml_dict(doc, str(path))
