"""Episode replays: watch a trained agent play one greedy episode, turn by turn, after the fact.

A replay is one self-contained HTML file (no network, no storage, so it opens from disk or inside
a sandboxed artifact viewer such as MLflow's) plus a plain-text transcript beside it that diffs and
greps well. Boards are the characters the game shows, built from the agents the way retro's views
build them (z-order and multi-cell agents included).
"""

from __future__ import annotations

import html
import json
import math
import numbers
import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from retro.input import ProgrammaticInput
from retro.view import get_agent_character
from retro.views import HeadlessView

from retro_gamer.env.observation import top_agents
from retro_gamer.files import atomic_write_bytes
from retro_gamer.games import GameDescription, game_factory

if TYPE_CHECKING:
    from retro_gamer.policy import TrainedPolicy

MAX_RECORDED_TURNS = 5000  # keeps a replay of a never-ending game to a few hundred kB


@dataclass
class Frame:
    """The game after ``turn`` turns: what was on screen, what was pressed, what it earned."""

    turn: int
    board: list[str]  # one string per row, exactly the board's width
    key: str | None  # the key pressed this turn; None for a no-op (and for turn 0, before any key)
    reward: float  # change of the description's reward key this turn
    state: dict[str, Any]  # game.state, JSON-safe: numbers, strings and bools; anything else as its repr


@dataclass
class Recording:
    """One episode, frame 0 (the game as it starts) to the last turn played."""

    title: str
    board_size: tuple[int, int]
    frames: list[Frame]
    total_return: float
    turns: int
    ended: str  # "game over", "max_turns reached" or the recording cap


def _json_safe(value: Any) -> Any:
    """A state value the page and the transcript can show as it is, or its repr."""
    if isinstance(value, (bool, str)):
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real) and math.isfinite(value):
        return float(value)
    return repr(value)  # NaN and infinity are not JSON either


def board_rows(game: Any) -> list[str]:
    """The board as rows of characters, as the network sees it (:func:`retro_gamer.env.observation.top_agents`):
    each cell shows its highest-``z`` agent, multi-cell agents their character for that cell."""
    width, height = game.board_size
    grid = [[" "] * width for _ in range(height)]
    for (x, y), agent in top_agents(game).items():
        if 0 <= x < width and 0 <= y < height:
            grid[y][x] = get_agent_character(agent, (x, y))
    return ["".join(row) for row in grid]


def _frame(turn: int, key: str | None, reward: float, game: Any) -> Frame:
    return Frame(
        turn=turn,
        board=board_rows(game),
        key=key,
        reward=reward,
        state={str(k): _json_safe(v) for k, v in game.state.items()},
    )


def record_episode(policy: TrainedPolicy, max_turns: int | None = None, seed: int | None = None) -> Recording:
    """Play one greedy episode of the policy's own game, recording every turn.

    ``max_turns`` defaults to the game description's. ``seed`` seeds Python's global ``random``
    (which retro games draw from) for this episode only: the caller's random state is restored
    afterwards, so recording a replay never changes what a surrounding program does next.
    """
    desc = policy.config.game
    factory = game_factory(desc, policy.run_dir)
    keys = ProgrammaticInput()

    def start() -> Any:
        game = factory()
        # a view reads positions after every turn, as in training, so the game plays out the same way
        game.input_source, game.view = keys, HeadlessView()
        game.start()
        return game

    def play_turn(game: Any) -> str | None:
        key = policy.get_action(game)
        keys.press(key)
        game.step()
        return key

    title = f"{desc.name or desc.factory} — {policy.checkpoint_path.stem}"
    return record_game(desc, start, play_turn, title, max_turns, seed)


def record_game(
    desc: GameDescription,
    start: Callable[[], Any],
    play_turn: Callable[[Any], str | None],
    title: str,
    max_turns: int | None = None,
    seed: int | None = None,
) -> Recording:
    """:func:`record_episode` for any player: ``start()`` returns the game started, ``play_turn(game)`` plays one
    turn and returns the key it pressed (``None``: none).

    A policy trained elsewhere (Stable-Baselines3 on the Gymnasium adapter, which plays the game itself) is
    recorded by the same rules, so its replays read like retro-gamer's own: the same page, the same turn limit."""
    limit = desc.max_turns if max_turns is None else max_turns
    if limit < 0:
        raise ValueError(f"max_turns must be 0 or more, got {max_turns}.")
    saved = random.getstate()
    if seed is not None:
        random.seed(seed)
    try:
        game = start()
        value = float(game.state[desc.reward])
        frames = [_frame(0, None, 0.0, game)]
        turn = 0
        while game.playing and turn < min(limit, MAX_RECORDED_TURNS):
            key = play_turn(game)
            turn += 1
            new_value = float(game.state[desc.reward])
            frames.append(_frame(turn, key, new_value - value, game))
            value = new_value
    finally:
        if seed is not None:
            random.setstate(saved)
    if not game.playing:
        ended = "game over"
    elif turn >= limit:
        ended = "max_turns reached"
    else:
        ended = f"stopped at the recording cap of {MAX_RECORDED_TURNS} turns"
    return Recording(
        title=title,
        board_size=tuple(game.board_size),
        frames=frames,
        total_return=sum(f.reward for f in frames),
        turns=turn,
        ended=ended,
    )


def _number(x: float, signed: bool = False) -> str:
    """``12``, ``+1``, ``-0.5``: whole numbers without a trailing ``.0``."""
    text = str(int(x)) if float(x).is_integer() else f"{x:.6g}"
    return f"+{text}" if signed and x >= 0 else text


def _board_changes(before: str, after: str) -> str | list[list[Any]]:
    """``[[index, text], ...]``: the runs of cells that changed since the previous frame.

    A snake board changes in a few cells a turn, so this keeps a 3,000-turn replay about ten times
    smaller than storing every board; a board of another size is stored whole.
    """
    if len(before) != len(after):
        return after
    changed = [i for i, (a, b) in enumerate(zip(before, after)) if a != b]
    runs: list[list[Any]] = []
    for i in changed:
        if runs and runs[-1][0] + len(runs[-1][1]) == i:
            runs[-1][1] += after[i]
        else:
            runs.append([i, after[i]])
    return runs


def _page_data(rec: Recording) -> dict[str, Any]:
    keys = list(dict.fromkeys(k for f in rec.frames for k in f.state))  # a game may add keys mid-episode
    boards = ["\n".join(f.board) for f in rec.frames]
    return {
        "keys": keys,
        "boards": boards[:1] + [_board_changes(a, b) for a, b in zip(boards, boards[1:])],
        "pressed": [f.key for f in rec.frames],
        "rewards": [f.reward for f in rec.frames],
        "states": [[f.state.get(k) for k in keys] for f in rec.frames],  # null: not in game.state that turn
    }


_STYLE = """
:root { color-scheme: light dark; }
body { margin: 1rem; background: Canvas; color: CanvasText; font: 15px/1.45 system-ui, sans-serif; }
h1 { font-size: 1.2rem; margin: 0 0 .2rem; }
.summary, .help { margin: 0 0 .8rem; opacity: .75; }
.stage { display: flex; flex-wrap: wrap; gap: 1rem; align-items: flex-start; }
#board { margin: 0; padding: .3rem .6ch; border: 2px solid GrayText; border-radius: 4px; max-width: 100%;
  overflow: auto; box-sizing: content-box; white-space: pre;
  font: 16px/1.2 ui-monospace, SFMono-Regular, Menlo, Consolas, "DejaVu Sans Mono", monospace; }
dl { display: grid; grid-template-columns: auto auto; gap: .1rem 1rem; margin: 0 0 .8rem; }
dt { opacity: .75; } dd { margin: 0; font-variant-numeric: tabular-nums; font-weight: 600; }
table { border-collapse: collapse; font-variant-numeric: tabular-nums; }
caption { text-align: left; opacity: .75; }
th, td { text-align: left; padding: .1rem .8rem .1rem 0; border-bottom: 1px solid color-mix(in srgb, GrayText 40%, transparent); }
th { font-weight: normal; font-family: ui-monospace, monospace; }
td { min-width: 10ch; }
td.changed { font-weight: 700; }
.controls { display: flex; flex-wrap: wrap; gap: .5rem; align-items: center; margin: .8rem 0 .4rem; }
.controls input[type=range] { flex: 1 1 16rem; }
button, select { font: inherit; padding: .15rem .6rem; }
#errors { color: #d33; font-weight: 600; }
"""

_SCRIPT = r"""
(function () {
  "use strict";
  var $ = function (id) { return document.getElementById(id); };
  var data = JSON.parse($("replay-data").textContent);
  var boards = [], board = "";
  data.boards.forEach(function (b) {
    if (typeof b === "string") board = b;
    else b.forEach(function (run) { board = board.slice(0, run[0]) + run[1] + board.slice(run[0] + run[1].length); });
    boards.push(board);
  });
  var returns = [], total = 0;
  data.rewards.forEach(function (r) { total += r; returns.push(total); });
  var last = boards.length - 1, frame = 0, timer = null;

  function number(x, signed) {
    var text = Number.isInteger(x) ? String(x) : String(+x.toPrecision(6));
    return signed && x >= 0 ? "+" + text : text;
  }
  function value(v) { return typeof v === "boolean" ? (v ? "True" : "False") : String(v); }

  function show(i) {
    frame = Math.max(0, Math.min(last, i));
    $("board").textContent = boards[frame];
    $("turn").textContent = String(frame);
    $("slider").value = String(frame);
    var key = data.pressed[frame];
    $("key").textContent = key === null ? (frame === 0 ? "—" : "(none)") : key;
    $("reward").textContent = number(data.rewards[frame], true);
    $("return").textContent = number(returns[frame], false);
    var rows = document.createDocumentFragment(), now = data.states[frame], before = data.states[Math.max(frame - 1, 0)];
    data.keys.forEach(function (k, j) {
      if (now[j] === null) return;
      var tr = document.createElement("tr"), th = document.createElement("th"), td = document.createElement("td");
      th.textContent = k;
      td.textContent = value(now[j]);
      if (frame > 0 && before[j] !== now[j]) td.className = "changed";
      tr.appendChild(th); tr.appendChild(td); rows.appendChild(tr);
    });
    $("state-rows").replaceChildren(rows);
  }
  function delay() { return 1000 / Number($("speed").value); }
  function stop() { clearTimeout(timer); timer = null; $("play").textContent = "\u25b6 Play"; }
  function tick() {
    show(frame + 1);
    if (frame >= last) stop(); else timer = setTimeout(tick, delay());
  }
  function play() {
    if (frame >= last) show(0);
    $("play").textContent = "\u275a\u275a Pause";
    timer = setTimeout(tick, delay());
  }
  function toggle() { if (timer === null) play(); else stop(); }
  function step(by) { stop(); show(frame + by); }

  $("play").addEventListener("click", toggle);
  $("back").addEventListener("click", function () { step(-1); });
  $("forward").addEventListener("click", function () { step(1); });
  $("slider").addEventListener("input", function () { stop(); show(Number($("slider").value)); });
  $("speed").addEventListener("change", function () {
    if (timer !== null) { clearTimeout(timer); timer = setTimeout(tick, delay()); }
  });
  document.addEventListener("keydown", function (e) {
    if (e.altKey || e.ctrlKey || e.metaKey || e.target.tagName === "SELECT") return;
    if (e.key === " ") toggle();
    else if (e.key === "ArrowLeft") step(-1);
    else if (e.key === "ArrowRight") step(1);
    else return;
    e.preventDefault();  // a focused button or slider must not act on the same key a second time
  });
  document.addEventListener("keyup", function (e) { if (e.key === " ") e.preventDefault(); });
  show(0);
  play();
})();
"""

# Registered before the player so that even a failure to start shows on the page, not only in a console.
_ERROR_SCRIPT = """
window.addEventListener("error", function (e) {
  var box = document.getElementById("errors");
  box.hidden = false;
  box.textContent += "Replay error: " + e.message + "\\n";
});
"""


def render_html(rec: Recording) -> str:
    """The replay as one HTML page: board, turn, key, reward, return and game.state, with playback controls.

    Everything is inline (frames as JSON, CSS, JS) and nothing touches storage, cookies, the network
    or the parent frame, so it works from disk and inside a sandboxed iframe without same-origin.
    """
    width, height = rec.board_size
    last = len(rec.frames) - 1
    # every "<" escaped inside the JSON, so no board or state text can close the script element
    payload = json.dumps(_page_data(rec), ensure_ascii=False, separators=(",", ":")).replace("<", "\\u003c")
    speeds = "".join(
        f'<option value="{s}"{" selected" if s == 10 else ""}>{s}</option>' for s in (1, 2, 5, 10, 20, 50, 100)
    )
    esc = html.escape
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{esc(rec.title)}</title>
<style>{_STYLE}#board {{ width: {width}ch; height: {height * 1.2:g}em; }}</style>
</head>
<body>
<div id="errors" role="alert" hidden></div>
<script>{_ERROR_SCRIPT}</script>
<main>
<h1>{esc(rec.title)}</h1>
<p class="summary">{rec.turns} turns · return {esc(_number(rec.total_return))} · {esc(rec.ended)}</p>
<noscript><p>Scripts are off: this is turn 0 only.</p></noscript>
<div class="stage">
<pre id="board" aria-label="game board">{esc(chr(10).join(rec.frames[0].board))}</pre>
<div>
<dl>
<dt>Turn</dt><dd><span id="turn">0</span> / <span id="last">{last}</span></dd>
<dt>Key</dt><dd id="key">—</dd>
<dt>Reward</dt><dd id="reward">+0</dd>
<dt>Return</dt><dd id="return">0</dd>
</dl>
<table><caption>game.state</caption><tbody id="state-rows"></tbody></table>
</div>
</div>
<div class="controls">
<button id="back" type="button" title="Step back (←)">◀ Back</button>
<button id="play" type="button" title="Play or pause (space)">▶ Play</button>
<button id="forward" type="button" title="Step forward (→)">Forward ▶</button>
<input id="slider" type="range" min="0" max="{last}" value="0" aria-label="turn">
<label>Speed <select id="speed">{speeds}</select> turns/s</label>
</div>
<p class="help">Space: play or pause · ← →: step one turn · the slider jumps to any turn.</p>
</main>
<script type="application/json" id="replay-data">{payload}</script>
<script>{_SCRIPT}</script>
</body>
</html>
"""


def render_text(rec: Recording) -> str:
    """The replay as a plain-text transcript: a header, then each turn's key, reward, return, state and board."""
    width, height = rec.board_size
    lines = [
        rec.title,
        f"{rec.turns} turns  return {_number(rec.total_return)}  ended: {rec.ended}  board {width}x{height}",
        "",
    ]
    border = "+" + "-" * width + "+"
    total = 0.0
    for f in rec.frames:
        total += f.reward
        state = json.dumps(f.state, ensure_ascii=False)
        lines.append(
            f"turn {f.turn}  key {f.key or '-'}  reward {_number(f.reward, signed=True)}  "
            f"return {_number(total)}  state {state}"
        )
        lines += [border, *(f"|{row}|" for row in f.board), border, ""]
    return "\n".join(lines)


def write_replay(
    policy: TrainedPolicy, html_path: str | Path, seed: int | None = None, max_turns: int | None = None
) -> Recording:
    """Record one episode and write ``html_path`` plus the transcript beside it (same name, ``.txt``)."""
    return write_recording(record_episode(policy, max_turns=max_turns, seed=seed), html_path)


def write_recording(rec: Recording, html_path: str | Path) -> Recording:
    """Write ``html_path`` and the transcript beside it (same name, ``.txt``) for a recorded episode.

    Both files are written atomically, so a viewer never opens half a replay.
    """
    html_path = Path(html_path)
    atomic_write_bytes(html_path, render_html(rec).encode("utf-8"))
    atomic_write_bytes(html_path.with_suffix(".txt"), render_text(rec).encode("utf-8"))
    return rec
