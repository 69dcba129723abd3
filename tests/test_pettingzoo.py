"""Chase as a PettingZoo ``ParallelEnv`` (retro_gamer.examples.chase.parallel_env, retro_gamer.adapters): PettingZoo's
own API and seed tests pass, each side is paid the change of its reward key and sees what a policy trained for that
side sees, the game's own rule decides the outcome, a decided game terminates and the turn limit truncates."""

from __future__ import annotations

import random
from itertools import zip_longest
from pathlib import Path

import numpy as np
import pytest
import test_chase
import torch
from pettingzoo.test import parallel_api_test, parallel_seed_test

from retro_gamer.adapters.gymnasium_env import CELL, describe
from retro_gamer.adapters.pettingzoo_env import ParallelGameEnv
from retro_gamer.env.environment import make_encoder
from retro_gamer.errors import RetroGamerError
from retro_gamer.examples import chase
from retro_gamer.policy import TrainedPolicy

enemy_run = test_chase.enemy_run  # the same tiny trained enemy as the chase tests
SIDES = {chase.PLAYER: "player_reward", chase.ENEMY: "enemy_reward"}


@pytest.fixture(scope="module")
def env() -> ParallelGameEnv:
    return chase.parallel_env()


def test_it_passes_pettingzoo_api_test_with_both_sides_as_agents(env: ParallelGameEnv):
    assert env.possible_agents == [chase.PLAYER, chase.ENEMY] and env.metadata["name"] == f"chase_v{chase.RULES}"
    for agent in env.possible_agents:
        assert env.keys[agent] == [*chase.KEYS, None]  # the trainer's order: the keys, then no key
        assert env.descriptions[agent].reward == SIDES[agent]
    parallel_api_test(env, num_cycles=250)  # more than the 200-turn limit: games end inside it


def test_it_passes_pettingzoo_seed_test():
    parallel_seed_test(chase.parallel_env, num_cycles=100)


def play(env: ParallelGameEnv, seed: int, turns: int):
    """Observations, rewards and endings of games from one seed, the actions drawn from a stream of their own."""
    actions = random.Random(seed)
    obs, _ = env.reset(seed=seed)
    yield {a: {k: v.tobytes() for k, v in o.items()} for a, o in obs.items()}
    for _ in range(turns):
        obs, rewards, terminations, truncations, _ = env.step({a: actions.randrange(5) for a in env.agents})
        yield ({a: {k: v.tobytes() for k, v in o.items()} for a, o in obs.items()}, rewards, terminations, truncations)
        if not env.agents:
            obs, _ = env.reset()  # the game after goes on from the same stream
            yield {a: {k: v.tobytes() for k, v in o.items()} for a, o in obs.items()}


def test_environments_stepped_alternately_play_as_each_alone_and_leave_the_callers_random_alone():
    a, b = chase.parallel_env(turn_limit=30), chase.parallel_env(turn_limit=30)
    alone_a, alone_b = list(play(a, 3, 70)), list(play(b, 4, 70))  # more than two games of 30 turns
    assert alone_a != alone_b and list(play(a, 3, 70)) == alone_a
    random.seed(12345)
    callers = random.getstate()
    together_a, together_b = [], []
    for step_a, step_b in zip_longest(play(a, 3, 70), play(b, 4, 70)):  # a turn each, in turn
        together_a += [step_a] if step_a is not None else []
        together_b += [step_b] if step_b is not None else []
    assert (together_a, together_b) == (alone_a, alone_b)
    assert random.getstate() == callers


def scripted_actions(env: ParallelGameEnv) -> dict[str, int]:
    """The round-0 scripts' keys (the game's own baselines) as each agent's action."""
    scripts = {chase.PLAYER: chase.CoinGrabberPolicy(), chase.ENEMY: chase.ChaserPolicy()}
    return {agent: env.keys[agent].index(scripts[agent].get_action(env.game)) for agent in env.agents}


def test_rewards_are_the_reward_keys_changes_and_a_decided_game_terminates_with_the_games_outcome(
    env: ParallelGameEnv,
):
    random.seed(0)  # the scripts draw from the caller's random
    results = set()
    for seed in range(6):
        _, infos = env.reset(seed=seed)
        before = infos[chase.PLAYER]["state"]
        while env.agents:
            obs, rewards, terminations, truncations, infos = env.step(scripted_actions(env))
            after = env.game.state
            assert rewards == {agent: after[key] - before[key] for agent, key in SIDES.items()}
            assert all(info["state"] == after for info in infos.values())
            before = dict(after)
        result = chase.outcome(env.game)
        assert {agent: info["outcome"] for agent, info in infos.items()} == result
        decided = result[chase.PLAYER] != chase.DRAW
        assert terminations == dict.fromkeys(SIDES, decided) and truncations == dict.fromkeys(SIDES, not decided)
        results.add(result[chase.ENEMY])
    assert chase.WIN in results or chase.LOSS in results  # the scripts decide most games
    with pytest.raises(RetroGamerError, match=r"the game is over \(or not started\): call reset\(\)"):
        env.step({})


def test_the_turn_limit_terminates_with_the_enemys_win():
    env = chase.parallel_env(turn_limit=5)
    env.reset(seed=0)
    still = {agent: env.keys[agent].index(None) for agent in env.agents}  # nobody moves: the enemy starts 8 steps away
    endings = []
    for _ in range(5):
        _, _, terminations, truncations, infos = env.step(still)
        endings.append((terminations[chase.PLAYER], truncations[chase.PLAYER]))
    assert endings == [(False, False)] * 4 + [(True, False)] and not env.agents  # decided by the rules: no cut
    assert {agent: info["outcome"] for agent, info in infos.items()} == {
        chase.PLAYER: chase.LOSS,
        chase.ENEMY: chase.WIN,
    }
    assert env.game.state["turn"] == 5 and not env.game.playing  # the game's own limit ended it


def test_a_trained_enemy_chooses_the_same_key_from_the_observation_as_from_the_game(
    env: ParallelGameEnv, enemy_run: Path
):
    """The enemy's observation is the numbers its trained policy reads from the game: the same Q-values, the same key."""
    policy = TrainedPolicy(enemy_run)
    player = make_encoder(
        describe(test_chase.PLAYER_GAME, test_chase.PLAYER_OVERRIDES, Path.cwd())
    )  # as `retro-gamer create` describes the player's run (chase's docstring)
    actions = random.Random(5)
    obs, _ = env.reset(seed=5)
    for _ in range(40):
        seen = obs[chase.ENEMY]
        board = torch.from_numpy(seen["board"].reshape(policy.encoder.board_shape).astype(np.uint8))[None]
        with torch.inference_mode():
            q = policy.network(board, torch.from_numpy(seen["state"])[None])[0].numpy()
        assert np.allclose(q, policy.q_values(env.game), atol=1e-5)
        choice = int(q.argmax())
        assert env.keys[chase.ENEMY][choice] == policy.get_action(env.game)
        theirs = player.encode(env.game, rendered=False)
        assert np.array_equal(obs[chase.PLAYER]["board"], theirs.board.ravel())
        assert np.array_equal(obs[chase.PLAYER]["state"], theirs.extras)
        obs, *_ = env.step({chase.PLAYER: actions.randrange(5), chase.ENEMY: choice})
        if not env.agents:
            break


def test_ansi_and_rgb_array_render_the_board():
    text = chase.parallel_env(render_mode="ansi")
    text.reset(seed=0)
    lines = text.render().splitlines()
    assert lines[0] == lines[11] == "+" + "-" * 16 + "+" and "".join(lines[1:11]).count("@") == 1
    image = chase.parallel_env(render_mode="rgb_array", observation="onehot")
    image.reset(seed=0)
    assert image.render().shape == (12 * CELL[1], 18 * CELL[0], 3)
    assert image.observation_space(chase.ENEMY)["board"].shape == (6, 7, 7)  # blank, 4 characters, off-board


def test_a_wrong_action_says_what_each_agent_may_press(env: ParallelGameEnv):
    env.reset(seed=0)
    with pytest.raises(RetroGamerError, match=r"actions\['enemy'\] must be a whole number from 0 to 4, got 7"):
        env.step({chase.PLAYER: 0, chase.ENEMY: 7})
    with pytest.raises(RetroGamerError, match=r"actions\['player'\] must be .* got None"):
        env.step({chase.ENEMY: 0})
