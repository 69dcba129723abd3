"""retro-gamer: create, train, evaluate, watch and inspect reinforcement-learning runs for retro games.

examples:
  retro-gamer create --game snake --output runs/snake
  retro-gamer create --game my_game.py --output runs/mine trainer.episodes=500 model=mlp
  retro-gamer train runs/snake
  retro-gamer eval runs/snake --episodes 50 --json
  retro-gamer play runs/snake
  retro-gamer replay runs/snake -o snake.html
  retro-gamer eval models:/snake-policy@champion
  retro-gamer tune snake --study snake-search --trials 10

DIR may also be an MLflow model URI: runs:/RUN_ID/policy, models:/NAME/VERSION, models:/NAME@ALIAS, models:/MODEL_ID.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import sys
from dataclasses import replace
from pathlib import Path

from retro_gamer import __version__
from retro_gamer.errors import RetroGamerError
from retro_gamer.launch import explain_failure


def cmd_create(args: argparse.Namespace) -> int:
    from retro_gamer.config.compose import compose_run
    from retro_gamer.config.schema import CONFIG_FILE
    from retro_gamer.run.directory import prepare_run

    output = Path(args.output)
    if output.exists() and not output.is_dir():
        raise RetroGamerError(
            f"--output {output} is a file, not a folder. A run directory is a folder that will "
            "hold config.toml and checkpoints/; choose a new or existing folder."
        )
    if (output / CONFIG_FILE).exists() and not args.force:
        raise RetroGamerError(
            f"{output / CONFIG_FILE} already exists. Train it with `retro-gamer train {output}`, "
            "choose another --output, or pass --force to overwrite its config."
        )
    cfg, source, why = compose_run(args.game, args.overrides)
    cfg = prepare_run(cfg, output, source)
    print(f"Created {output / CONFIG_FILE}")
    print(describe(cfg, output, source, why))
    print(f"Next: retro-gamer train {output}")
    return 0


def describe(cfg, run_dir: Path, source: str, why: str | None = None) -> str:
    """A readable summary of a run's game, observation and network."""
    from retro_gamer.dqn.trainer import build_q_network
    from retro_gamer.env.environment import GameEnvironment
    from retro_gamer.games import game_factory

    g = cfg.game
    env = GameEnvironment(g, game_factory(g, run_dir), run_dir)
    q = build_q_network(cfg, env)
    enc = env.encoder
    params = sum(p.numel() for p in q.parameters())
    board = "not observed" if not enc.use_board else f"{enc.board_shape[1]}x{enc.board_shape[0]}"
    if g.crop and enc.use_board:
        board += f" window around '{g.crop.agent}'"
    m = cfg.model
    shape = (
        (f"conv {m.channels} stride {m.strides} → " if m.kind.value == "cnn" else "")
        + f"{m.hidden}"
        + (", dueling" if m.dueling else "")
    )
    lines = [
        f"  game        {g.name or g.factory}  (description: {source})",
        f"  board       {g.board_size[0]}x{g.board_size[1]}",
        f"  actions     {', '.join(g.actions)} (+ no-op)",
        f"  reward      change of game.state['{g.reward}'] each turn",
        f"  characters  {' '.join(g.character_set)}",
        f"  observation board {board}, {enc.n_classes - 1} one-hot channels, {enc.extras_size} state values"
        + (f" ({', '.join(g.observe_state)})" if g.observe_state else ""),
        f"  network     {m.kind.value} {shape}: {params:,} parameters",
    ]
    if why:
        lines.append(f"  chosen      {why}")
    return "\n".join(lines)


def cmd_train(args: argparse.Namespace) -> int:
    from retro_gamer.config.schema import check_settings, read_config, write_config

    run_dir = Path(args.run_dir)
    read_config(
        run_dir
    )  # a folder that is not a run is refused before the lock creates anything (and before torch loads)
    from retro_gamer.launch import finish_message, train_run
    from retro_gamer.run.directory import budget_reached, check_game, progress_so_far
    from retro_gamer.run.lock import run_lock

    with run_lock(run_dir):
        cfg = read_config(run_dir)
        t = cfg.trainer
        flags = {
            "episodes": ("--episodes", args.episodes),
            "total_env_steps": ("--steps", args.steps),
            "time_limit": ("--minutes", args.minutes),
        }
        session = {key: value for key, (_, value) in flags.items() if value is not None}
        given = ", ".join(flag for key, (flag, _) in flags.items() if key in session)
        if args.episodes is None and args.steps is None:
            # a finished run trains one more round of its budget (adversarial alternation)
            episodes, env_steps = progress_so_far(run_dir)
            reached = budget_reached(cfg, episodes, env_steps)
            if reached == "episodes":
                session["episodes"] = episodes + t.episodes
                print(
                    f"{run_dir} finished {episodes:,} episodes; training {t.episodes:,} more (to {episodes + t.episodes:,}). "
                    "Use --episodes N to set the total instead."
                )
            elif reached == "total_env_steps" and t.total_env_steps is not None:  # a set step budget was reached
                session["total_env_steps"] = env_steps + t.total_env_steps
                print(
                    f"{run_dir} finished {env_steps:,} env steps; training {t.total_env_steps:,} more "
                    f"(to {env_steps + t.total_env_steps:,}). Use --steps N to set the total instead."
                )
        cfg = check_settings(replace(cfg, trainer=replace(t, **session)), given or "config.toml")
        if given:
            check_game(cfg, run_dir)  # a game that changed is refused before config.toml changes
            write_config(cfg, run_dir)  # this session's limits, so a plain resume keeps them
        summary = train_run(run_dir, cfg)
    print(finish_message(summary, run_dir, f"retro-gamer train {run_dir}"))
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from retro_gamer.dqn.evaluate import evaluate
    from retro_gamer.policy import TrainedPolicy

    policy = TrainedPolicy(args.run_dir, checkpoint=args.checkpoint, tracking_uri=args.tracking_uri)
    result = evaluate(
        policy.config,
        policy.network,
        episodes=args.episodes,
        epsilon=args.epsilon,
        seed=args.seed,
        base_dir=policy.run_dir,
        baseline=args.baseline,
    )
    if args.json:
        print(json.dumps(result))
        return 0
    print(f"{policy.checkpoint_path.stem}: {result['episodes']} episodes, seed {args.seed}")
    print("\n".join(_eval_table(result, result.get("random_play"), args.epsilon)))
    return 0


def _eval_table(agent: dict, rand: dict | None, epsilon: float) -> list[str]:
    """The agent's figures beside random play's (when played), then how far apart the mean returns are in standard
    errors: "did it learn?" is answered by that distance, not by a return on its own."""
    played = [agent, rand] if rand else [agent]
    rows = [
        ("", f"agent (epsilon {epsilon:g})", *(["random play"] if rand else [])),
        ("return", *(f"{r['mean_return']:.2f} ± {r['std_return']:.2f}" for r in played)),
        ("length", *(f"{r['mean_length']:.1f} turns" for r in played)),
    ]
    rows += [
        (f"final {key} (mean)", *(f"{r['final_state'].get(key, float('nan')):.3f}" for r in played))
        for key in agent["final_state"]
    ]
    rows += [(f"key {key}", *(f"{r['key_shares'][key]:.0%} of turns" for r in played)) for key in agent["key_shares"]]
    width = [max(len(row[i]) for row in rows) for i in range(len(played))]
    lines = ["  " + "  ".join(f"{cell:<{w}}" for cell, w in zip(row, width)) + f"  {row[-1]}".rstrip() for row in rows]
    if rand:
        from retro_gamer.dqn.evaluate import standard_errors_apart

        gap, errors = agent["mean_return"] - rand["mean_return"], standard_errors_apart(agent, rand)
        apart = (
            f"{abs(errors):.1f} standard errors; below 2 the gap may be chance"
            if math.isfinite(errors)
            else "neither varies"
        )
        verdict = f"{abs(gap):.2f} {'above' if gap > 0 else 'below'}" if gap else "level with"
        lines.append(f"  The agent's mean return is {verdict} random play's ({apart}).")
    return lines


def cmd_play(args: argparse.Namespace) -> int:
    from retro_gamer.games import game_factory
    from retro_gamer.policy import PolicyInput, TrainedPolicy

    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        raise RetroGamerError(
            "`retro-gamer play` needs a terminal to draw in. To score a model without one, use `retro-gamer eval`."
        )
    policy = TrainedPolicy(args.run_dir, checkpoint=args.checkpoint, tracking_uri=args.tracking_uri)
    factory = game_factory(policy.config.game, policy.run_dir)
    for _ in range(args.episodes):
        game = factory()
        if args.framerate:
            game.framerate = args.framerate
        source = PolicyInput(policy, game, escape_quits=True)
        game.play(input_source=source)
        if source.quit:
            break
    return 0


def _log_returns(run_dir: Path) -> dict[str, str]:
    """Checkpoint name → the mean-return figure its training.log line reported."""
    from retro_gamer.dqn.callbacks import LOG_FILE

    found = {}
    log = run_dir / LOG_FILE
    for line in log.read_text().splitlines() if log.is_file() else []:
        parts = [p.strip() for p in line.split("|")]
        if len(parts) > 2 and parts[-1].endswith(".pt"):
            found[parts[-1]] = parts[1].removeprefix("mean return ")
    return found


def cmd_info(args: argparse.Namespace) -> int:
    from retro_gamer.config.schema import read_config
    from retro_gamer.dqn.callbacks import METRICS_FILE
    from retro_gamer.policy import resolve_source
    from retro_gamer.run import checkpoint

    run_dir = resolve_source(args.run_dir, args.tracking_uri)
    cfg = read_config(run_dir)
    print(f"Run {args.run_dir}" + (f" (downloaded to {run_dir})" if str(run_dir) != args.run_dir else ""))
    print(describe(cfg, run_dir, "config.toml", "; ".join(cfg.chosen.values()) or None))
    t = cfg.trainer
    print(
        f"  training    {t.episodes} episodes, lr {t.lr}, gamma {t.gamma}, {t.n_step}-step, batch {t.batch_size}, "
        f"{t.num_envs} games at once, seed {t.seed}"
    )
    found = checkpoint.list_checkpoints(run_dir)
    returns = _log_returns(run_dir)
    print(f"Checkpoints ({len(found)}):" if found else "Checkpoints: none yet")
    for episode, path in found[-10:]:
        print(f"  {path.stem:<12} episode {episode:<7} mean return {returns.get(path.name, '-')}")
    if len(found) > 10:
        print(f"  … and {len(found) - 10} older")
    resume = run_dir / checkpoint.RESUME_FILE
    if resume.is_file():
        state = checkpoint.load(resume)
        replay = state.get("replay")
        memory = (
            f"replay memory of {replay['size']:,} transitions"
            if replay
            else "no replay memory (trainer.save_replay=false)"
        )
        print(
            f"Resume state: episode {state['episode']}, {state['env_steps']:,} env steps, {state['updates']:,} updates, "
            f"{memory}"
        )
    metrics = run_dir / METRICS_FILE
    if metrics.is_file():
        print("Metrics: " + ", ".join(f"{k} {v}" for k, v in json.loads(metrics.read_text()).items()))
    return 0


def cmd_plot(args: argparse.Namespace) -> int:
    from retro_gamer.tracking.plots import plot_learning_curve

    output = plot_learning_curve(Path(args.run_dir), Path(args.output) if args.output else None)
    print(f"Wrote {output}")
    return 0


def cmd_replay(args: argparse.Namespace) -> int:
    from retro_gamer.files import check_output_file
    from retro_gamer.policy import TrainedPolicy
    from retro_gamer.tracking.recording import write_replay

    if args.output:
        check_output_file(Path(args.output), (".html",), "--output")
    policy = TrainedPolicy(args.run_dir, checkpoint=args.checkpoint, tracking_uri=args.tracking_uri)
    output = Path(args.output or f"{policy.checkpoint_path.stem}.html")
    rec = write_replay(policy, output, seed=args.seed, max_turns=args.max_turns)
    print(
        f"Wrote {output} and {output.with_suffix('.txt')}: {rec.turns} turns, return {rec.total_return:g}, {rec.ended}. "
        "Open the page in any browser (it needs no network)."
    )
    return 0


def cmd_promote(args: argparse.Namespace) -> int:
    from retro_gamer.tracking import store
    from retro_gamer.tracking.mlflow_model import promote

    print(promote(args.source, args.name, args.alias, store.resolve_uri(args.tracking_uri, Path.cwd())))
    return 0


def cmd_tune(args: argparse.Namespace) -> int:
    from retro_gamer.extras import require_extra

    require_extra("tune", "retro-gamer tune")
    from mlflow.exceptions import MlflowException

    from retro_gamer.tune.worker import tune

    try:
        return tune(
            args.space,
            args.study,
            args.trials,
            storage=args.storage,
            overrides=args.overrides,
            stale_after_s=60 * args.stale_after,
        )
    except MlflowException as err:  # the study is safe in its storage; the trial in progress is marked failed
        raise RetroGamerError(
            f"the MLflow store failed: {str(err).splitlines()[0][:300]}. The study keeps every finished trial; "
            "check the tracking URI (MLFLOW_TRACKING_URI or tracking.uri) and that its server runs, then start the "
            "worker again."
        ) from None


def cmd_clean(args: argparse.Namespace) -> int:
    from retro_gamer.config.schema import read_config
    from retro_gamer.run.lock import run_lock

    run_dir = Path(args.run_dir)
    read_config(run_dir)  # only clean what is really a run directory
    with run_lock(run_dir, purpose="cleaning"):
        return _clean(run_dir, args.yes)


def _clean(run_dir: Path, yes: bool) -> int:
    from retro_gamer.dqn.callbacks import LOG_FILE, METRICS_FILE
    from retro_gamer.run import checkpoint
    from retro_gamer.tracking.mlflow_run import TRACKING_FILE
    from retro_gamer.tracking.plots import CURVE_FILE

    doomed = [p for _, p in checkpoint.list_checkpoints(run_dir)] + sorted(
        (run_dir / checkpoint.REPLAY_DIR).glob("*.pt")
    )
    names = (checkpoint.RESUME_FILE, LOG_FILE, METRICS_FILE, CURVE_FILE, TRACKING_FILE)
    doomed += [run_dir / n for n in names if (run_dir / n).exists()]
    if not doomed:
        print(f"Nothing to clean in {run_dir}.")
        return 0
    print(f"This deletes {len(doomed)} file(s) from {run_dir} (config.toml stays):")
    for path in doomed[:8]:
        print(f"  {path.relative_to(run_dir)}")
    if not yes:
        if not sys.stdin.isatty():
            raise RetroGamerError("Not deleting without confirmation: pass -y to clean non-interactively.")
        if input("Delete them? [y/N] ").strip().lower() not in ("y", "yes"):
            print("Nothing deleted.")
            return 1
    for path in doomed:
        path.unlink()
    shutil.rmtree(run_dir / checkpoint.CHECKPOINT_DIR, ignore_errors=True)
    shutil.rmtree(run_dir / checkpoint.REPLAY_DIR, ignore_errors=True)
    print(f"Cleaned. `retro-gamer train {run_dir}` starts from scratch.")
    return 0


def _number(low: float, high: float, whole: bool = True):
    """An argparse type: a number in [low, high], refused by argparse with the allowed range."""

    def parse(text: str) -> float:
        try:
            value = int(text) if whole else float(text)
        except ValueError:
            value = None
        if value is None or not low <= value <= high:
            raise argparse.ArgumentTypeError(
                f"{text!r} is not a {'whole ' if whole else ''}number from {low:,} to {high:,}"
            )
        return value

    parse.__name__ = "whole number" if whole else "number"
    return parse


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="retro-gamer", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--version", action="version", version=f"retro-gamer {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def tracked(sub: argparse.ArgumentParser) -> None:
        sub.add_argument(
            "--tracking-uri",
            help="the MLflow store a models:/ or runs:/ DIR comes from "
            "(default: MLFLOW_TRACKING_URI, else ./mlruns of this project)",
        )

    def add(name: str, func, help: str, example: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(
            name,
            help=help,
            description=help,
            epilog=f"example:\n  {example}",
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        sub.set_defaults(func=func)
        return sub

    create = add(
        "create",
        cmd_create,
        "describe a game and write a new run directory's config.toml",
        "retro-gamer create --game my_game:create_enemy_training_game --output runs/enemy trainer.episodes=500",
    )
    create.add_argument(
        "--game",
        required=True,
        help="a Hydra game name (snake), a .py file, a package folder, a module or module:factory",
    )
    create.add_argument("--output", required=True, metavar="DIR", help="the run directory to create")
    create.add_argument("--force", action="store_true", help="overwrite an existing config.toml")
    create.add_argument(
        "overrides", nargs="*", metavar="OVERRIDE", help="Hydra overrides, e.g. trainer.episodes=500 model=mlp"
    )

    train = add(
        "train",
        cmd_train,
        "train or resume the run in DIR; a finished run trains one more round of its budget",
        "retro-gamer train runs/snake --steps 500000 --minutes 10",
    )
    train.add_argument("run_dir", metavar="DIR")
    train.add_argument("--episodes", type=int, help="train until this many episodes in total (trainer.episodes)")
    train.add_argument(
        "--steps",
        type=int,
        help="train until the run has taken exactly this many env steps in total (trainer.total_env_steps)",
    )
    train.add_argument(
        "--minutes", type=float, help="stop this session after this many minutes of wall clock (trainer.time_limit)"
    )

    ev = add(
        "eval",
        cmd_eval,
        "play episodes headless and report returns, final game.state values and keys pressed, beside random play's",
        "retro-gamer eval runs/snake --episodes 50 --json",
    )
    ev.add_argument("run_dir", metavar="DIR")
    ev.add_argument("--checkpoint", "-c", help="ep_0500, ep_0500.pt or a path (default: latest)")
    ev.add_argument("--episodes", "-n", type=_number(1, 1_000_000), default=20)
    ev.add_argument(
        "--epsilon", type=_number(0, 1, whole=False), default=0.0, help="probability of a random key each turn"
    )
    ev.add_argument("--seed", type=_number(0, 2**32 - 1), default=12345)
    ev.add_argument("--json", action="store_true", help="print one JSON object")
    ev.add_argument(
        "--no-baseline",
        dest="baseline",
        action="store_false",
        help="skip the random-play games played beside the agent's (same episodes and seed, epsilon 1)",
    )
    tracked(ev)

    play = add(
        "play",
        cmd_play,
        "watch the agent play in this terminal (Escape or q quits)",
        "retro-gamer play runs/snake --framerate 20",
    )
    play.add_argument("run_dir", metavar="DIR")
    play.add_argument("--checkpoint", "-c", help="ep_0500, ep_0500.pt or a path (default: latest)")
    play.add_argument("--episodes", "-n", type=_number(1, 1_000_000), default=1)
    play.add_argument("--framerate", type=_number(1, 1_000), help="turns per second (default: the game's own)")
    tracked(play)

    info = add(
        "info", cmd_info, "summarise a run: game, network, checkpoints, resume state", "retro-gamer info runs/snake"
    )
    info.add_argument("run_dir", metavar="DIR")
    tracked(info)

    rep = add(
        "replay",
        cmd_replay,
        "record one greedy episode as a self-contained HTML page plus a text transcript",
        "retro-gamer replay runs/snake --checkpoint ep_0500 -o snake.html",
    )
    rep.add_argument("run_dir", metavar="DIR")
    rep.add_argument("--checkpoint", "-c", help="ep_0500, ep_0500.pt or a path (default: latest)")
    rep.add_argument("-o", "--output", help="the HTML file (default: CHECKPOINT.html here); the .txt goes beside it")
    rep.add_argument(
        "--seed", type=_number(0, 2**32 - 1), default=0, help="seed of the game's randomness for this episode"
    )
    rep.add_argument(
        "--max-turns", type=_number(1, 10_000_000), help="stop after this many turns (default: the game's max_turns)"
    )
    tracked(rep)

    prom = add(
        "promote",
        cmd_promote,
        "set an alias (e.g. champion) on a registered policy version",
        "retro-gamer promote models:/snake-policy/3 --name snake-policy --alias champion",
    )
    prom.add_argument(
        "source",
        metavar="SOURCE",
        help="models:/NAME/VERSION, models:/NAME@ALIAS, models:/MODEL_ID or runs:/RUN_ID/policy",
    )
    prom.add_argument("--name", required=True, help="the registered model name")
    prom.add_argument("--alias", required=True, help="the alias to set, e.g. champion")
    prom.add_argument(
        "--tracking-uri", help="the MLflow store (default: MLFLOW_TRACKING_URI, else ./mlruns of this project)"
    )

    plot = add(
        "plot",
        cmd_plot,
        "draw the learning curves to a PNG (no display needed)",
        "retro-gamer plot runs/snake -o snake.png",
    )
    plot.add_argument("run_dir", metavar="DIR")
    plot.add_argument("-o", "--output", help="PNG file (default: DIR/learning_curve.png)")

    tune = add(
        "tune",
        cmd_tune,
        "search hyperparameters with Optuna: this worker runs N trials of a study that any number of workers share",
        "retro-gamer tune snake --study snake-search --trials 10 --storage postgresql://me@db-host/studies",
    )
    tune.add_argument(
        "space",
        metavar="SPACE",
        help="a search space in conf/tune/ (snake) or a path to a YAML file; Hydra overrides for every trial (after "
        "the space's own) may follow anywhere, e.g. trainer.num_envs=4",
    )
    tune.usage = "retro-gamer tune SPACE --study NAME --trials N [--storage URL] [--stale-after MINUTES] [OVERRIDE ...]"
    tune.add_argument("--study", required=True, help="the study's name: workers with the same name share its trials")
    tune.add_argument("--trials", required=True, type=_number(1, 1_000_000), help="how many trials this worker runs")
    tune.add_argument(
        "--storage",
        help="the study's database URL: sqlite:///PATH or postgresql://USER:PASSWORD@HOST/DB for workers on "
        "many machines (default: sqlite under the project's tune/)",
    )
    tune.add_argument(
        "--stale-after",
        type=_number(0.1, 10**6, whole=False),
        default=10.0,
        metavar="MINUTES",
        help="a RUNNING trial of a worker on another machine is marked failed after this long without a heartbeat",
    )

    clean = add(
        "clean",
        cmd_clean,
        "delete checkpoints, resume state and logs, keeping config.toml",
        "retro-gamer clean runs/snake -y",
    )
    clean.add_argument("run_dir", metavar="DIR")
    clean.add_argument("-y", "--yes", action="store_true", help="do not ask for confirmation")
    return parser


def main(argv: list[str] | None = None) -> int:
    from retro_gamer.extras import require_extra

    try:
        require_extra("train", "retro-gamer")  # the command is training's face: a core install hears which extra
    except RetroGamerError as err:
        print(f"error: {err}", file=sys.stderr)
        return err.exit_code
    from retro_gamer.tracking.store import disable_telemetry_unless_chosen

    disable_telemetry_unless_chosen()
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    # tune's overrides may come after its options (argparse takes positionals only in one run)
    args.overrides = [*getattr(args, "overrides", []), *(e for e in extra if "=" in e and not e.startswith("-"))]
    if any("=" not in e or e.startswith("-") for e in extra) or (extra and args.command != "tune"):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    try:
        return args.func(args)
    except RetroGamerError as err:
        print(f"error: {err}", file=sys.stderr)
        return err.exit_code
    except (Exception, SystemExit) as err:  # the game's own code, or the file system; else our bug: traceback
        message = explain_failure(err, f"running `retro-gamer {args.command}`")
        if message is None:
            raise
        print(f"error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        from retro_gamer.launch import stopped_at_once_message

        command = f"retro-gamer train {args.run_dir}" if args.command == "train" else "the same command"
        print(stopped_at_once_message(command), file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
