"""What tracking costs per run in each MLflow store: the default SQLite file, PostgreSQL, and a server on PostgreSQL.

    python benchmarks/tracking_stores.py [--runs 20] [--episodes 200] [--checkpoint-every 20]

Each run does what a retro-gamer run sends its store (retro_gamer.tracking.mlflow_run.MlflowTracking), with the
same calls: create the run with its tags, log every parameter of a real snake config and ``config.toml``; log the
metrics of ``--episodes`` episodes (3 a episode) and their checkpoints (5 a checkpoint) in one ``log_batch`` per
checkpoint, as the callback's sender does; log the policy model of a small trained snake run (the default
network) as the callback does at the end, then the run's files, and end the run. Each phase is timed on its own.

The stores: (a) ``sqlite:///…/mlruns/mlflow.db`` with artifacts in a folder beside it, a project's default;
(b) the same calls straight to a PostgreSQL database (``postgresql+psycopg2://``), artifacts in a local folder;
(c) an ``mlflow server`` on another PostgreSQL database, over HTTP, serving the artifacts
(``--artifacts-destination``), as docs/team-server.rst sets it up. PostgreSQL is a private cluster on this
machine (tests/servers.py), so (b) and (c) have no network between them: the figures are what the database and
the HTTP layer cost, not a network's latency. The first run of each store is a warm-up (connections, imports) and
is not counted; the one-off cost of opening a new store (creating its tables) is reported on its own.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from results import REPO, write_results  # this folder's

sys.path.insert(0, str(REPO / "tests"))  # the private PostgreSQL cluster and mlflow server that the tests use
from servers import create_database, mlflow_server, postgres_cluster, postgres_missing_reason  # noqa: E402

PHASES = ("start", "metrics", "model", "end")
STORES = {
    "sqlite": "SQLite file (the default)",
    "postgres": "PostgreSQL, direct",
    "server": "mlflow server on PostgreSQL, HTTP",
}


def trained_run(folder: Path) -> Path:
    """A snake run directory with one checkpoint of the default network (its size is what a model upload costs);
    learning is skipped (warm-up never ends), since only the files matter here."""
    from retro_gamer.config.compose import compose_app, run_config_from_hydra
    from retro_gamer.launch import train_run
    from retro_gamer.run.directory import prepare_run

    run = folder / "runs" / "snake"
    overrides = ["+game=snake", "trainer.episodes=2", "trainer.checkpoint_every=2", "trainer.warmup_steps=1000000000"]
    cfg = run_config_from_hydra(compose_app([*overrides, "tracking.enabled=false", "trainer.threads=1"]), "snake")
    train_run(run, prepare_run(cfg, run, "snake"), progress=False)
    return run


@contextmanager
def stores(folder: Path) -> Iterator[dict[str, tuple[str, str | None]]]:
    """Each store's tracking URI and the artifact location of its experiment (``None``: the server's)."""
    reason = postgres_missing_reason()
    if reason:
        sys.exit(f"tracking_stores.py needs PostgreSQL: {reason}")
    with ExitStack() as stack:
        base = stack.enter_context(postgres_cluster(folder / "postgres"))
        server = stack.enter_context(mlflow_server(create_database(base, "served"), folder / "server" / "artifacts"))
        yield {
            "sqlite": (f"sqlite:///{folder}/mlruns/mlflow.db", (folder / "mlruns" / "artifacts").as_uri()),
            "postgres": (create_database(base, "direct"), (folder / "postgres-artifacts").as_uri()),
            "server": (server, None),
        }


def one_run(client, experiment: str, run_dir: Path, episodes: int, every: int) -> dict[str, float]:
    """One run's calls, as MlflowTracking makes them; seconds per phase."""
    from mlflow.entities import Metric, Param

    from retro_gamer.config.schema import CONFIG_FILE, read_config
    from retro_gamer.run.checkpoint import latest_checkpoint
    from retro_gamer.tracking.mlflow_model import log_policy_model
    from retro_gamer.tracking.mlflow_run import BATCH, flatten_config

    seconds, clock = {}, time.perf_counter()
    tags = {"game": "snake", "role": "player", "device": "cpu", "run_dir": str(run_dir)}
    run_id = client.create_run(experiment, run_name="snake", tags=tags).info.run_id
    params = [Param(k, v) for k, v in flatten_config(read_config(run_dir)).items()]
    for i in range(0, len(params), 100):
        client.log_batch(run_id, params=params[i : i + 100])
    client.log_artifact(run_id, str(run_dir / CONFIG_FILE))
    seconds["start"], clock = time.perf_counter() - clock, time.perf_counter()
    now, batch = int(time.time() * 1000), []
    for episode in range(1, episodes + 1):
        batch += [Metric(k, v, now, episode) for k, v in (("episode_return", 1.0), ("episode_length", 50.0))]
        batch.append(Metric("epsilon", 0.5, now, episode))
        if episode % every == 0:
            batch += [Metric(k, 1.0, now, episode) for k in ("window_mean_return", "window_mean_length", "loss")]
            batch += [Metric(k, 1e3, now, episode) for k in ("env_steps_per_s", "env_steps")]
            for i in range(0, len(batch), BATCH):
                client.log_batch(run_id, metrics=batch[i : i + BATCH])
            batch = []
    seconds["metrics"], clock = time.perf_counter() - clock, time.perf_counter()
    checkpoint = latest_checkpoint(run_dir)
    assert checkpoint is not None, run_dir
    uri = log_policy_model(client, run_id, run_dir, checkpoint)
    client.set_tag(run_id, "policy_model_uri", uri)
    seconds["model"], clock = time.perf_counter() - clock, time.perf_counter()
    for name in ("training.log", "metrics.json"):
        client.log_artifact(run_id, str(run_dir / name))
    client.set_terminated(run_id, "FINISHED")
    seconds["end"] = time.perf_counter() - clock
    return seconds


def measure(uri: str, location: str | None, run_dir: Path, runs: int, episodes: int, every: int) -> dict:
    from retro_gamer.tracking import store

    clock = time.perf_counter()
    client = store.open_store(uri)  # a new store: its tables are created here
    experiment = client.create_experiment("snake", artifact_location=location, tags=dict([store.EXPERIMENT_KIND]))
    opening = time.perf_counter() - clock
    one_run(client, experiment, run_dir, episodes, every)  # warm-up
    timed = [one_run(client, experiment, run_dir, episodes, every) for _ in range(runs)]
    totals = [sum(t.values()) for t in timed]
    return {
        "open_store_s": round(opening, 3),
        "run_median_s": round(statistics.median(totals), 4),
        "run_mean_s": round(statistics.mean(totals), 4),
        "run_stdev_s": round(statistics.stdev(totals), 4) if len(totals) > 1 else 0.0,
        **{f"{phase}_median_s": round(statistics.median(t[phase] for t in timed), 4) for phase in PHASES},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=20, help="timed runs per store (after one warm-up)")
    parser.add_argument("--episodes", type=int, default=200, help="episodes of metrics per run (3 metrics each)")
    parser.add_argument("--checkpoint-every", type=int, default=20, help="episodes per checkpoint and log_batch")
    args = parser.parse_args()
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")  # MLflow's "View run" line per HTTP run
    import mlflow

    figures: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="tracking-stores-") as tmp:
        run_dir = trained_run(Path(tmp))
        with stores(Path(tmp)) as found:
            for name, (uri, location) in found.items():
                figures[name] = measure(uri, location, run_dir, args.runs, args.episodes, args.checkpoint_every)
    base = figures["sqlite"]["run_median_s"]
    for row in figures.values():
        row["vs_sqlite"] = round(row["run_median_s"] / base, 2)
    metrics = args.episodes * 3 + (args.episodes // args.checkpoint_every) * 5
    print(f"Per run: {metrics} metrics in {args.episodes // args.checkpoint_every} batches, the params of a snake")
    print(f"config, a policy model and 3 files; median of {args.runs} runs (after a warm-up), seconds")
    print(f"{'store':36} {'run':>7} {'± sd':>6} {'start':>7} {'metrics':>8} {'model':>7} {'end':>7} {'×SQLite':>8}")
    for name, row in figures.items():
        phases = " ".join(f"{row[f'{p}_median_s']:>{w}.3f}" for p, w in zip(PHASES, (7, 8, 7, 7)))
        print(
            f"{STORES[name]:36} {row['run_median_s']:7.3f} {row['run_stdev_s']:6.3f} {phases} {row['vs_sqlite']:8.2f}"
        )
    print(
        "opening a new store, creating its tables (the server's were made when it started): "
        + ", ".join(f"{n} {r['open_store_s']:.1f} s" for n, r in figures.items())
    )
    path = write_results(
        "tracking_stores",
        settings={
            "runs": args.runs,
            "episodes": args.episodes,
            "checkpoint_every": args.checkpoint_every,
            "metrics_per_run": metrics,
            "mlflow": mlflow.__version__,
            "server_workers": 1,
            "postgres": "private cluster on this machine (tests/servers.py), over 127.0.0.1",
        },
        figures=figures,
        seeds=[],  # nothing random is measured
    )
    print(f"Wrote {path}")


if __name__ == "__main__":
    main()
