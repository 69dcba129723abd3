"""Where runs are tracked: the MLflow store a run directory belongs to, opened safely, and how to browse it.

The rule, which never depends on the current directory: ``tracking.uri`` when set, else
``MLFLOW_TRACKING_URI``, else a SQLite database plus artifacts under ``mlruns/`` in the run's
project folder: ``DVC_ROOT`` inside a DVC stage or experiment (``dvc exp run`` works in a temp copy
that DVC throws away), otherwise the nearest folder at or above the run directory that holds
``.git``, ``.dvc``, ``dvc.yaml`` or ``pyproject.toml``, otherwise the run directory's parent.
(MLflow 3.13+ refuses its old plain-file store, so the default is SQLite.)

Loading and playing a trained model must work on Windows, which has no ``fcntl``: this module is on
that path, so only the locking that training needs imports it.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlparse

if TYPE_CHECKING:
    from mlflow import MlflowClient

STORE_FOLDER = "mlruns"
DB_FILE = "mlflow.db"
ARTIFACTS_FOLDER = "artifacts"
PROJECT_MARKERS = (".git", ".dvc", "dvc.yaml", "pyproject.toml")
# The experiment tag MLflow 3's UI reads to choose its view: the classic runs table with metric columns.
EXPERIMENT_KIND = ("mlflow.experimentKind", "custom_model_development")


def project_root(start: Path) -> Path:
    """The folder whose ``mlruns/`` holds the runs under ``start`` (see the module docstring)."""
    if os.environ.get("DVC_ROOT"):
        return Path(os.environ["DVC_ROOT"]).resolve()
    start = Path(start).resolve()
    for folder in (start, *start.parents):
        if any((folder / marker).exists() for marker in PROJECT_MARKERS):
            return folder
    return start.parent


def default_uri(start: Path) -> str:
    """``sqlite:////abs/path/mlruns/mlflow.db`` for the project that ``start`` belongs to."""
    return "sqlite:///" + str(project_root(start) / STORE_FOLDER / DB_FILE)


def resolve_uri(configured: str | None, start: Path) -> str:
    """``tracking.uri``, else ``MLFLOW_TRACKING_URI``, else the project's default store."""
    return configured or os.environ.get("MLFLOW_TRACKING_URI") or default_uri(start)


def sqlite_path(uri: str) -> Path | None:
    """The database file of a ``sqlite:///`` URI, ``None`` for any other store."""
    parsed = urlparse(uri)
    if parsed.scheme != "sqlite":
        return None
    path = unquote(parsed.path)
    return Path(path[1:])  # sqlite:////abs/db → /abs/db; sqlite:///rel/db → rel/db (relative to the current folder)


def artifact_location(uri: str) -> str | None:
    """Where a new experiment keeps artifacts: ``mlruns/artifacts`` beside a SQLite database (MLflow's
    own default would be ``./mlruns`` of whatever the current directory is); the server's choice otherwise."""
    db = sqlite_path(uri)
    return (db.parent / ARTIFACTS_FOLDER).resolve().as_uri() if db is not None else None


@contextmanager
def _store_lock(db: Path) -> Iterator[None]:
    """Several processes (a Hydra multirun with joblib) may create the same database at once:
    MLflow's schema migrations must run in one of them only. (Creating a store is the training side,
    which runs on POSIX systems only.)"""
    import fcntl

    db.parent.mkdir(parents=True, exist_ok=True)
    with open(db.parent / ".lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def open_store(uri: str) -> MlflowClient:
    """A client for ``uri``. A SQLite database is created (migrated) under a file lock and switched to
    WAL journaling, so parallel runs write without "database is locked" failures."""
    import logging

    from mlflow import MlflowClient

    for name in ("alembic", "mlflow.store.db.utils"):  # schema migration chatter on a new database
        logging.getLogger(name).setLevel(logging.WARNING)
    db = sqlite_path(uri)
    if db is None:
        return MlflowClient(tracking_uri=uri, registry_uri=uri)
    with _store_lock(db):
        client = MlflowClient(tracking_uri=uri, registry_uri=uri)
        client.search_experiments(max_results=1)  # creates the tables on first use
        with sqlite3.connect(db, timeout=30) as connection:
            connection.execute("PRAGMA journal_mode=WAL")
    return client


def experiment_id(client: MlflowClient, name: str, uri: str) -> str:
    """The id of experiment ``name``, created (with :func:`artifact_location`) when missing.

    Every experiment retro-gamer uses comes from here, so every one carries :data:`EXPERIMENT_KIND`:
    without that tag MLflow 3's UI opens an experiment on its GenAI overview, and its runs table
    shows no metric columns. An experiment made without the tag (by an older retro-gamer) gets it
    here; a kind someone chose stays.
    """
    from mlflow.exceptions import MlflowException

    key, kind = EXPERIMENT_KIND
    found = client.get_experiment_by_name(name)
    if found is None:
        try:
            return client.create_experiment(name, artifact_location=artifact_location(uri), tags={key: kind})
        except MlflowException:  # another process created it first
            found = client.get_experiment_by_name(name)
            if found is None:
                raise
    if key not in found.tags:
        client.set_experiment_tag(found.experiment_id, key, kind)
    return found.experiment_id


@contextmanager
def environment(values: Mapping[str, str]) -> Iterator[None]:
    """``values`` in ``os.environ`` for the duration, then the environment as it was. MLflow reads
    its HTTP settings from the environment on every request, so they cannot be passed to a client;
    library code must not leave them behind in the caller's process. A variable the user set keeps
    the user's value."""
    added = {key: value for key, value in values.items() if key not in os.environ}
    os.environ.update(added)
    try:
        yield
    finally:
        for key in added:
            os.environ.pop(key, None)


def disable_telemetry_unless_chosen() -> None:
    """Switch off MLflow's usage telemetry unless the user decided: ``MLFLOW_DISABLE_TELEMETRY`` set
    either way, or ``DO_NOT_TRACK`` set to a value that allows tracking (``DO_NOT_TRACK=1`` is an
    opt-out that MLflow itself ignores, as it only reads ``true``). For entry points only, before
    MLflow is imported (it reads the setting then): library code leaves its caller's environment alone."""
    allows_tracking = os.environ.get("DO_NOT_TRACK", "").strip().lower() in ("0", "false", "no")
    if "MLFLOW_DISABLE_TELEMETRY" not in os.environ and not allows_tracking:
        os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"


def ui_command(uri: str) -> str:
    """The command that browses ``uri`` (a server's URL is already browsable)."""
    db = sqlite_path(uri)
    if db is not None:
        return f"mlflow ui --backend-store-uri {uri} --port 5000"
    if uri.startswith(("http://", "https://")):
        return f"open {uri}"
    return f"mlflow ui --backend-store-uri {uri}"


def runs_url(uri: str, experiment: str, run_id: str | None = None) -> str:
    """The UI page of an experiment's runs table (MLflow opens experiments on another tab) or of one run.

    MLflow 3's UI shows its GenAI pages (an overview of traces, judges, prompts) unless its
    "Model training" switch is on; the switch is a browser setting, so the link turns it on itself
    (the UI keeps ``workflowType`` on the links it draws)."""
    base = uri.rstrip("/") if uri.startswith(("http://", "https://")) else "http://127.0.0.1:5000"
    page = f"{base}/#/experiments/{experiment}/runs"
    return (f"{page}/{run_id}" if run_id else page) + "?workflowType=machine_learning"
