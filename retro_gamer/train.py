"""``python -m retro_gamer.train +game=snake [overrides]``: compose the config with Hydra, then train.

The run directory is Hydra's output directory (``run_dir``, or one sub-folder per job in a
multirun), so ``.hydra/`` beside ``config.toml`` records exactly how the run was composed.
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from retro_gamer.config import AppConfig, RunConfig, available_games, config_dir, register_configs
from retro_gamer.errors import ConfigError, RetroGamerError
from retro_gamer.games import parse_description

register_configs()


def run_config_from_hydra(cfg: DictConfig, game_choice: str | None) -> RunConfig:
    """Turn a composed :class:`AppConfig` into a :class:`RunConfig`, validating the game node."""
    if cfg.game is None:
        games = ", ".join(available_games())
        raise ConfigError("command line", [f"no game chosen. Add +game=NAME, one of: {games}. Example: python -m retro_gamer.train +game=snake"])
    source = f"conf/game/{game_choice}.yaml" if game_choice else "game config"
    game = parse_description(OmegaConf.to_container(cfg.game, resolve=True), source)
    app: AppConfig = OmegaConf.to_object(cfg)
    return RunConfig(game=game, model=app.model, trainer=app.trainer, tracking=app.tracking)


@hydra.main(version_base="1.3", config_path=str(config_dir()), config_name="config")
def main(cfg: DictConfig) -> float | None:
    from retro_gamer.run import prepare_run, train_run

    hydra_cfg = HydraConfig.get()
    run_dir = Path(hydra_cfg.runtime.output_dir)
    try:
        run_cfg = run_config_from_hydra(cfg, hydra_cfg.runtime.choices.get("game"))
        run_cfg = prepare_run(run_cfg, run_dir, source=f"conf/game/{hydra_cfg.runtime.choices.get('game')}.yaml")
        summary = train_run(run_dir, run_cfg)
    except RetroGamerError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(err.exit_code)
    if summary["stopped_by"] == "interrupted":
        again = shlex.join(["python", "-m", "retro_gamer.train", *sys.argv[1:]])
        print(f"Stopped at episode {summary['episodes']}; checkpoint saved. Resume with: {again}")
    print(f"Trained {summary['episodes']} episodes ({summary['env_steps']:,} env steps, "
          f"{summary['env_steps_per_s']:,.0f}/s). Results in {run_dir}")
    return summary["mean_return"]


_FLAGS = ("-m", "--multirun")


def cli() -> None:
    """Entry point. Hydra's parser rejects ``-m`` after an override (``+game=snake -m trainer.lr=1,2``);
    users write it there, so move the flag to the front first."""
    args = sys.argv[1:]
    sys.argv[1:] = [a for a in args if a in _FLAGS] + [a for a in args if a not in _FLAGS]
    main()


if __name__ == "__main__":
    cli()
