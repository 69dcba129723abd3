"""Screenshots of MLflow for docs/tracking-with-mlflow.rst, taken in a real browser from a real store.

    python docs/_tools/screenshots.py        # about two minutes on two cores

Trains three small snake runs in a temporary project with the commands the page shows (a budget of a few
checkpoints instead of the page's), serves their store with ``mlflow server`` on 127.0.0.1, and drives Debian's
Chromium, headless, through its DevTools protocol (a websocket; aiohttp's client, installed with the [dvc]
extra): a plain ``chromium --screenshot`` cannot close MLflow's assistant panel, add the columns worth seeing or
open a replay. Writes docs/_static/mlflow-runs.png, mlflow-compare.png and mlflow-replay.png, 1200x800 each.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import aiohttp

STATIC = Path(__file__).resolve().parents[1] / "_static"
BIN = Path(sys.executable).parent
WIDTH, HEIGHT = 1200, 800
BUDGET = ["trainer.total_env_steps=40000", "trainer.checkpoint_every=25"]


def sh(*args: str, cwd: Path) -> None:
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    env.pop("MLFLOW_TRACKING_URI", None)
    subprocess.run(list(args), cwd=cwd, env=env, check=True)


def train_runs(project: Path) -> None:
    """A run with the default learning rate and a sweep of two others, tracked in ``project/mlruns``."""
    (project / "pyproject.toml").write_text('[project]\nname = "snake-lab"\nversion = "0.1"\n')
    sh("retro-gamer", "create", "--game", "snake", "--output", "runs/snake", *BUDGET, cwd=project)
    sh("retro-gamer", "train", "runs/snake", cwd=project)
    sweep = ["python", "-m", "retro_gamer.train", "+game=snake", "run_dir=runs/lr-sweep", *BUDGET]
    sh(*sweep, "-m", "trainer.lr=0.001,0.0002", cwd=project)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def serve(project: Path, port: int) -> subprocess.Popen:
    """``mlflow server`` on the project's store, once it answers."""
    db = project / "mlruns" / "mlflow.db"
    server = subprocess.Popen(
        [str(BIN / "mlflow"), "server", "--backend-store-uri", f"sqlite:///{db}", "--host", "127.0.0.1"]
        + ["--port", str(port), "--workers", "1"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2):
                return server
        except OSError:
            time.sleep(0.5)
    server.kill()
    raise RuntimeError("mlflow server did not answer within 2 minutes")


class Browser:
    """Headless Chromium, driven over the DevTools protocol."""

    def __init__(self, profile: Path):
        self.profile = profile
        self.process = subprocess.Popen(
            [shutil.which("chromium") or "chromium", "--headless", "--no-sandbox", "--disable-gpu"]
            + ["--hide-scrollbars", f"--user-data-dir={profile}", "--remote-debugging-port=0"]
            + [f"--window-size={WIDTH},{HEIGHT}", "about:blank"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.calls = 0

    async def __aenter__(self) -> Browser:
        port_file = self.profile / "DevToolsActivePort"  # Chromium writes the port it chose here
        for _ in range(300):
            if port_file.is_file() and port_file.read_text().strip():
                break
            await asyncio.sleep(0.1)
        port = port_file.read_text().split()[0]
        self.session = aiohttp.ClientSession()
        async with self.session.get(f"http://127.0.0.1:{port}/json") as answer:
            page = next(target for target in await answer.json() if target["type"] == "page")
        self.socket = await self.session.ws_connect(page["webSocketDebuggerUrl"], max_msg_size=0)
        await self.call(
            "Emulation.setDeviceMetricsOverride", width=WIDTH, height=HEIGHT, deviceScaleFactor=1, mobile=False
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.socket.close()
        await self.session.close()
        self.process.terminate()
        self.process.wait(timeout=30)

    async def call(self, method: str, **params: Any) -> dict[str, Any]:
        self.calls += 1
        await self.socket.send_json({"id": self.calls, "method": method, "params": params})
        while True:  # events arrive between the answers; skip them
            message = await self.socket.receive_json()
            if message.get("id") == self.calls:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message["result"]

    async def js(self, expression: str) -> Any:
        answer = await self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        return answer["result"].get("value")

    async def until(self, condition: str) -> None:
        """Wait until the JavaScript ``condition`` holds (the page draws as its data arrives)."""
        deadline = time.monotonic() + 60
        while not await self.js(condition):
            if time.monotonic() > deadline:
                raise TimeoutError(condition)
            await asyncio.sleep(0.3)

    async def open(self, url: str, ready: str) -> None:
        """Go to ``url`` and wait until the JavaScript condition ``ready`` holds."""
        await self.call("Page.navigate", url=url)
        await self.until(ready)
        await asyncio.sleep(1.5)  # charts and fonts settle

    async def screenshot(self, path: Path) -> None:
        answer = await self.call("Page.captureScreenshot", format="png")
        path.write_bytes(base64.b64decode(answer["data"]))
        print(f"Wrote {path}")


def _click_text(selector: str, text: str) -> str:
    return f"[...document.querySelectorAll({selector!r})].find(e => e.innerText.trim() == {text!r}).click()"


async def take(base: str, runs: list[str], replay: str, profile: Path) -> None:
    ml = "workflowType=machine_learning"
    async with Browser(profile) as browser:
        await browser.open(f"{base}/#/experiments/1/runs?{ml}", "document.body.innerText.includes('matching runs')")
        await browser.js("document.querySelector('[data-component-id=\"mlflow.assistant.chat_panel.close\"]')?.click()")
        await browser.js(_click_text("button", "Columns"))
        # the table draws only the columns that fit: drop three empty ones for the two worth seeing
        for column in ("Dataset", "Source", "Models", "window_mean_return", "trainer.lr"):
            node = f"[...document.querySelectorAll('.du-bois-light-tree-title')].find(e => e.innerText == {column!r})"
            box = f"{node}?.closest('.du-bois-light-tree-treenode').querySelector('.du-bois-light-tree-checkbox')"
            is_checked = f"{box}.classList.contains('du-bois-light-tree-checkbox-checked')"
            await browser.until(f"!!{box}")
            was = await browser.js(is_checked)
            await browser.js(f"{box}.click()")
            await browser.until(f"{is_checked} != {str(was).lower()}")
        await browser.call(
            "Input.dispatchKeyEvent", type="keyDown", key="Escape", code="Escape", windowsVirtualKeyCode=27
        )
        await asyncio.sleep(1)
        await browser.screenshot(STATIC / "mlflow-runs.png")

        ids, experiments = urllib.parse.quote(json.dumps(runs)), urllib.parse.quote(json.dumps(["1"]))
        await browser.open(
            f"{base}/#/compare-runs?runs={ids}&experiments={experiments}&{ml}",
            "document.body.innerText.includes('Parallel Coordinates')",
        )
        await browser.screenshot(STATIC / "mlflow-compare.png")

        await browser.open(
            f"{base}/#/experiments/1/runs/{runs[0]}/artifacts/replays/{replay}?{ml}",
            f"document.body.innerText.includes('replays/{replay}')",
        )
        await asyncio.sleep(3)  # the replay plays in its frame; let it get going
        await browser.screenshot(STATIC / "mlflow-replay.png")


def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        project = Path(folder) / "snake-lab"
        project.mkdir()
        train_runs(project)
        snake = json.loads((project / "runs" / "snake" / "tracking.json").read_text())["run_id"]
        sweep = [
            json.loads(p.read_text())["run_id"] for p in sorted((project / "runs").glob("lr-sweep/*/tracking.json"))
        ]
        replays = project / "mlruns" / "artifacts" / snake / "artifacts" / "replays"
        replay = sorted(replays.glob("*.html"))[-1].name
        port = free_port()
        server = serve(project, port)
        try:
            asyncio.run(take(f"http://127.0.0.1:{port}", [snake, *sweep], replay, Path(folder) / "profile"))
        finally:
            server.terminate()
            server.wait(timeout=30)


if __name__ == "__main__":
    main()
