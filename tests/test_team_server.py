"""docs/team-server.rst, run: the page's own commands on a private PostgreSQL cluster and real ``mlflow server``s.

tests/test_site.py leaves this page out (``RUN_ELSEWHERE``) because its ``mlflow server`` commands serve until
stopped. Here its blocks run in order as that harness runs a page (its ``page_blocks``, ``console_commands``,
``tiny`` budgets and ``page_env``), with only what points the page at this machine changed:

* The page's PostgreSQL (``sudo -u postgres psql``, ``localhost:5432``) is a private cluster (tests/servers.py),
  and ``/srv/mlflow`` is a folder of the test: the server machine's.
* Port 5000 (``127.0.0.1:5000``, ``mlflow.example.org:5000``) is a free port on 127.0.0.1, and ``--host 0.0.0.0``
  is ``--host 127.0.0.1``: a test never listens beyond this machine. A server runs one worker (``--workers 1``),
  which starts in a third of the time of MLflow's four on 2 cores.
* An ``mlflow server`` command runs in the background, in the server's folder, from when ``/health`` answers
  until the page's next server starts (the page stops the first one) or the page ends.
* The blocks after each server start run in a new, empty client folder, as on another machine: a client and
  the server share nothing but HTTP.
* A text block whose first line is ``# PATH`` is saved as that file (``basic_auth.ini``); other text blocks are
  shown, not run. A Python block whose first line is ``# NAME.py`` is saved, others run, as on every page.
* The ``dvc`` command needs the pipeline: it runs in a copy of it (one round, tiny budgets), in its own test.

Then the test checks what the page promises: the run's files are on the server, not in the client's folder; its
policy loads by ``runs:/RUN_ID/policy`` from yet another folder; the basic-auth server refuses a request without
credentials (401) or with a wrong password, accepts one with them, and refuses an address it was not told (403).
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import urllib.error
import urllib.request
from base64 import b64encode
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import REPO
from servers import create_database, free_port, mlflow_server, postgres_bin, postgres_cluster, postgres_missing_reason
from servers import start as start_server
from servers import stop as stop_server
from test_site import Block, console_commands, page_blocks, page_env, tiny

PAGE = REPO / "docs" / "team-server.rst"
BIN = Path(sys.executable).parent
ALICE = ("alice", "alice-password-1")  # an account the page creates


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A private PostgreSQL cluster for this module's tests; its base URL."""
    reason = postgres_missing_reason()
    if reason:
        pytest.skip(reason)
    with postgres_cluster(tmp_path_factory.mktemp("postgres")) as base:
        yield base


def on_this_machine(text: str, base: str, port: int, server_dir: Path) -> str:
    """A block's text pointed at the private cluster, the test's port and the server's folder (module docstring)."""
    psql = f"{postgres_bin()}/psql {base}/postgres"
    text = text.replace("sudo -u postgres psql", psql).replace("localhost:5432", base.rsplit("@", 1)[1])
    text = re.sub(r"\b(127\.0\.0\.1|mlflow\.example\.org):5000\b", f"127.0.0.1:{port}", text)
    text = text.replace("--port 5000", f"--port {port} --workers 1")  # one worker starts fastest on 2 cores
    text = text.replace("--host 0.0.0.0", "--host 127.0.0.1")
    return text.replace("/srv/mlflow", str(server_dir))


def program(command: str) -> list[str]:
    """A command's words after its ``VAR=value`` prefixes."""
    words = shlex.split(command, comments=True)
    while words and re.match(r"^\w+=", words[0]):
        words.pop(0)
    return words


def dvc_commands(blocks: list[Block]) -> list[str]:
    return [
        command
        for block in blocks
        if block.language == "console"
        for command, _ in console_commands(block.code)
        if program(command)[:1] == ["dvc"]
    ]


def test_the_helpers_serve_mlflow_with_basic_auth_on_a_new_database(cluster: str, tmp_path: Path):
    """tests/servers.py as the tune tests use it: a database of the cluster, a basic-auth server on it."""
    backend = create_database(cluster, "helpers")
    assert backend.startswith("postgresql+psycopg2://postgres@127.0.0.1:") and backend.endswith("/helpers")
    admin = ("admin", "an-admin-password")
    env = {"MLFLOW_AUTH_ADMIN_PASSWORD": admin[1], "MLFLOW_AUTH_CONFIG_PATH": str(tmp_path / "basic_auth.ini")}
    (tmp_path / "basic_auth.ini").write_text(
        f"[mlflow]\ndefault_permission = READ\ndatabase_uri = {create_database(cluster, 'helpers_auth')}\n"
        "admin_username = admin\n"
    )
    with mlflow_server(backend, tmp_path / "artifacts", app_name="basic-auth", env=env) as url:
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+", url)
        assert _status(f"{url}/api/2.0/mlflow/experiments/search?max_results=1") == 401
        assert _status(f"{url}/api/2.0/mlflow/experiments/search?max_results=1", admin) == 200
    assert _status(f"{url}/health") == 0  # stopped: nothing answers


@pytest.mark.slow
def test_the_page_runs_on_postgres_and_its_servers_keep_their_promises(
    cluster: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    blocks = page_blocks(PAGE)
    assert all(block.exempt is None for block in blocks), "every block of this page runs here"
    assert len(dvc_commands(blocks)) == 1  # test_dvc_exp_run_records_the_pipeline_on_the_server runs it
    port, server_dir = free_port(), tmp_path / "srv-mlflow"
    server_dir.mkdir()
    env = {**page_env(), "MLFLOW_DISABLE_TELEMETRY": "true"}
    url = f"http://127.0.0.1:{port}"
    clients: list[Path] = [tmp_path / "client-0"]
    clients[0].mkdir()
    outputs: dict[str, str] = {}
    server: subprocess.Popen | None = None
    try:
        for block in blocks:
            code = on_this_machine(block.code, cluster, port, server_dir)
            first, cwd = code.splitlines()[0], clients[-1]
            if block.language == "text" and re.fullmatch(r"# /[\w./-]+", first):
                Path(first[2:]).write_text(code)
            elif block.language == "python" and re.fullmatch(r"# [\w./-]+\.py", first):
                (cwd / first[2:]).write_text(code)
            elif block.language == "python":
                done = subprocess.run(
                    [str(BIN / "python"), "-c", code], cwd=cwd, env=env, capture_output=True, text=True, timeout=600
                )
                assert done.returncode == 0, f"{block.where()}:\n{done.stdout[-3000:]}{done.stderr[-3000:]}"
            elif block.language == "console":
                for command, _ in console_commands(code):
                    if program(command)[:1] == ["dvc"]:
                        continue
                    if program(command)[:2] == ["mlflow", "server"]:
                        if server is not None:
                            stop_server(server)
                        log = server_dir / f"server-{len(clients)}.log"
                        server = start_server(command, url, cwd=server_dir, env=env, log=log)
                        clients.append(tmp_path / f"client-{len(clients)}")
                        clients[-1].mkdir()
                        continue
                    run = tiny(command)
                    done = subprocess.run(
                        ["bash", "-c", run], cwd=clients[-1], env=env, stdin=subprocess.DEVNULL,
                        capture_output=True, text=True, timeout=600,
                    )  # fmt: skip
                    output = done.stdout + done.stderr
                    assert done.returncode == 0, f"{block.where()}: `{run}` exited {done.returncode}:\n{output[-4000:]}"
                    outputs[command] = output
        assert server is not None and len(clients) == 3  # the page started two servers, the second with basic-auth

        # The first server's run: its files went to the server, nothing to the client's folder.
        [trained] = [out for command, out in outputs.items() if command.startswith("retro-gamer train")]
        found = re.search(rf"MLflow run (\w+) \(FINISHED\) in {re.escape(url)}\n", trained)
        assert found, trained
        run_id = found[1]
        assert not (clients[1] / "mlruns").exists()
        assert list((server_dir / "artifacts").glob(f"*/{run_id}/artifacts/config.toml"))

        # The second server asks who is there; alice, an account the page made, reads what was recorded before.
        assert _status(f"{url}/api/2.0/mlflow/experiments/search?max_results=5") == 401
        assert _status(f"{url}/api/2.0/mlflow/experiments/search?max_results=5", ("alice", "not-her-password")) == 401
        assert _status(f"{url}/api/2.0/mlflow/experiments/search?max_results=5", ALICE) == 200
        assert _status(f"{url}/api/2.0/mlflow/experiments/search?max_results=5", ALICE, host="evil.example") == 403
        monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", ALICE[0])
        monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", ALICE[1])
        elsewhere = tmp_path / "elsewhere"
        elsewhere.mkdir()
        monkeypatch.chdir(elsewhere)
        _the_policy_comes_through_the_server(url, run_id, clients[1] / "runs" / "snake", tmp_path)
        from mlflow import MlflowClient

        client = MlflowClient(url)
        snake = client.get_experiment_by_name("snake")
        assert snake is not None
        runs = client.search_runs([snake.experiment_id])
        assert len(runs) == 2 and {r.info.status for r in runs} == {"FINISHED"}  # before basic-auth, and alice's
        assert client.get_model_version_by_alias("snake-policy", "newest").version == "1"
        assert not list(clients[2].rglob("mlruns"))
    finally:
        if server is not None:
            stop_server(server)


def _the_policy_comes_through_the_server(url: str, run_id: str, trained: Path, tmp_path: Path) -> None:
    """``runs:/RUN_ID/policy`` loads the same weights as the run directory that trained them, downloaded from the
    server into a folder of its own (the current folder is neither the client's nor the server's)."""
    import torch

    from retro_gamer.policy import TrainedPolicy
    from retro_gamer.run.checkpoint import latest_checkpoint

    ai = TrainedPolicy(f"runs:/{run_id}/policy", tracking_uri=url)
    assert tmp_path not in ai.run_dir.resolve().parents  # a download, not a path into the client or the server
    checkpoint = latest_checkpoint(trained)
    assert checkpoint is not None
    local = torch.load(checkpoint, map_location="cpu", weights_only=True)["weights"]
    assert all(torch.equal(local[k], v) for k, v in ai.network.state_dict().items())


def _status(url: str, credentials: tuple[str, str] | None = None, host: str | None = None) -> int:
    request = urllib.request.Request(url)
    if credentials:
        request.add_header("Authorization", "Basic " + b64encode(":".join(credentials).encode()).decode())
    if host:
        request.add_header("Host", host)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code
    except urllib.error.URLError:
        return 0  # nothing listens


@pytest.mark.slow
def test_dvc_exp_run_records_the_pipeline_on_the_server(cluster: str, tmp_path: Path):
    """The page's ``dvc exp run`` line, in a copy of the pipeline (one round, tiny budgets, tracking on as in
    params.yaml), against a server on PostgreSQL: every run lands on the server, none in the repository."""
    from mlflow import MlflowClient
    from test_pipeline import make_repo

    [command] = dvc_commands(page_blocks(PAGE))
    repo = make_repo(tmp_path / "repo", tracking=True, rounds={"r1": {"round": 1, "previous": 0}})
    backend = create_database(cluster, "pipeline")
    with mlflow_server(backend, tmp_path / "server" / "artifacts") as url:
        port = int(url.rsplit(":", 1)[1])
        run = on_this_machine(command, cluster, port, tmp_path / "server")
        done = subprocess.run(
            ["bash", "-c", run], cwd=repo, env={**page_env(), "MLFLOW_DISABLE_TELEMETRY": "true"},
            stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=900,
        )  # fmt: skip
        assert done.returncode == 0, f"`{run}`:\n{done.stdout[-4000:]}{done.stderr[-4000:]}"
        client = MlflowClient(url)
        experiment = client.get_experiment_by_name("chase-adversarial")
        assert experiment is not None
        runs = {r.info.run_name: r for r in client.search_runs([experiment.experiment_id])}
        [parent] = [r for r in runs.values() if r.data.tags.get("role") == "cycle"]
        assert parent.info.status == "FINISHED" and {"player_r1", "enemy_r1"} <= set(runs)
        assert runs["player_r1"].data.tags["mlflow.parentRunId"] == parent.info.run_id
        assert "tournament/tournament.json" in {a.path for a in client.list_artifacts(parent.info.run_id, "tournament")}
    assert not (repo / "mlruns").exists()
    assert os.listdir(tmp_path / "server" / "artifacts")
