"""MLflow tracking as a training callback: one MLflow run per run directory, params, tags, batched
metrics, artifacts, episode replays and the final policy model.

The trainer never imports this module; :func:`retro_gamer.launch.train_run` adds the callback when
``tracking.enabled``. A store that stops answering never stops training: the first failure prints
one warning, later sends are skipped and counted, and the end of training says what was not sent.
"""

from __future__ import annotations

import functools
import json
import logging
import queue
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from omegaconf import OmegaConf

from retro_gamer import __version__
from retro_gamer.config.schema import CONFIG_FILE, RunConfig
from retro_gamer.dqn.callbacks import LOG_FILE, METRICS_FILE, Callback, Window
from retro_gamer.extras import require
from retro_gamer.tracking import store

if TYPE_CHECKING:
    from retro_gamer.dqn.trainer import DQNTrainer
    from retro_gamer.games import GameDescription
    from retro_gamer.tracking.recording import Recording

TRACKING_FILE = "tracking.json"  # which store and MLflow run this run directory continues
BATCH = 1000  # MLflow's limit of metrics per log_batch call
REPLAY_SHARE = 0.01  # with replay_every unset, replays may take this share of the training wall time
STATUS = {"finished": "FINISHED", "interrupted": "KILLED", "failed": "FAILED"}
# MLflow's HTTP settings while a run is tracked: a stopped server costs seconds, not minutes.
HTTP_SETTINGS = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "20",
    "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "true",  # the report at the end of training gives the run's URL
}


def flatten_config(cfg: RunConfig) -> dict[str, str]:
    """The whole config as MLflow params: ``game.name``, ``model.hidden``, ``trainer.lr``, …"""
    sections = {
        "game": asdict(cfg.game),
        "model": OmegaConf.to_container(OmegaConf.structured(cfg.model), enum_to_str=True),
        "trainer": OmegaConf.to_container(OmegaConf.structured(cfg.trainer), enum_to_str=True),
        "tracking": OmegaConf.to_container(OmegaConf.structured(cfg.tracking), enum_to_str=True),
    }
    return flatten_params(sections)


def flatten_params(sections: dict[str, Any]) -> dict[str, str]:
    """Nested sections as MLflow params with dotted names (``{"game": {"crop": {"radius": 5}}}`` →
    ``game.crop.radius``): one naming for every run, so runs trained another way share retro-gamer's columns."""
    flat: dict[str, str] = {}

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, dict) and value:
            for key, inner in value.items():
                walk(f"{prefix}.{key}", inner)
        else:
            flat[prefix] = "None" if value is None else str(value)

    for name, values in sections.items():
        walk(name, values)
    return flat


def experiment_name(configured: str | None, game: GameDescription) -> str:
    """The MLflow experiment a run goes to: ``tracking.experiment``, else the game's name, so every run of one game,
    whoever trained it, lands in one runs table."""
    return configured or game.name or "retro-gamer"


def git_state(file: Path) -> tuple[str, bool] | None:
    """``(commit, dirty)`` of the git repository whose work ``file`` is part of; ``None`` outside a
    repository, in one with no commit yet, and for a file the repository ignores (a package installed
    into a virtual environment inside a project is not that project's code). A file the repository does
    not track yet is a change the commit lacks: dirty. Dirty means any tracked file differs from the commit."""
    file = Path(file).resolve()

    def git(*args: str) -> subprocess.CompletedProcess | None:
        try:
            return subprocess.run(["git", "-C", str(file.parent), *args], capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            return None

    head = git("rev-parse", "HEAD")
    if head is None or head.returncode != 0:
        return None
    commit = head.stdout.strip()
    tracked = git("ls-files", "--error-unmatch", "--", file.name)
    if tracked is None or tracked.returncode != 0:
        ignored = git("check-ignore", "-q", "--", file.name)
        return None if ignored is None or ignored.returncode == 0 else (commit, True)
    status = git("status", "--porcelain", "--untracked-files=no")
    return commit, status is None or status.returncode != 0 or bool(status.stdout.strip())


def factory_file(spec: str, base_dir: Path) -> Path | None:
    """The file that defines the game factory ``spec`` names (a ``module`` or ``package`` spec resolves
    to the file of its ``create_game``); ``None`` when it cannot be found."""
    import inspect

    from retro_gamer.errors import RetroGamerError
    from retro_gamer.games import load_factory

    try:
        source = inspect.getsourcefile(load_factory(spec, base_dir))
    except (RetroGamerError, TypeError):  # TypeError: a builtin has no source file
        return None
    return Path(source) if source else None


def source_tags(game_spec: str, base_dir: Path) -> dict[str, str]:
    """Where the code of a run comes from, as run tags: the game (its factory file, and that file's
    repository commit and dirty flag) and retro-gamer (its version, and commit and dirty flag when it
    runs from a git checkout). The run directory's own repository says nothing about either."""
    import retro_gamer

    tags = {"retro_gamer_version": __version__}
    ours = git_state(Path(retro_gamer.__file__))
    if ours is not None:
        tags |= {"retro_gamer_git_commit": ours[0], "retro_gamer_git_dirty": str(ours[1]).lower()}
    game = factory_file(game_spec, base_dir)
    if game is not None:
        tags["game_file"] = str(game.resolve())
        state = git_state(game)
        if state is not None:
            tags |= {
                "game_git_commit": state[0],
                "game_git_dirty": str(state[1]).lower(),
                "mlflow.source.git.commit": state[0],
            }  # MLflow's UI shows this one as the run's source version
    return tags


def run_name(run_dir: Path) -> str:
    """The MLflow run name: the run directory's name, or for a job of a Hydra multirun the values it
    sweeps (``lr=0.0003,seed=2``). A job's folder is named after all of its overrides (or a hash when
    they are too long), and a path among them splits that name into folders: neither reads well in the
    runs table. A value that is a path shows only its last part."""
    import yaml

    run_dir = Path(run_dir).resolve()
    try:
        hydra = yaml.safe_load((run_dir / ".hydra" / "hydra.yaml").read_text(encoding="utf-8"))["hydra"]
        multirun = hydra["mode"] == "MULTIRUN"
        job_overrides, job_number = hydra["overrides"]["task"], hydra["job"]["num"]
    except (OSError, yaml.YAMLError, KeyError, TypeError):
        return run_dir.name
    if not multirun:
        return run_dir.name
    sweep = next((folder for folder in run_dir.parents if (folder / "multirun.yaml").is_file()), None)
    fallback = f"{sweep.name if sweep else run_dir.name} job {job_number}"
    if sweep is None:
        return fallback
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    try:
        swept_overrides = yaml.safe_load((sweep / "multirun.yaml").read_text(encoding="utf-8"))["hydra"]["overrides"][
            "task"
        ]
        parser = OverridesParser.create()
        swept = [o.key_or_group for o in parser.parse_overrides(swept_overrides) if o.is_sweep_override()]
        values = {o.key_or_group: o for o in parser.parse_overrides(job_overrides)}
    except (OSError, yaml.YAMLError, KeyError, TypeError, HydraException):
        return fallback
    shorts = [key.rpartition(".")[2] for key in swept]
    parts = []
    for key, short in zip(swept, shorts):
        if key not in values:
            continue
        value = values[key].value()
        text = value if isinstance(value, str) else values[key].get_value_element_as_str()
        text = text.rstrip("/\\").replace("\\", "/").rpartition("/")[2] or text
        parts.append(f"{short if shorts.count(short) == 1 else key}={text}")
    return ",".join(parts) or fallback


def log_replay(client: Any, run_id: str, policy: Any, name: str, seed: int) -> None:
    """Record one greedy episode of ``policy`` and log it as ``replays/NAME.html`` and ``.txt`` on the run."""
    from retro_gamer.tracking.recording import record_episode

    log_recording(client, run_id, record_episode(policy, seed=seed), name)


def log_recording(client: Any, run_id: str, recording: Recording, name: str) -> None:
    """Log a recorded episode as ``replays/NAME.html`` and ``.txt`` on the run."""
    from retro_gamer.tracking.recording import write_recording

    with tempfile.TemporaryDirectory() as tmp:
        page = Path(tmp) / f"{name}.html"
        write_recording(recording, page)
        client.log_artifact(run_id, str(page), "replays")
        client.log_artifact(run_id, str(page.with_suffix(".txt")), "replays")


def replay_due(every: int | None, checkpoints_seen: int, replay_seconds: float, training_seconds: float) -> bool:
    """Whether a checkpoint gets a replay: every ``every``-th (0: none); with ``every`` unset, whenever replays so far
    stay within REPLAY_SHARE of the training time, so replays never slow training down noticeably."""
    if every is not None:
        return every > 0 and checkpoints_seen % every == 0
    return replay_seconds <= REPLAY_SHARE * training_seconds


def _timed(method: Callable) -> Callable:
    """Adds the hook's duration to ``self.seconds[hook]`` (what tracking costs the training loop)."""

    def wrapper(self: MlflowTracking, *args: Any) -> Any:
        started = time.perf_counter()
        try:
            return method(self, *args)
        finally:
            self.seconds[method.__name__] = self.seconds.get(method.__name__, 0.0) + time.perf_counter() - started

    return wrapper


class MetricSender:
    """Sends metric batches from a background thread, in order, so the training loop never waits on the store."""

    def __init__(self, send: Callable[[list[Any]], None]):
        self._queue: queue.Queue = queue.Queue()
        self._send = send
        self.cpu_seconds = 0.0  # CPU time the sending took (it competes with training for the interpreter)
        self._thread = threading.Thread(target=self._run, name="mlflow-metrics", daemon=True)
        self._thread.start()

    def put(self, batch: list[Any]) -> None:
        self._queue.put(batch)

    def _run(self) -> None:
        while (batch := self._queue.get()) is not None:
            started = time.thread_time()
            self._send(batch)
            self.cpu_seconds += time.thread_time() - started

    def close(self, timeout: float = 120.0) -> None:
        """Send what is queued, then stop."""
        self._queue.put(None)
        self._thread.join(timeout)


class StoreWriter:
    """The store side of recording a training run in MLflow, whichever trainer runs it (retro-gamer's own,
    :class:`MlflowTracking`, or Stable-Baselines3's, :mod:`retro_gamer.adapters.sb3_tracking`): the store and
    experiment opened with the HTTP settings, metrics batched to a background sender, the run ended and reported.
    A store that stops answering never stops training: the first failure prints one warning, later sends are
    skipped and counted, and the report says what was not sent."""

    KEPT = "The run directory has them all."  # where what was not sent can still be found, for the report

    def __init__(self, uri: str, stream: Any = None):
        self.stream = stream or sys.stdout
        self.uri = uri
        self.client: Any = None
        self.run_id = ""  # empty until the MLflow run is started or found
        self.experiment_id = ""
        self._metrics: list[Any] = []
        self._sender: MetricSender | None = None
        self._failure: str | None = None
        self._failure_lock = threading.Lock()
        self.unsent = {"metrics": 0, "artifacts": 0}
        self._environment = ExitStack()  # HTTP_SETTINGS while training; closing it restores os.environ

    def _enter_settings(self) -> None:
        """HTTP_SETTINGS until ``self._environment`` closes (at the end of training)."""
        self._environment.enter_context(store.environment(HTTP_SETTINGS))
        logging.getLogger("urllib3.connectionpool").setLevel(logging.ERROR)  # our one warning says it all

    def _open_experiment(self, name: str) -> None:
        """The store's client and the id of experiment ``name`` (created when missing)."""
        self.client = store.open_store(self.uri)
        self.experiment_id = store.experiment_id(self.client, name, self.uri)

    def _safely(
        self,
        what: str,
        action: Callable[[], Any],
        metrics: int = 0,
        artifacts: int = 0,
        even_after_failure: bool = False,
    ) -> Any:
        if self._failure is None or even_after_failure:
            try:
                return action()
            except Exception as err:  # noqa: BLE001 - any store failure: warn once, keep training
                self._warn_once(what, err)
        with self._failure_lock:
            self.unsent["metrics"] += metrics
            self.unsent["artifacts"] += artifacts
        return None

    def _warn_once(self, what: str, err: Exception) -> None:
        with self._failure_lock:  # the sender thread and the training thread may fail together
            if self._failure is not None:
                return
            reason = str(err).splitlines()[0] if str(err) else ""
            self._failure = f"{type(err).__name__}: {reason[:160]}{'…' if len(reason) > 160 else ''}"
        print(
            f"warning: the MLflow store {self.uri} failed while {what} ({self._failure}). Training goes on and "
            "the run directory stays complete; what cannot be sent is counted and reported at the end.",
            file=sys.stderr,
            flush=True,
        )

    @property
    def sender_cpu_seconds(self) -> float:
        return self._sender.cpu_seconds if self._sender is not None else 0.0

    def _flush(self) -> None:
        """Hand the buffered metrics to the sender thread: a store write costs per value, so it never runs on the
        training thread (benchmarks/tracking_overhead.py)."""
        batch, self._metrics = self._metrics, []
        if self._sender is None:
            self.unsent["metrics"] += len(batch)
        elif batch:
            self._sender.put(batch)

    def _send(self, batch: list[Any]) -> None:
        for i in range(0, len(batch), BATCH):
            chunk = batch[i : i + BATCH]
            self._safely(
                "sending metrics",
                functools.partial(self.client.log_batch, self.run_id, metrics=chunk),
                metrics=len(chunk),
            )

    def _stop_sending(self) -> None:
        """Send what is buffered and queued, then stop the sender."""
        self._flush()
        if self._sender is not None:
            self._sender.close()

    def _terminate(self, status: str) -> bool:
        """End the run as ``status`` (a key of STATUS); worth a try even after a failure: a run left RUNNING misleads."""
        ended = self._safely(
            "ending the run",
            lambda: self.client.set_terminated(self.run_id, STATUS[status]) or True,
            even_after_failure=True,
        )
        return bool(ended)

    def _report(self, status: str, ended: bool, notes: Sequence[str] = ()) -> None:
        """Where the run is and how to browse it, ``notes`` (a logged model) after its first line, and what was not
        sent."""
        lines = []
        if self.run_id:
            state = STATUS[status] if ended else "still RUNNING: the store could not be told it ended"
            lines.append(f"MLflow run {self.run_id} ({state}) in {self.uri}")
            lines += notes
            lines.append(f"Browse: {store.ui_command(self.uri)}")
            lines.append(
                f"  then open {store.runs_url(self.uri, self.experiment_id)} (runs table) or "
                f"{store.runs_url(self.uri, self.experiment_id, self.run_id)} (this run)"
            )
        if self._failure is not None:
            lines.append(
                f"warning: not sent to {self.uri}: {self.unsent['metrics']:,} metric values and "
                f"{self.unsent['artifacts']} artifacts ({self._failure}). {self.KEPT}"
            )
        print("\n".join(lines), file=self.stream, flush=True)


class MlflowTracking(StoreWriter, Callback):
    """Records a training run in MLflow (see the module docstring)."""

    def __init__(self, cfg: RunConfig, run_dir: Path, stream: Any = None):
        require("mlflow", "train", "Tracking in MLflow (tracking.enabled, on by default; false turns it off)")
        self.cfg, self.run_dir = cfg, Path(run_dir)
        super().__init__(store.resolve_uri(cfg.tracking.uri, self.run_dir), stream)
        self._checkpoints_seen = 0
        self._started = time.perf_counter()
        self._replay_seconds = 0.0
        self._replayed: Path | None = None
        self.seconds: dict[str, float] = {}  # time spent in each hook, for the overhead benchmark

    # --- hooks ------------------------------------------------------------------------------
    @_timed
    def on_train_start(self, trainer: DQNTrainer) -> None:
        self._enter_settings()  # until on_train_end
        self._safely("opening the store", lambda: self._start(trainer))

    def _start(self, trainer: DQNTrainer) -> None:
        from mlflow.entities import Param, RunTag

        self._open_experiment(experiment_name(self.cfg.tracking.experiment, self.cfg.game))
        previous = self._previous_run()
        tags = self._tags(trainer)
        if previous is None:
            run = self.client.create_run(self.experiment_id, run_name=run_name(self.run_dir), tags=tags)
            self.run_id = run.info.run_id
            logged: dict[str, str] = {}
        else:
            self.run_id = previous.info.run_id
            self.client.update_run(self.run_id, status="RUNNING")
            logged = previous.data.params
            for key, value in tags.items():
                self.client.set_tag(self.run_id, key, value)
        params = flatten_config(self.cfg)
        new = [Param(k, v) for k, v in params.items() if k not in logged]
        changed = [
            RunTag(f"changed.{k}", f"{logged[k]} → {v} at episode {trainer.episode}")
            for k, v in params.items()
            if k in logged and logged[k] != v
        ]  # MLflow params cannot change
        for i in range(0, max(len(new), len(changed)), 100):
            self.client.log_batch(self.run_id, params=new[i : i + 100], tags=changed[i : i + 100])
        self._write_tracking_file()
        self.client.log_artifact(self.run_id, str(self.run_dir / CONFIG_FILE))
        self._sender = MetricSender(self._send)

    def _previous_run(self) -> Any:
        """The MLflow run this run directory continues, if it was tracked in this same store."""
        path = self.run_dir / TRACKING_FILE
        if not path.is_file():
            return None
        try:
            saved = json.loads(path.read_text(encoding="utf-8"))
        except (ValueError, OSError):
            return None
        if saved.get("tracking_uri") != self.uri:
            print(
                f"note: this run was tracked in {saved.get('tracking_uri')}; it is tracked in {self.uri} "
                "from now on, as a new MLflow run.",
                file=self.stream,
                flush=True,
            )
            return None
        from mlflow.exceptions import MlflowException

        try:
            return self.client.get_run(saved["run_id"])
        except MlflowException:
            print(
                f"note: MLflow run {saved['run_id']} is no longer in {self.uri}; starting a new one.",
                file=self.stream,
                flush=True,
            )
            return None

    def _write_tracking_file(self) -> None:
        from retro_gamer.files import atomic_write_bytes

        data = {"tracking_uri": self.uri, "experiment_id": self.experiment_id, "run_id": self.run_id}
        atomic_write_bytes(self.run_dir / TRACKING_FILE, (json.dumps(data, indent=2) + "\n").encode())

    def _tags(self, trainer: DQNTrainer) -> dict[str, str]:
        t = self.cfg.tracking
        return {
            "game": self.cfg.game.name or self.cfg.game.factory,
            "role": t.role,
            "device": str(trainer.device),
            "run_dir": str(self.run_dir.resolve()),
            **source_tags(self.cfg.game.factory, self.run_dir),
            **{str(k): str(v) for k, v in t.tags.items()},
        }

    @_timed
    def on_episode_end(self, trainer: DQNTrainer, episode: int, episode_return: float, length: int) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        self._metrics += [
            Metric("episode_return", episode_return, now, episode),
            Metric("episode_length", float(length), now, episode),
            Metric("epsilon", trainer.epsilon(), now, episode),
        ]
        if len(self._metrics) >= 3 * BATCH:
            self._flush()

    @_timed
    def on_checkpoint(self, trainer: DQNTrainer, path: Path, window: Window) -> None:
        from mlflow.entities import Metric

        now, step = int(time.time() * 1000), window.last_episode
        self._metrics += [
            Metric(key, value, now, step)
            for key, value in (
                ("window_mean_return", window.mean_return),
                ("window_mean_length", window.mean_length),
                ("env_steps_per_s", window.steps_per_s),
                ("env_steps", float(window.env_steps)),
                *((("loss", window.loss),) if window.loss is not None else ()),
            )
        ]
        self._flush()
        if self.cfg.tracking.log_checkpoints:
            self._safely(
                "logging a checkpoint",
                lambda: self.client.log_artifact(self.run_id, str(path), "checkpoints"),
                artifacts=1,
            )
        self._checkpoints_seen += 1
        if self._replay_due():
            self._safely("logging a replay", lambda: self._log_replay(path), artifacts=2)

    def _replay_due(self) -> bool:
        return replay_due(
            self.cfg.tracking.replay_every,
            self._checkpoints_seen,
            self._replay_seconds,
            time.perf_counter() - self._started,
        )

    def _log_replay(self, checkpoint_path: Path) -> None:
        """One greedy episode of this checkpoint as a self-contained HTML page plus a transcript."""
        from retro_gamer.policy import TrainedPolicy

        started = time.perf_counter()
        self._replayed = checkpoint_path
        try:
            log_replay(
                self.client,
                self.run_id,
                TrainedPolicy(self.run_dir, checkpoint=checkpoint_path),
                checkpoint_path.stem,
                self.cfg.trainer.seed,
            )
        finally:
            self._replay_seconds += time.perf_counter() - started

    @_timed
    def on_train_end(self, trainer: DQNTrainer, summary: dict[str, Any]) -> None:
        with self._environment:
            self._end(summary)

    def _end(self, summary: dict[str, Any]) -> None:
        self._stop_sending()
        if not self.run_id:
            self._report(summary["status"], False)
            return
        model_uri = None
        if summary["status"] != "failed":
            from retro_gamer.run import checkpoint

            latest = checkpoint.latest_checkpoint(self.run_dir)
            if latest is not None and latest != self._replayed and self.cfg.tracking.replay_every != 0:
                self._safely("logging the final replay", lambda: self._log_replay(latest), artifacts=2)
            model_uri = self._safely("logging the policy model", lambda: self._log_model(), artifacts=1)
        self._safely("logging the run's files", lambda: self._log_files(), artifacts=4)
        ended = self._terminate(summary["status"])
        self._report(summary["status"], ended, [f"Policy model: {model_uri}"] if model_uri else [])

    def _log_files(self) -> None:
        from retro_gamer.tracking.plots import plot_learning_curve

        for name in (LOG_FILE, METRICS_FILE):
            if (self.run_dir / name).is_file():
                self.client.log_artifact(self.run_id, str(self.run_dir / name))
        if (self.run_dir / "resume.pt").is_file():
            self.client.log_artifact(self.run_id, str(plot_learning_curve(self.run_dir)))

    def _log_model(self) -> str | None:
        from retro_gamer.run import checkpoint
        from retro_gamer.tracking.mlflow_model import log_policy_model, register_policy

        latest = checkpoint.latest_checkpoint(self.run_dir)
        if latest is None:
            return None
        uri = log_policy_model(self.client, self.run_id, self.run_dir, latest)
        self.client.set_tag(self.run_id, "policy_model_uri", uri)
        name = self.cfg.tracking.register_as
        if name:
            version = register_policy(self.client, uri, name)
            uri = f"{uri} (registered as models:/{name}/{version}, alias @newest; models:/{name}@latest also names the newest version)"
        return uri
