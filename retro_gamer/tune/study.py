"""The Optuna study that workers share: where it lives, who created it, and which of its trials are orphans.

Any number of workers, on any machines, open the same study by name in the same storage (a SQLite file for one
machine, a PostgreSQL URL for many) and take trials from it with Optuna's ask/tell API. Creating the study is the
one step only one worker may do: the database's unique study name decides, and that worker records what the
others need (the MLflow parent run, the space's fingerprint) in the study's user attributes.

**Orphaned trials.** With ask/tell Optuna keeps no heartbeat, so a trial whose worker died (SIGKILL, a power cut,
a lost machine) would stay RUNNING for ever. Each worker records in its trial who runs it (host, boot id, process
id and that process's start time) and a heartbeat time it refreshes while it trains. A worker that starts marks a
RUNNING trial failed when it can tell its worker is gone: on the same host (same boot id), a process with that id
and start time no longer exists; on another host (or after a reboot), the heartbeat is older than ``stale_after``
seconds.
"""

from __future__ import annotations

import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from retro_gamer.errors import RetroGamerError
from retro_gamer.tune.space import SearchSpace

PARENT_RUN = "mlflow_parent_run_id"
TRACKING_URI = "mlflow_tracking_uri"
SPACE = "space_fingerprint"
WORKER = "worker"
HEARTBEAT = "heartbeat"
HEARTBEAT_EVERY_S = 30.0
STALE_AFTER_S = 600.0  # default: ten minutes without a heartbeat from another host means that worker is gone


def default_storage(project: Path) -> str:
    """The study database when ``--storage`` is not given: ``tune/optuna.db`` of the project."""
    folder = project / "tune"
    folder.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{(folder / 'optuna.db').resolve()}"


def storage_for(url: str) -> Any:
    """An Optuna RDB storage for ``url``; a driver or a server that is missing is one clear error."""
    import optuna
    from sqlalchemy.exc import ArgumentError, IntegrityError, OperationalError, ProgrammingError

    try:
        for attempt in range(5):
            try:
                return optuna.storages.RDBStorage(url, engine_kwargs={"pool_pre_ping": True})
            except (IntegrityError, ProgrammingError):  # workers started together both create the empty database's
                if attempt == 4:  # tables: one wins, the other finds them made on its next look
                    raise
                time.sleep(0.5 * (attempt + 1))
        raise AssertionError("unreachable")
    except ImportError as err:  # the URL's database driver (postgresql:// is psycopg's on SQLAlchemy 2.1), which
        driver = getattr(err.__cause__, "name", None) or err.name  # Optuna wraps in an ImportError of its own
        raise RetroGamerError(
            f"the study storage {hide_password(url)} needs the database driver {driver}, which is not installed. "
            "For PostgreSQL it comes with the [db] extra: pip install 'retro-gamer[db]'"
        ) from None
    except (OperationalError, ArgumentError, ValueError) as err:
        reason = str(getattr(err, "orig", None) or err).strip().splitlines()[0]
        raise RetroGamerError(
            f"cannot open the study storage {hide_password(url)}: {reason}. Check the URL (sqlite:///PATH or "
            "postgresql://USER:PASSWORD@HOST:PORT/DATABASE) and that the database server runs and accepts you."
        ) from None


def hide_password(url: str) -> str:
    """``postgresql://user:secret@host/db`` → ``postgresql://user:***@host/db``, for messages and logs."""
    scheme, sep, rest = url.partition("://")
    if "@" not in rest or ":" not in rest.split("@", 1)[0]:
        return url
    credentials, host = rest.split("@", 1)
    return f"{scheme}{sep}{credentials.split(':', 1)[0]}:***@{host}"


def open_study(name: str, storage: Any, space: SearchSpace) -> tuple[Any, bool]:
    """The study ``name``, created here if no worker has (returns ``created``), checked against ``space``."""
    import optuna

    sampler = optuna.samplers.TPESampler(n_startup_trials=max(5, 2 * len(space.params)))
    pruner: optuna.pruners.BasePruner = (
        optuna.pruners.NopPruner()
        if space.pruner.kind == "none"
        else optuna.pruners.MedianPruner(
            n_startup_trials=space.pruner.startup_trials, n_warmup_steps=space.pruner.warmup_steps
        )
    )
    kwargs = {"study_name": name, "storage": storage, "sampler": sampler, "pruner": pruner}
    try:
        study = optuna.create_study(direction=optuna.study.StudyDirection[space.objective.direction.upper()], **kwargs)
        study.set_user_attr(SPACE, space.fingerprint)
        return study, True
    except optuna.exceptions.DuplicatedStudyError:
        study = optuna.load_study(**kwargs)
    if study.direction.name.lower() != space.objective.direction:
        raise RetroGamerError(
            f"study {name!r} was made to {study.direction.name.lower()} its objective; {space.source} asks to "
            f"{space.objective.direction} it. Use another --study name, or the space the study was made with."
        )
    fingerprint = wait_for_attr(study, SPACE, 30.0)
    if fingerprint != space.fingerprint:
        raise RetroGamerError(
            f"study {name!r} was created with another search space than {space.source} (its content differs), "
            "so their trials would not compare. Start the worker with the same space file, or use another --study."
        )
    return study, False


def wait_for_attr(study: Any, key: str, timeout_s: float) -> Any:
    """A user attribute that the study's creator sets just after creating it: workers started at the same moment
    may look before it is there."""
    deadline = time.monotonic() + timeout_s
    while True:
        attrs = study.user_attrs
        if key in attrs:
            return attrs[key]
        if time.monotonic() >= deadline:
            raise RetroGamerError(
                f"study {study.study_name!r} has no {key!r}: the worker that created it stopped before recording "
                f"it. Delete the study (optuna delete-study --study-name {study.study_name} --storage URL) and start again."
            )
        time.sleep(0.2)


@dataclass(frozen=True)
class Worker:
    """Who runs a trial: enough to tell later, from any machine, whether that process still exists."""

    host: str
    boot_id: str
    pid: int
    started: str  # the process's start time in clock ticks since boot (/proc), so a reused pid is not mistaken

    @classmethod
    def this_process(cls) -> Worker:
        return cls(socket.gethostname(), _boot_id(), os.getpid(), _process_start(os.getpid()))

    def as_attr(self) -> dict[str, Any]:
        return {"host": self.host, "boot_id": self.boot_id, "pid": self.pid, "started": self.started}

    def gone(self) -> bool | None:
        """True when this worker's process surely no longer runs, False when it does; None when this machine
        cannot tell (another host, or this one rebooted: only the heartbeat can)."""
        if self.host != socket.gethostname() or self.boot_id != _boot_id() or not self.boot_id:
            return None
        return _process_start(self.pid) != self.started


def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


def _process_start(pid: int) -> str:
    """Field 22 of /proc/PID/stat (after the command name, which may hold spaces); "" when there is no such process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    return stat.rsplit(")", 1)[1].split()[19]


@dataclass(frozen=True)
class Orphan:
    number: int
    reason: str  # how the worker was told to be gone
    run_id: str  # the trial's MLflow run, "" when untracked


def mark_orphans_failed(study: Any, stale_after_s: float = STALE_AFTER_S, now: float | None = None) -> list[Orphan]:
    """Mark failed every RUNNING trial whose worker is gone (see the module docstring)."""
    import optuna

    now = time.time() if now is None else now
    orphans = []
    for trial in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        attrs = trial.user_attrs
        worker = Worker(**attrs[WORKER]) if isinstance(attrs.get(WORKER), dict) else None
        started = trial.datetime_start.timestamp() if trial.datetime_start else now
        heartbeat = float(attrs.get(HEARTBEAT, started))
        gone = worker.gone() if worker is not None else None
        if worker is not None and gone:
            reason = f"its worker {worker.host}:{worker.pid} no longer runs (that process is gone from this host)"
        elif gone is None and now - heartbeat > stale_after_s:
            who = f"its worker {worker.host}:{worker.pid}" if worker else "its worker (never named)"
            reason = (
                f"{who} sent no heartbeat for {(now - heartbeat) / 60:.1f} min (the limit is {stale_after_s / 60:g})"
            )
        else:
            continue
        try:
            study.tell(trial.number, state=optuna.trial.TrialState.FAIL)
        except (RuntimeError, ValueError):  # finished meanwhile: another worker reaped it first
            continue
        orphans.append(Orphan(trial.number, reason, str(attrs.get("mlflow_run_id", ""))))
    return orphans
