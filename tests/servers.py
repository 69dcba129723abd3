"""Real servers for tests and benchmarks: a private PostgreSQL cluster and an ``mlflow server`` in front of it.

    from servers import create_database, mlflow_server, postgres_cluster, postgres_missing_reason

    if reason := postgres_missing_reason():
        pytest.skip(reason)
    with postgres_cluster(tmp_path / "pg") as base:                 # "postgresql://postgres@127.0.0.1:PORT"
        backend = create_database(base, "mlflow")   # "postgresql+psycopg2://postgres@127.0.0.1:PORT/mlflow"
        with mlflow_server(backend, tmp_path / "artifacts") as url:   # "http://127.0.0.1:PORT"
            ...

* ``postgres_missing_reason() -> str | None``: why no cluster can be started here (no PostgreSQL binaries, no
  ``postgres`` account to run them as root, no psycopg2), ``None`` when one can. Callers skip with it.
* ``postgres_cluster(folder: Path)``: a context manager; a new cluster (``initdb -A trust``: any role, no
  password) listening on 127.0.0.1 only, on a free port, with its socket in its own data folder, so it never
  meets a system PostgreSQL. Yields the base URL ``postgresql://postgres@127.0.0.1:PORT`` (superuser
  ``postgres``); stopped (``pg_ctl -m fast stop``) and deleted afterwards. PostgreSQL refuses to run as root,
  so as root the binaries run as the ``postgres`` account, and the data folder is a new folder in the system's
  temporary folder that this account can reach (pytest's own temporary folders are private to root);
  ``folder`` then only keeps the server's log. Otherwise the cluster lives in ``folder``.
* ``create_database(base_url, name) -> str``: ``CREATE DATABASE name``; returns its URL for MLflow and Optuna,
  ``postgresql+psycopg2://postgres@127.0.0.1:PORT/name``. The driver is named because SQLAlchemy 2.1 reads a
  bare ``postgresql://`` as psycopg 3, while ``retro-gamer[db]`` installs psycopg2. (``base_url`` itself is
  libpq's form, for ``psycopg2.connect`` and ``psql``.)
* ``mlflow_server(backend_uri, artifacts_dir, *, app_name=None, env=None, extra_args=())``: a context manager;
  ``mlflow server --backend-store-uri BACKEND --artifacts-destination ARTIFACTS --host 127.0.0.1 --port PORT
  --workers 1`` (plus ``--app-name APP``, then ``extra_args``; a ``--workers`` there replaces the 1) from this
  environment, in its own process group, with MLflow's telemetry off and ``env`` added to the environment.
  It runs in ``artifacts_dir``'s parent folder, so files it makes of its own (``basic_auth.db``, the
  basic-auth app's default user store) land there. Yields ``http://127.0.0.1:PORT`` once ``GET /health``
  answers; the whole group is terminated afterwards. For ``app_name="basic-auth"`` a random
  ``MLFLOW_FLASK_SERVER_SECRET_KEY`` is set unless ``env`` has one; the admin's password
  (``MLFLOW_AUTH_ADMIN_PASSWORD`` or a config file named by ``MLFLOW_AUTH_CONFIG_PATH``) is the caller's.
* ``serve(command, url, *, cwd, env, log)``: the general form under ``mlflow_server``: any command that serves
  ``url`` (a shell command string runs in bash), run until the block ends, once ``url/health`` answers
  (``start`` and ``stop`` are its two halves, for a server that outlives one block).

Readiness is polled with a deadline and a server that exits or never answers fails with the tail of its log;
nothing sleeps a fixed time. A port taken between choosing it and binding it (another test on this machine)
is retried on a new one.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

PG_LIBS = Path("/usr/lib/postgresql")  # Debian and Ubuntu: /usr/lib/postgresql/<version>/bin
SUPERUSER = "postgres"
START_SECONDS = 90.0  # an mlflow server's first start migrates an empty database: ~20 s on 2 busy cores
ATTEMPTS = 3  # ports tried before giving up
_PORT_TAKEN = re.compile(r"address already in use|could not bind|errno 98", re.I)


def postgres_bin() -> Path | None:
    """The folder of ``initdb`` and ``pg_ctl``: on PATH (most systems), else the newest Debian-style install."""
    on_path = shutil.which("initdb")
    if on_path and shutil.which("pg_ctl"):
        return Path(on_path).resolve().parent  # a link on PATH leads to the folder with psql and the rest
    versions = sorted(
        (p.parent for p in PG_LIBS.glob("*/bin/initdb") if p.parent.parent.name.isdigit()),
        key=lambda folder: int(folder.parent.name),
    )
    return versions[-1] if versions else None


def _as_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


def postgres_missing_reason() -> str | None:
    """Why :func:`postgres_cluster` cannot run here, or ``None`` when it can."""
    if postgres_bin() is None:
        return (
            f"PostgreSQL is not installed (no initdb on PATH or in {PG_LIBS}/*/bin): "
            "apt-get install postgresql, as .ci/run does"
        )
    if _as_root():
        try:
            import pwd

            pwd.getpwnam(SUPERUSER)
        except KeyError:
            return "running as root, and there is no 'postgres' account to run PostgreSQL as (it refuses root)"
        if shutil.which("runuser") is None:
            return "running as root without runuser, which PostgreSQL's programs would need (they refuse root)"
    try:
        import psycopg2  # noqa: F401
    except ImportError:
        return "psycopg2 is not installed: pip install 'retro-gamer[db]'"
    return None


def free_port() -> int:
    """A TCP port nobody listens on now: the kernel's pick for port 0. Someone may take it before the caller
    binds it, so starting a server on it is retried (see ``ATTEMPTS``)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _tail(path: Path, chars: int = 4000) -> str:
    try:
        return path.read_text(errors="replace")[-chars:]
    except OSError as error:
        return f"(no log: {error})"


def _pg(program: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """Run a PostgreSQL program, as the ``postgres`` account when we are root (it refuses to run as root)."""
    bindir = postgres_bin()
    assert bindir is not None, postgres_missing_reason()
    command = [str(bindir / program), *args]
    if _as_root():
        command = ["runuser", "-u", SUPERUSER, "--", *command]
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)


@contextmanager
def postgres_cluster(folder: Path) -> Iterator[str]:
    """A private PostgreSQL cluster for the duration (see the module docstring); yields its base URL."""
    reason = postgres_missing_reason()
    if reason:
        raise RuntimeError(reason)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if _as_root():
        home = Path(tempfile.mkdtemp(prefix="retro-gamer-pg-"))
        shutil.chown(home, user=SUPERUSER)
    else:
        home = folder
    data = home / "data"
    log = home / "postgres.log"
    try:
        done = _pg("initdb", "-D", str(data), "-A", "trust", "-U", SUPERUSER, "-E", "UTF8", "--locale=C", "--no-sync")
        if done.returncode != 0:
            raise RuntimeError(f"initdb failed:\n{done.stdout[-3000:]}{done.stderr[-3000:]}")
        port = _start_postgres(data, log)
        try:
            yield f"postgresql://{SUPERUSER}@127.0.0.1:{port}"
        finally:
            _pg("pg_ctl", "-D", str(data), "-m", "fast", "-w", "stop")
    finally:
        if home != folder:
            if log.exists():
                shutil.copyfile(log, folder / log.name)
            shutil.rmtree(home, ignore_errors=True)


def _start_postgres(data: Path, log: Path) -> int:
    """Start the cluster on a free port (another, if that one was taken meanwhile); returns the port."""
    for _ in range(ATTEMPTS):
        port = free_port()
        options = f"-k {data} -p {port} -h 127.0.0.1"  # its socket in its own folder: never the system's
        done = _pg("pg_ctl", "-D", str(data), "-o", options, "-l", str(log), "-w", "-t", "90", "start")
        if done.returncode == 0:
            return port
        if not _PORT_TAKEN.search(_tail(log)):
            break
    raise RuntimeError(f"PostgreSQL did not start:\n{done.stdout[-2000:]}{done.stderr[-2000:]}\n{_tail(log)}")


def create_database(base_url: str, name: str) -> str:
    """Create database ``name`` in the cluster at ``base_url``; returns its SQLAlchemy URL (see the module
    docstring: the psycopg2 driver named)."""
    import psycopg2
    from psycopg2 import sql

    connection = psycopg2.connect(f"{base_url}/postgres")
    try:
        connection.autocommit = True  # CREATE DATABASE cannot run inside a transaction
        with connection.cursor() as cursor:
            cursor.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    finally:
        connection.close()
    return f"{sqlalchemy_url(base_url)}/{name}"


def sqlalchemy_url(url: str) -> str:
    """``url`` with the psycopg2 driver named: ``postgresql://…`` → ``postgresql+psycopg2://…``."""
    return re.sub(r"^postgres(ql)?://", "postgresql+psycopg2://", url)


def _health(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=5) as response:
            return response.status == 200
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return False


def stop(process: subprocess.Popen) -> None:
    """Terminate the whole process group (mlflow server runs uvicorn workers), killing it if it lingers."""
    for sig, wait in ((signal.SIGTERM, 20), (signal.SIGKILL, 10)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            break
        try:
            process.wait(timeout=wait)
            break
        except subprocess.TimeoutExpired:
            continue


def start(
    command: str | Sequence[str],
    url: str,
    *,
    cwd: Path,
    env: Mapping[str, str],
    log: Path,
    seconds: float = START_SECONDS,
) -> subprocess.Popen:
    """Start ``command`` (a string runs in bash) in its own process group and return it once ``url/health``
    answers; one that exits first, or never answers, is stopped and reported with its log. Its output goes to
    ``log``: a pipe nobody reads would fill and stall it."""
    argv = ["bash", "-c", command] if isinstance(command, str) else list(command)
    with open(log, "ab") as output:
        process = subprocess.Popen(
            argv, cwd=cwd, env=dict(env), stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    deadline = time.monotonic() + seconds
    while not _health(url):
        if process.poll() is not None:
            stop(process)  # what it started in its group
            raise ServerExited(f"`{command}` exited {process.returncode} before answering:\n{_tail(log)}")
        if time.monotonic() > deadline:
            stop(process)
            raise RuntimeError(f"`{command}` did not answer {url}/health within {seconds:.0f} s:\n{_tail(log)}")
        time.sleep(0.2)  # a poll interval, not a wait for readiness: the deadline above bounds it
    return process


@contextmanager
def serve(
    command: str | Sequence[str],
    url: str,
    *,
    cwd: Path,
    env: Mapping[str, str],
    log: Path,
    seconds: float = START_SECONDS,
) -> Iterator[subprocess.Popen]:
    """:func:`start`, then the block, then :func:`stop`."""
    process = start(command, url, cwd=cwd, env=env, log=log, seconds=seconds)
    try:
        yield process
    finally:
        stop(process)


class ServerExited(RuntimeError):
    """The server exited before it answered (the log is in the message)."""


@contextmanager
def mlflow_server(
    backend_uri: str,
    artifacts_dir: Path,
    *,
    app_name: str | None = None,
    env: Mapping[str, str] | None = None,
    extra_args: Sequence[str] = (),
) -> Iterator[str]:
    """``mlflow server`` on ``backend_uri`` serving artifacts from ``artifacts_dir`` (see the module docstring);
    yields its URL."""
    artifacts_dir = Path(artifacts_dir)
    artifacts_dir.mkdir(parents=True, exist_ok=True)
    environment = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true", **(env or {})}
    environment.pop("MLFLOW_TRACKING_URI", None)
    if app_name == "basic-auth":
        environment.setdefault("MLFLOW_FLASK_SERVER_SECRET_KEY", secrets.token_hex(16))
    mlflow = str(Path(sys.executable).parent / "mlflow")
    workers = [] if "--workers" in extra_args else ["--workers", "1"]  # 2 cores: one worker starts fastest
    for _ in range(ATTEMPTS):
        port = free_port()
        command = [
            mlflow, "server", "--backend-store-uri", backend_uri, "--artifacts-destination", str(artifacts_dir),
            "--host", "127.0.0.1", "--port", str(port), *workers,
            *(["--app-name", app_name] if app_name else []), *extra_args,
        ]  # fmt: skip
        url = f"http://127.0.0.1:{port}"
        log = artifacts_dir.parent / f"mlflow-server-{port}.log"
        try:
            process = start(command, url, cwd=artifacts_dir.parent, env=environment, log=log)
        except ServerExited:
            if _PORT_TAKEN.search(_tail(log)):
                continue  # someone took the port meanwhile
            raise
        try:
            yield url
        finally:
            stop(process)
        return
    raise RuntimeError(f"mlflow server found no free port in {ATTEMPTS} tries")
