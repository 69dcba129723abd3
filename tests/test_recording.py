"""Episode replays: recorded from a real trained snake, rendered to HTML and text, played in a real browser."""

from __future__ import annotations

import html
import json
import random
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from retro_gamer.policy import TrainedPolicy
from retro_gamer.tracking import recording
from retro_gamer.tracking.recording import (
    Frame,
    Recording,
    board_rows,
    record_episode,
    render_html,
    render_text,
    write_replay,
)

HEADS = set("<>^v")


@pytest.fixture(scope="module")
def policy(trained_snake: Path) -> TrainedPolicy:
    return TrainedPolicy(trained_snake)


@pytest.fixture(scope="module")
def episode(policy: TrainedPolicy) -> Recording:
    return record_episode(policy, max_turns=40, seed=3)


def test_frames_are_the_game_turn_by_turn(episode: Recording):
    width, height = episode.board_size
    assert (width, height) == (32, 16)
    assert episode.title.startswith("snake — ep_")
    assert [f.turn for f in episode.frames] == list(range(episode.turns + 1))
    first = episode.frames[0]
    assert (first.key, first.reward) == (None, 0.0)
    assert episode.total_return == sum(f.reward for f in episode.frames)
    assert episode.ended in ("game over", "max_turns reached")
    if episode.ended == "max_turns reached":
        assert episode.turns == 40
    for before, frame in zip(episode.frames, episode.frames[1:]):
        assert frame.reward == frame.state["reward"] - before.state["reward"]  # the description's reward key
        assert frame.key in ("KEY_RIGHT", "KEY_UP", "KEY_LEFT", "KEY_DOWN", None)
    for frame in episode.frames:
        assert len(frame.board) == height and all(len(row) == width for row in frame.board)
        cells = "".join(frame.board)
        assert sum(cells.count(c) for c in HEADS) == 1  # the snake's head, exactly once
        assert cells.count("@") == 1  # the apple
        (hx, hy), (ax, ay) = (
            next((i % width, i // width) for i, c in enumerate(cells) if c in chars) for chars in (HEADS, "@")
        )
        # where the game itself says the apple is, from turn 0 on (retro's position cache lags there)
        assert (frame.state["apple_dx"], frame.state["apple_dy"]) == ((ax - hx) / width, (ay - hy) / height)
        assert set(frame.state) == {"score", "reward", "energy", "apple_dx", "apple_dy"}
        json.dumps(frame.state, allow_nan=False)


def test_board_rows_draws_like_retros_view():
    """Highest z on top, the first added on a tie, multi-cell agents cell by cell, hidden agents not at all."""
    from retro.game import Game
    from retro.views import HeadlessView

    class Block:  # 3x2 cells, a character for each; its first row is short, so one cell stays blank
        name, position, size, character = "block", (1, 0), (3, 2), ["ab", "cde"]

    class Marker:
        def __init__(self, name: str, position: tuple[int, int], character: str, z: int = 0, display: bool = True):
            self.name, self.position, self.character, self.z, self.display = name, position, character, z, display

    game = Game(
        [
            Marker("first", (0, 0), "F"),
            Block(),
            Marker("below", (0, 0), "H", z=-1),
            Marker("over", (1, 1), "o", z=1),
            Marker("tie", (3, 1), "t"),
            Marker("ghost", (0, 1), "g", display=False),
        ],
        {},
        board_size=(5, 2),
    )
    view = HeadlessView()
    view.on_game_start(game)
    view.render(game)
    assert board_rows(game) == ["Fab  ", " ode "] == ["".join(row) for row in view.board_characters]


def test_max_turns_and_the_recording_cap(policy: TrainedPolicy, monkeypatch):
    # the head starts at least one cell from every wall, so the first turn can always be played
    rec = record_episode(policy, max_turns=1, seed=0)
    assert (rec.turns, len(rec.frames), rec.ended) == (1, 2, "max_turns reached")
    rec = record_episode(policy, max_turns=0, seed=0)
    assert (rec.turns, len(rec.frames), rec.ended) == (0, 1, "max_turns reached")
    monkeypatch.setattr(recording, "MAX_RECORDED_TURNS", 1)
    rec = record_episode(policy, max_turns=5, seed=0)
    assert (rec.turns, rec.ended) == (1, "stopped at the recording cap of 1 turns")
    with pytest.raises(ValueError, match="max_turns"):
        record_episode(policy, max_turns=-1)


def test_a_seed_repeats_the_episode_and_leaves_the_callers_random_alone(policy: TrainedPolicy, episode: Recording):
    random.seed(12345)
    before = random.getstate()
    again = record_episode(policy, max_turns=40, seed=3)
    assert random.getstate() == before
    assert again == episode
    assert record_episode(policy, max_turns=40, seed=4).frames[0] != episode.frames[0]  # the seed reaches the game


def test_state_values_the_page_cannot_show_become_their_repr():
    assert recording._json_safe(True) is True
    assert recording._json_safe(3) == 3 and recording._json_safe(0.5) == 0.5
    assert recording._json_safe(float("nan")) == "nan"
    assert recording._json_safe((1, 2)) == "(1, 2)"
    assert recording._json_safe(None) == "None"


def test_text_transcript(episode: Recording):
    text = render_text(episode)
    lines = text.splitlines()
    assert lines[0] == episode.title
    assert lines[1].startswith(f"{episode.turns} turns  return ") and episode.ended in lines[1]
    turn_lines = [line for line in lines if line.startswith("turn ")]
    assert len(turn_lines) == len(episode.frames)
    assert turn_lines[0].startswith("turn 0  key -  reward +0  return 0  state {")
    second = episode.frames[1]
    assert turn_lines[1].startswith(f"turn 1  key {second.key or '-'}  reward ")
    assert json.loads(turn_lines[-1].split("  state ", 1)[1]) == episode.frames[-1].state
    for row in episode.frames[-1].board:
        assert f"|{row}|" in lines


def test_write_replay_writes_both_files(policy: TrainedPolicy, tmp_path: Path):
    target = tmp_path / "replays" / "snake.html"
    rec = write_replay(policy, target, seed=3, max_turns=10)
    assert target.read_text(encoding="utf-8") == render_html(rec)
    assert target.with_suffix(".txt").read_text(encoding="utf-8") == render_text(rec)
    assert sorted(p.name for p in target.parent.iterdir()) == ["snake.html", "snake.txt"]  # no temp files left


def test_html_is_self_contained(episode: Recording):
    page = render_html(episode)
    for outside in ("http://", "https://", "src=", "href=", "@import", "url("):
        assert outside not in page
    for sandboxed_away in (
        "localStorage",
        "sessionStorage",
        "cookie",
        "fetch(",
        "XMLHttpRequest",
        "parent.",
        "window.top",
    ):
        assert sandboxed_away not in page
    assert "<title>snake — ep_" in page


def _payload(page: str) -> dict:
    start = page.index('<script type="application/json" id="replay-data">')
    start = page.index(">", start) + 1
    return json.loads(page[start : page.index("</script>", start)])


def test_board_and_state_text_cannot_break_out_of_the_page():
    hostile = "</script><b>"
    rec = Recording(
        title="<i>evil</i>",
        board_size=(12, 1),
        frames=[Frame(0, [hostile.ljust(12)], None, 0.0, {"msg": "</script><!--"})],
        total_return=0.0,
        turns=0,
        ended="game over",
    )
    page = render_html(rec)
    assert hostile not in page
    assert "<!--" not in page
    assert page.count("</script>") == page.count("<script")
    assert "<i>evil</i>" not in page
    data = _payload(page)
    assert data["boards"] == [hostile.ljust(12)]
    assert data["states"] == [["</script><!--"]]


# --- in a real browser ---------------------------------------------------------------------------


def _chromium() -> str:
    found = shutil.which("chromium")
    if found is None:
        pytest.skip(
            "Chromium is not installed (apt-get install -y chromium): the replay page is not checked in a browser"
        )
    return found


def _open(page: Path, profile: Path, *flags: str) -> tuple[str, list[str]]:
    """Load ``page`` headless and return its DOM once the timers have run, and every console line it logged.

    Virtual time fast-forwards the page's timers, so a 40-turn replay plays out without waiting.
    Chromium logs each console message and uncaught exception as a ``:CONSOLE`` line on stderr
    (whatever its level); the replay writes nothing to the console, so any such line is a failure.
    """
    proc = subprocess.run(
        [
            _chromium(),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            f"--user-data-dir={profile}",
            "--enable-logging=stderr",
            "--v=0",
            "--virtual-time-budget=60000",
            *flags,
            "--dump-dom",
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    console = [line for line in proc.stderr.splitlines() if ":CONSOLE" in line or "Uncaught" in line]
    return proc.stdout, console


def _element_text(dom: str, element_id: str) -> str:
    match = re.search(rf'<(\w+) id="{element_id}"[^>]*>(.*?)</\1>', dom, re.S)
    assert match, f"#{element_id} is not in the page"
    return html.unescape(match.group(2))


def test_the_page_plays_to_the_last_frame_in_a_browser(episode: Recording, tmp_path: Path):
    page = tmp_path / "replay.html"
    page.write_text(render_html(episode), encoding="utf-8")
    dom, console = _open(page, tmp_path / "profile")
    assert console == []
    assert _element_text(dom, "errors") == ""
    last = episode.frames[-1]
    assert _element_text(dom, "turn") == str(episode.turns)
    assert _element_text(dom, "board") == "\n".join(last.board)
    assert _element_text(dom, "play") == "▶ Play"  # stopped at the end
    assert _element_text(dom, "key") == (last.key or "(none)")
    assert "<th>energy</th>" in dom


def test_a_broken_page_is_caught(episode: Recording, tmp_path: Path):
    """The checks above are not vacuous: a player that fails shows the error on the page and in the console."""
    page = tmp_path / "broken.html"
    good = render_html(episode)
    broken = good.replace('id="replay-data">{', 'id="replay-data">{{', 1)  # invalid JSON
    assert broken != good
    page.write_text(broken, encoding="utf-8")
    dom, console = _open(page, tmp_path / "profile")
    assert any("SyntaxError" in line for line in console)
    assert _element_text(dom, "errors").startswith("Replay error: ")
    assert _element_text(dom, "turn") == "0"


def test_the_page_plays_in_a_sandboxed_iframe(episode: Recording, tmp_path: Path):
    """As MLflow shows artifacts: scripts allowed, no same-origin. The parent cannot read a sandboxed
    frame's DOM, so the test (not the page) adds a probe that posts the page's turn counter and board to
    the parent, which the sandbox allows; the parent writes them where --dump-dom shows them."""
    probe = """<script>
function storageBlocked() { try { return localStorage.length < 0; } catch (e) { return true; } }
setInterval(function () {
  parent.postMessage(JSON.stringify({origin: String(window.origin), storageBlocked: storageBlocked(),
    turn: document.getElementById("turn").textContent, board: document.getElementById("board").textContent,
    errors: document.getElementById("errors").textContent}), "*");
}, 250);
</script>
</body>"""
    inner = render_html(episode).replace("</body>", probe)
    wrapper = tmp_path / "wrapper.html"
    wrapper.write_text(
        f"""<!DOCTYPE html><html><body><pre id="probe"></pre>
<iframe sandbox="allow-scripts" srcdoc="{html.escape(inner, quote=True)}"></iframe>
<script>window.addEventListener("message", function (e) {{ document.getElementById("probe").textContent = e.data; }});</script>
</body></html>""",
        encoding="utf-8",
    )
    # Chromium puts a sandboxed frame in a process of its own, where virtual time does not reach its timers;
    # this keeps it in the page's process. The sandbox's rules (opaque origin, no storage) still apply.
    dom, console = _open(wrapper, tmp_path / "profile", "--disable-features=IsolateSandboxedIframes")
    assert console == []
    seen = json.loads(_element_text(dom, "probe"))
    assert seen["origin"] == "null" and seen["storageBlocked"]  # really sandboxed
    assert seen["errors"] == ""
    assert seen["turn"] == str(episode.turns)
    assert seen["board"] == "\n".join(episode.frames[-1].board)
