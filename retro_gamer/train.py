"""``python -m retro_gamer.train +game=snake [overrides]``: compose the config with Hydra, then train.

The run directory is Hydra's output directory (``run_dir``, or one sub-folder per job in a
multirun), so ``.hydra/`` beside ``config.toml`` records exactly how the run was composed.
"""

from __future__ import annotations

import os
import shlex
import shutil
import sys
from pathlib import Path

from retro_gamer.extras import exit_without_extra, require_extra

# Before Hydra's import: without the [train] extra, one line that names it instead of a ModuleNotFoundError
# (run as a command it is printed and the exit code is 2; imported, it is a RetroGamerError).
if __name__ == "__main__":
    exit_without_extra("train", "python -m retro_gamer.train")
else:
    require_extra("train", "retro_gamer.train")

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.errors import HydraException
from omegaconf import DictConfig
from omegaconf.errors import OmegaConfBaseException

from retro_gamer.config.compose import description_source, number_problems, run_config_from_hydra, typo_hints
from retro_gamer.config.schema import config_dir, register_configs
from retro_gamer.errors import RetroGamerError
from retro_gamer.files import describe_os_error
from retro_gamer.launch import explain_failure
from retro_gamer.run.lock import LOCK_FILE, RunBusyError, run_lock

register_configs()


@hydra.main(version_base="1.3", config_path=str(config_dir()), config_name="config")
def main(cfg: DictConfig) -> float | None:
    from retro_gamer.launch import finish_message, stopped_at_once_message, train_run
    from retro_gamer.run.directory import prepare_run, previous_config

    hydra_cfg = HydraConfig.get()
    run_dir = Path(hydra_cfg.runtime.output_dir)
    resume_command = shlex.join(["python", "-m", "retro_gamer.train", *sys.argv[1:]])
    try:
        reasons: list[str] = []
        run_cfg = run_config_from_hydra(
            cfg, hydra_cfg.runtime.choices.get("game"), why=reasons, previous=previous_config(run_dir)
        )
        if any(reasons):
            print(f"Chosen for this game: {'; '.join(r for r in reasons if r)}")
        with run_lock(run_dir):
            source = description_source(
                f"conf/game/{hydra_cfg.runtime.choices.get('game')}.yaml", list(hydra_cfg.overrides.task)
            )
            run_cfg = prepare_run(run_cfg, run_dir, source=source)
            summary = train_run(run_dir, run_cfg)
    except RetroGamerError as err:
        print(f"error: {err}", file=sys.stderr)
        if not isinstance(err, RunBusyError):
            _remove_if_empty(run_dir)
        sys.exit(err.exit_code)
    except KeyboardInterrupt:
        print(stopped_at_once_message(resume_command), file=sys.stderr)
        sys.exit(130)
    except (Exception, SystemExit) as err:  # the game's own code or the file system; else our bug: traceback
        message = explain_failure(err, f"training {run_dir}")
        if message is None:
            raise
        print(f"error: {message}", file=sys.stderr)
        _remove_if_empty(run_dir)
        sys.exit(2)
    print(finish_message(summary, run_dir, resume_command))
    return summary["mean_return"]


def _remove_if_empty(run_dir: Path) -> None:
    """Hydra makes the output folder (and .hydra/) before the job runs; a job refused at once leaves none."""
    if run_dir.is_dir() and {p.name for p in run_dir.iterdir()} <= {".hydra", LOCK_FILE}:
        shutil.rmtree(run_dir)


_FLAGS = ("-m", "--multirun")


def cli() -> None:
    """Entry point. Hydra's parser rejects ``-m`` after an override (``+game=snake -m trainer.lr=1,2``);
    users write it there, so move the flag to the front first. Typos and absurdly long numbers are answered
    before Hydra parses anything: its own answers lack the nearest name, or end in a traceback."""
    from retro_gamer.tracking.store import disable_telemetry_unless_chosen

    disable_telemetry_unless_chosen()
    args = sys.argv[1:]
    overrides = [a for a in args if "=" in a and not a.startswith("-")]
    hints = typo_hints(overrides) + number_problems(overrides)
    if hints:
        print("error: " + "\n".join(hints), file=sys.stderr)
        sys.exit(2)
    sys.argv[1:] = [a for a in args if a in _FLAGS] + [a for a in args if a not in _FLAGS]
    os.environ["HYDRA_FULL_ERROR"] = "1"  # Hydra hands its failures back here instead of printing a traceback
    try:
        main()
    except (HydraException, OmegaConfBaseException) as err:  # a bad override or config group: Hydra's own words
        cause = f"\n{str(err.__cause__).splitlines()[0]}" if isinstance(err.__cause__, OmegaConfBaseException) else ""
        print(f"error: {str(err).strip()}{cause}", file=sys.stderr)
        sys.exit(2)
    except OSError as err:  # Hydra creating the run directory: a file in the way, a read-only disk, a long name
        print(f"error: {describe_os_error(err)}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    cli()
