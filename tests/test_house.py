"""The checks that keep the code's shape: lint and format (ruff), the import layers (import-linter, contracts in
pyproject.toml), and types (mypy). Each runs the tool the developers run, on the whole project."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def tool(name: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN / name), *args], cwd=ROOT, capture_output=True, text=True, timeout=600)


@pytest.mark.parametrize(
    "command",
    [("ruff", "check", "."), ("ruff", "format", "--check", "."), ("lint-imports",), ("mypy",)],
    ids=["ruff-check", "ruff-format", "import-layers", "types"],
)
def test_the_code_keeps_its_shape(command: tuple[str, ...]):
    result = tool(*command)
    assert result.returncode == 0, (
        f"`{' '.join(command)}` found problems:\n{result.stdout[-6000:]}{result.stderr[-2000:]}"
    )


def test_a_layer_violation_is_caught(tmp_path: Path):
    """The contracts really bind: a copy of the package where the learning core imports tracking fails them."""
    copy = tmp_path / "project"
    copy.mkdir()
    (copy / "pyproject.toml").write_text((ROOT / "pyproject.toml").read_text())
    subprocess.run(["cp", "-r", str(ROOT / "retro_gamer"), str(copy / "retro_gamer")], check=True)
    network = copy / "retro_gamer" / "dqn" / "network.py"
    network.write_text(network.read_text() + "\nfrom retro_gamer.tracking import store  # noqa: E402\n")
    result = subprocess.run(
        [str(BIN / "lint-imports")],
        cwd=copy,
        capture_output=True,
        text=True,
        timeout=600,
        env={"PYTHONPATH": str(copy), "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode != 0
    assert "retro_gamer.dqn.network -> retro_gamer.tracking.store" in result.stdout
