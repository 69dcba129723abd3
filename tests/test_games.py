"""Game descriptions from both sources, and each validation error a user can hit."""

from __future__ import annotations

from pathlib import Path

import pytest

from retro_gamer.errors import ConfigError, RetroGamerError
from retro_gamer.games import (
    description_from_pyproject,
    load_factory,
    parse_description,
    rebase,
)
from retro_gamer.run.directory import resolve_game

SNAKE = {"factory": "retro.examples.snake:create_game", "actions": ["KEY_UP", "KEY_DOWN"], "reward": "score"}


def resolve(data: dict, base: Path | None = None):
    desc = parse_description(data, "game.yaml")
    return resolve_game(desc, "game.yaml", base or Path.cwd(), exploration_turns=50, seed=0)


def test_reward_key_missing_from_state_suggests_the_nearest():
    with pytest.raises(ConfigError) as err:
        resolve({**SNAKE, "reward": "scor"})
    assert "reward 'scor'" in str(err.value) and "Did you mean 'score'" in str(err.value)
    assert "game.yaml" in str(err.value)


def test_observe_state_key_missing_from_state():
    with pytest.raises(ConfigError, match="observe_state entry 'apple_x'.*Did you mean 'apple_dx'"):
        resolve({**SNAKE, "observe_state": ["apple_x"]})


def test_action_that_is_not_a_string():
    with pytest.raises(ConfigError, match=r"actions\[1\] = 3 is not a key name"):
        parse_description({**SNAKE, "actions": ["KEY_UP", 3]}, "game.yaml")


def test_unknown_key_suggests_the_nearest_valid_one():
    with pytest.raises(ConfigError, match="unknown key 'charset'.*Did you mean 'character_set'"):
        parse_description({**SNAKE, "charset": ["@"]}, "game.yaml")


def test_all_problems_are_reported_at_once():
    with pytest.raises(ConfigError) as err:
        parse_description({"factory": "x:y", "actions": "KEY_UP", "rewards": "s", "max_turns": 0}, "game.yaml")
    problems = err.value.problems
    assert len(problems) == 4, problems  # unknown 'rewards', missing 'reward', bad actions, bad max_turns
    assert "game.yaml: 4 problem(s)" in str(err.value)


def test_factory_that_cannot_be_imported():
    with pytest.raises(RetroGamerError, match="(?s)Cannot import game module 'no_such_game'.*pip install -e"):
        load_factory("no_such_game:create_game")


def test_factory_module_without_the_function():
    with pytest.raises(RetroGamerError, match="has no function 'make'"):
        load_factory("retro.examples.snake:make")


def test_factory_that_does_not_return_a_game(user_game: Path):
    with pytest.raises(ConfigError, match="returned int, not a retro.game.Game"):
        resolve({"factory": "my_game.py:not_a_game", "actions": ["KEY_LEFT"], "reward": "points"}, user_game)


def test_crop_agent_must_exist():
    with pytest.raises(ConfigError, match="crop.agent 'Snake' is not the name of any agent.*Snake head"):
        resolve({**SNAKE, "crop": {"agent": "Snake", "radius": 3}})


def test_characters_are_discovered_when_not_given():
    desc = resolve(SNAKE)
    assert desc.board_size == (32, 16)
    assert "@" in desc.character_set and " " not in desc.character_set


@pytest.mark.parametrize(
    "module, actions",
    [
        ("retro.examples.nav", ["KEY_LEFT", "KEY_RIGHT"]),
        ("retro.examples.beast", ["KEY_RIGHT", "KEY_UP", "KEY_LEFT", "KEY_DOWN"]),
    ],
)
def test_published_games_load_from_their_own_pyproject(module, actions):
    desc = description_from_pyproject(module)
    assert desc.actions == actions and desc.reward == "score" and desc.spatial is True
    resolved = resolve_game(desc, "pyproject", Path.cwd(), exploration_turns=10, seed=0)
    assert resolved.board_size is not None


def test_user_game_by_path_and_by_module(user_game: Path, monkeypatch):
    by_path = description_from_pyproject(str(user_game / "my_game.py"))
    assert by_path.reward == "points" and by_path.max_turns == 30
    assert load_factory(str(user_game / "my_game.py"))().board_size == (8, 1)
    monkeypatch.chdir(user_game)
    monkeypatch.syspath_prepend(str(user_game))
    assert description_from_pyproject("my_game:create_game").factory == "my_game:create_game"


def test_pyproject_problems_name_the_file(user_game: Path):
    text = (user_game / "pyproject.toml").read_text().replace('reward = "points"', 'rewad = "points"')
    (user_game / "pyproject.toml").write_text(text)
    with pytest.raises(ConfigError) as err:
        description_from_pyproject(str(user_game / "my_game.py"))
    assert "pyproject.toml [tool.retro-gamer]" in str(err.value) and "Did you mean 'reward'" in str(err.value)


def test_relative_file_factories_are_rebased_not_absolutised(tmp_path: Path):
    assert rebase("games/g.py:make", tmp_path, tmp_path / "runs" / "g") == "../../games/g.py:make"
    assert rebase("retro.examples.snake:create_game", tmp_path, tmp_path / "x") == "retro.examples.snake:create_game"


def test_an_explicit_factory_beats_the_one_in_the_table(user_game: Path):
    text = (user_game / "pyproject.toml").read_text() + 'factory = "my_game:create_game"\n'
    (user_game / "pyproject.toml").write_text(text)
    game = str(user_game / "my_game.py")
    assert description_from_pyproject(game).factory == "my_game:create_game"
    assert description_from_pyproject(game + ":not_a_game").factory == game + ":not_a_game"


@pytest.mark.parametrize("spec", ["my_game.py:create_game", "my_game:create_game"], ids=["path", "module"])
def test_a_module_of_the_same_name_from_another_folder_is_not_reused(tmp_path: Path, spec: str):
    """Two projects each with a my_game.py, loaded one after the other in one process (a notebook, a test run):
    the second load reads the second file, not the module the first left in sys.modules."""
    factories = []
    for name in ("first", "second"):
        project = tmp_path / name
        project.mkdir()
        (project / "my_game.py").write_text(f"def create_game():\n    return {name!r}\n")
        factories.append(load_factory(spec, base_dir=project))
    assert [factory() for factory in factories] == ["first", "second"]
