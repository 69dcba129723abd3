"""DVC stage ``baselines``: round 0 of both sides, the game's scripted player and enemy.

python pipelines/baselines.py
"""

from __future__ import annotations

import json
import shutil

from adversarial import BASELINE_FILE, SIDES, generation


def main() -> None:
    for side in SIDES:
        folder = generation(side, 0)
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        (folder / BASELINE_FILE).write_text(json.dumps({"side": side, "policy": "the game's scripted side"}) + "\n")
    print(f"Round 0: scripted baselines in {generation('player', 0)} and {generation('enemy', 0)}")


if __name__ == "__main__":
    main()
