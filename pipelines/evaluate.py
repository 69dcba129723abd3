"""DVC stage ``evaluate``: a round-robin tournament of every player generation against every enemy generation
(round 0 included), judged by the game's own outcome (:func:`retro_gamer.examples.chase.outcome`), with
ratings, intervals, exploitability and gates; when tracking, the experiment's MLflow record.

    python pipelines/evaluate.py

Writes, for DVC:
* ``metrics/gates.json`` (metrics): per side, whether the final generation passes its **gate** (its mean score
  over every opponent generation is at least each earlier generation's minus ``adversarial.tournament.tolerance``),
  its rating rise from round 1, whether it rates above the side's scripted round 0, the largest fall of a
  generation's score against the scripted opponent below the previous generation's, and its exploitability
  (its worst score against any opponent generation). ``dvc exp show`` lists them.
* ``metrics/tournament.json`` (metrics): ratings and the player's score by pairing.
* ``metrics/ratings.csv`` (plots): the rating of each round's generation, both sides.
* ``metrics/matches.json``: everything the tournament found (:meth:`Tournament.to_dict`), intervals included.
* ``metrics/payoff.png``: the player x enemy score matrix as a heat map.

On the MLflow parent run: those files, metrics by round (step = round: ``player_rating``, ``enemy_rating``,
``player_score_vs_scripted``, ``enemy_score_vs_scripted``) and at the final round (``player_gate``,
``enemy_gate`` as 1/0, ``player_exploitability``, ``enemy_exploitability``), replays of the final player
against the final enemy and of each final generation against the other side's script. A side's final
generation is registered as ``chase-player`` / ``chase-enemy`` and given the alias ``champion`` only when it
passes its gate.
"""

from __future__ import annotations

import csv
import json
from dataclasses import replace
from itertools import pairwise
from pathlib import Path
from typing import Any

from adversarial import SIDES, generation, params, parent_run, policy_source, round_numbers

from retro_gamer.adversarial.tournament import Tournament, round_robin
from retro_gamer.examples.chase import TURN_LIMIT
from retro_gamer.files import atomic_write_bytes

METRICS = Path("metrics")


def side_verdicts(result: Tournament, verdicts: dict[str, Any], final: int) -> dict[str, dict[str, Any]]:
    """What ``metrics/gates.json`` holds for each side (see the module docstring), from the tournament's verdicts."""
    out = {}
    for side in SIDES:
        ratings = result.ratings[side]
        rows = {row["generation"]: row for row in verdicts["generations"][side]}
        trained = [f"r{n}" for n in sorted(result.rounds[side].values()) if n > 0]
        scores = [rows[name]["score_vs_scripted"] for name in trained]
        drops = [before - after for before, after in pairwise(scores)]
        worst = verdicts["exploitability"][side]
        out[side] = {
            "gate": bool(verdicts["gate"][side]["passed"]),
            "rating_rise": round(ratings[f"r{final}"] - ratings["r1"], 1) if final > 0 else 0.0,
            "final_rating": round(ratings[f"r{final}"], 1),
            "scripted_rating": round(ratings["r0"], 1),
            "final_above_scripted": bool(ratings[f"r{final}"] > ratings["r0"]),
            "final_score_vs_scripted": round(scores[-1], 4) if scores else None,
            "largest_drop_vs_scripted": round(max([0.0, *drops]), 4),
            "exploitability": round(worst["worst_score"], 4),
            "exploited_by": worst["against"],
        }
    return out


def write_metrics(result: Tournament, gates: dict[str, Any]) -> None:
    METRICS.mkdir(exist_ok=True)
    score = result.matrix("score")
    summary = {
        "ratings": {side: {name: round(r, 1) for name, r in result.ratings[side].items()} for side in SIDES},
        "player_score": {
            p: {e: round(score[i][j], 4) for j, e in enumerate(result.enemies)} for i, p in enumerate(result.players)
        },
    }
    for name, data in (("tournament.json", summary), ("gates.json", gates)):
        atomic_write_bytes(METRICS / name, (json.dumps(data, indent=2) + "\n").encode())
    result.to_json(METRICS / "matches.json")
    result.write_heatmap(METRICS / "payoff.png")
    by_round: dict[int, dict[str, float]] = {}
    for row in result.rating_rows():
        by_round.setdefault(row["round"], {})[row["side"]] = row["rating"]
    with open(METRICS / "ratings.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["round", "player", "enemy"])
        for number in sorted(by_round):
            writer.writerow([number, by_round[number].get("player"), by_round[number].get("enemy")])


def replays(client: Any, run_id: str, final: int) -> None:
    """The final player against the final enemy, and each final generation against the other side's script."""
    from retro_gamer.policy import TrainedPolicy
    from retro_gamer.tracking.mlflow_run import log_replay

    def against(side: str, opponent: Path | None) -> TrainedPolicy:
        policy = TrainedPolicy(generation(side, final))
        source = None if opponent is None else str(opponent.resolve())
        policy.config = replace(policy.config, game=replace(policy.config.game, opponent=source))
        return policy

    log_replay(client, run_id, against("player", generation("enemy", final)), f"final_match_r{final}", seed=0)
    log_replay(client, run_id, against("player", None), "final_player_vs_scripted_enemy", seed=0)
    log_replay(client, run_id, against("enemy", None), "scripted_player_vs_final_enemy", seed=0)


def record_in_mlflow(
    settings: dict[str, Any], result: Tournament, verdicts: dict[str, Any], gates: dict[str, Any], final: int
) -> None:
    """Log the tournament on the experiment's parent run; promote the final generations that pass their gates."""
    from mlflow.entities import Metric

    from retro_gamer.tracking import store
    from retro_gamer.tracking.mlflow_model import promote
    from retro_gamer.tracking.mlflow_run import TRACKING_FILE

    parent = parent_run(settings)
    client = store.open_store(parent["tracking_uri"])
    run_id = parent["run_id"]
    for name in ("tournament.json", "gates.json", "ratings.csv", "matches.json", "payoff.png"):
        client.log_artifact(run_id, str(METRICS / name), "tournament")
    metrics = []
    for side in SIDES:
        for row in verdicts["generations"][side]:
            step = result.rounds[side][row["generation"]]
            metrics.append(Metric(f"{side}_rating", row["rating"], 0, step))
            if row["score_vs_scripted"] is not None:
                metrics.append(Metric(f"{side}_score_vs_scripted", row["score_vs_scripted"], 0, step))
        metrics += [
            Metric(f"{side}_gate", float(gates[side]["gate"]), 0, final),
            Metric(f"{side}_exploitability", gates[side]["exploitability"], 0, final),
            Metric(f"{side}_rating_rise", gates[side]["rating_rise"], 0, final),
        ]
    client.log_batch(run_id, metrics=metrics)
    if final > 0:
        replays(client, run_id, final)
        for side in SIDES:
            if not gates[side]["gate"]:
                print(f"{side}_r{final} did not pass its gate: the {side} champion stays where it was.")
                continue
            tracked = json.loads((generation(side, final) / TRACKING_FILE).read_text())
            model_uri = client.get_run(tracked["run_id"]).data.tags["policy_model_uri"]
            print(promote(model_uri, f"chase-{side}", "champion", parent["tracking_uri"]))
            client.set_tag(run_id, f"champion_{side}", f"r{final}")
    client.set_terminated(run_id, "FINISHED")
    print(
        f"Tournament logged on MLflow parent run {run_id}: "
        f"{store.runs_url(parent['tracking_uri'], parent['experiment_id'], run_id)}"
    )


def main() -> None:
    settings = params()
    numbers = round_numbers(settings)
    players = {f"r{n}": policy_source(generation("player", n)) for n in numbers}
    enemies = {f"r{n}": policy_source(generation("enemy", n)) for n in numbers}
    final = numbers[-1]
    tournament = settings["adversarial"]["tournament"]
    result = round_robin(
        players,
        enemies,
        episodes=tournament["episodes"],
        seed=settings["adversarial"]["seed"],
        max_turns=TURN_LIMIT,
        workers=tournament["workers"],
        tolerance=tournament["tolerance"],
    )
    verdicts = result.verdicts()
    gates = side_verdicts(result, verdicts, final)
    write_metrics(result, gates)
    for side in SIDES:
        g = gates[side]
        print(
            f"{side:6} ratings: "
            + ", ".join(f"{n} {r:.0f}" for n, r in result.ratings[side].items())
            + f" | gate {'passed' if g['gate'] else 'FAILED'}, rise r1->r{final} {g['rating_rise']:+.0f}, "
            f"worst score {g['exploitability']:.2f} (against {g['exploited_by']})"
        )
    if settings["adversarial"]["tracking"]:
        record_in_mlflow(settings, result, verdicts, gates, final)


if __name__ == "__main__":
    main()
