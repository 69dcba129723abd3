"""DVC stage ``evaluate``: a round-robin tournament of every player generation against every enemy
generation (round 0 included), Elo-style ratings, and, when tracking, the cycle's MLflow record.

    python pipelines/evaluate.py

Writes ``metrics/tournament.json`` (ratings and the player-win / catch / coins matrices, for
``dvc metrics show``), ``metrics/ratings.csv`` (rating per round for each side, for ``dvc plots show``)
and ``metrics/matches.json`` (every match in full). On the MLflow parent run: those files, the ratings
as metrics by round, a replay of the final round's match, and the best player and enemy registered
as ``chase-player`` / ``chase-enemy`` with alias ``champion``.
"""

from __future__ import annotations

import csv
import json
from dataclasses import replace
from pathlib import Path

from adversarial import cycle, generation, params, policy_source

from retro_gamer.config import read_config
from retro_gamer.tournament import Tournament, round_robin

METRICS = Path("metrics")


def write_metrics(result: Tournament) -> None:
    METRICS.mkdir(exist_ok=True)
    details = result.to_dict()
    summary = {"ratings": details["ratings"]}
    for metric in ("player_win_rate", "catch_rate", "mean_coins"):
        rows = result.matrix(metric)
        summary[metric] = {p: {e: round(rows[i][j], 4) for j, e in enumerate(result.enemies)}
                           for i, p in enumerate(result.players)}
    (METRICS / "tournament.json").write_text(json.dumps(summary, indent=2) + "\n")
    (METRICS / "matches.json").write_text(json.dumps(details["matches"], indent=2) + "\n")
    by_round: dict[int, dict[str, float]] = {}
    for row in result.rating_rows():
        by_round.setdefault(row["round"], {})[row["side"]] = row["rating"]
    with open(METRICS / "ratings.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["round", "player", "enemy"])
        for number in sorted(by_round):
            writer.writerow([number, by_round[number].get("player"), by_round[number].get("enemy")])


def champion(result: Tournament, side: str) -> str | None:
    """The best-rated trained generation of a side (round 0 is the scripted baseline)."""
    ratings = {name: r for name, r in (result.player_ratings if side == "player" else result.enemy_ratings).items()
               if name != "r0"}
    return max(ratings, key=ratings.get) if ratings else None


def record_in_mlflow(result: Tournament, final_round: int) -> None:
    """Log the tournament on the cycle's parent run and register the champions."""
    from mlflow.entities import Metric

    from retro_gamer import store
    from retro_gamer.mlflow_model import promote
    from retro_gamer.policy import TrainedPolicy
    from retro_gamer.tracking import TRACKING_FILE, log_replay

    parent = cycle()
    client = store.open_store(parent["tracking_uri"])
    run_id = parent["run_id"]
    for name in ("tournament.json", "ratings.csv", "matches.json"):
        client.log_artifact(run_id, str(METRICS / name), "tournament")
    metrics = [Metric(f"{side}_rating", rating, 0, row_round)
               for side, ratings in (("player", result.player_ratings), ("enemy", result.enemy_ratings))
               for name, rating in ratings.items() for row_round in [result.rounds[side][name]]]
    client.log_batch(run_id, metrics=metrics)
    player_dir, enemy_dir = generation("player", final_round), generation("enemy", final_round)
    if final_round > 0:
        match = TrainedPolicy(player_dir)
        match.config = replace(match.config, game=replace(match.config.game, opponent=str(enemy_dir.resolve())))
        log_replay(client, run_id, match, f"final_match_r{final_round}", seed=0)
    for side in ("player", "enemy"):
        best = champion(result, side)
        if best is None:
            continue
        tracked = json.loads((generation(side, int(best[1:])) / TRACKING_FILE).read_text())
        model_uri = client.get_run(tracked["run_id"]).data.tags["policy_model_uri"]
        print(promote(model_uri, f"chase-{side}", "champion", parent["tracking_uri"]))
        client.set_tag(run_id, f"champion_{side}", best)
    client.set_terminated(run_id, "FINISHED")
    print(f"Tournament logged on MLflow parent run {run_id}: {store.runs_url(parent['tracking_uri'], parent['experiment_id'], run_id)}")


def main() -> None:
    settings = params()
    numbers = [0, *sorted(entry["round"] for entry in settings["rounds"].values())]
    players = {f"r{n}": policy_source(generation("player", n)) for n in numbers}
    enemies = {f"r{n}": policy_source(generation("enemy", n)) for n in numbers}
    final = numbers[-1]
    max_turns = read_config(generation("player", final)).game.max_turns if final else 200
    result = round_robin(players, enemies, episodes=settings["adversarial"]["tournament"]["episodes"],
                         seed=settings["adversarial"]["seed"], max_turns=max_turns)
    write_metrics(result)
    for side, ratings in (("player", result.player_ratings), ("enemy", result.enemy_ratings)):
        print(f"{side:6} ratings: " + ", ".join(f"{name} {rating:.0f}" for name, rating in ratings.items()))
    if cycle():
        record_in_mlflow(result, final)


if __name__ == "__main__":
    main()
