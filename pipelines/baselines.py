"""DVC stage ``baselines``: round 0 of both sides (the game's scripted player and enemy), and the cycle's
MLflow parent run that every later stage's run hangs under.

    python pipelines/baselines.py
"""

from __future__ import annotations

import json
import shutil

from adversarial import BASELINE_FILE, CYCLE_FILE, ROOT, SIDES, generation, params

from retro_gamer import store


def main() -> None:
    settings = params()["adversarial"]
    for side in SIDES:
        folder = generation(side, 0)
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        (folder / BASELINE_FILE).write_text(json.dumps({"side": side, "policy": "the game's scripted opponent"}) + "\n")
    cycle: dict[str, str] = {}
    if settings["tracking"]:
        uri = store.resolve_uri(None, ROOT)
        client = store.open_store(uri)
        experiment = store.experiment_id(client, "chase-adversarial", uri)
        run = client.create_run(experiment, run_name="cycle", tags={"role": "cycle"})
        cycle = {"tracking_uri": uri, "experiment_id": experiment, "run_id": run.info.run_id}
        print(f"MLflow parent run {run.info.run_id} in {uri}")
    CYCLE_FILE.write_text(json.dumps(cycle) + "\n")
    print(f"Round 0: scripted baselines in {generation('player', 0)} and {generation('enemy', 0)}")


if __name__ == "__main__":
    main()
