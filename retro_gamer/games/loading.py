"""Turn a factory string into a callable, and find a game project's ``[tool.retro-gamer]`` table.

Factory strings take four forms, so a student can point at whatever they have:
``module:function``, ``path/to/file.py[:function]``, ``path/to/package_dir`` and ``module``
(the last two call ``create_game``). Relative paths are relative to ``base_dir``.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from retro_gamer.compat import tomllib
from retro_gamer.errors import ConfigError, RetroGamerError
from retro_gamer.games.description import GameDescription, parse_description

DEFAULT_FUNCTION = "create_game"


def _split(spec: str) -> tuple[str, str]:
    """Split ``target[:function]`` without mistaking a Windows drive letter for a function."""
    target, sep, function = spec.rpartition(":")
    if not sep or not function.isidentifier() or (len(target) == 1 and target.isalpha()):
        return spec, DEFAULT_FUNCTION
    return target, function


def _looks_like_path(target: str) -> bool:
    return target.endswith(".py") or "/" in target or os.sep in target or target in (".", "..")


def import_target(target: str, base_dir: Path | None = None) -> Any:
    """Import a module named by dotted name, ``.py`` file or package directory."""
    if _looks_like_path(target):
        path = Path(target)
        if not path.is_absolute():  # lexically, so a run folder not yet created can be the base
            path = Path(os.path.normpath((base_dir or Path.cwd()) / path))
        if not path.exists():
            raise RetroGamerError(f"Game file or folder '{target}' does not exist (looked at {path}).")
        path = path.resolve()
        parent = str(path.parent)
        if parent not in sys.path:
            sys.path.insert(0, parent)  # so the game's own sibling imports work
        target = path.stem if path.is_file() else path.name
        _forget_if_elsewhere(target, path if path.is_file() else path / "__init__.py")
    else:
        folder = (base_dir or Path.cwd()).resolve()
        # a submodule's place is its package's to decide; a top-level module beside the base folder is found there
        candidates = () if "." in target else (folder / f"{target}.py", folder / target / "__init__.py")
        beside = [c for c in candidates if c.is_file()]
        if beside:  # a student's my_game.py beside them, found first as `python -m` would
            if str(folder) in sys.path:
                sys.path.remove(str(folder))
            sys.path.insert(0, str(folder))
            _forget_if_elsewhere(target, beside[0])
        elif str(folder) not in sys.path:
            sys.path.append(str(folder))
    try:
        return importlib.import_module(target)
    except SyntaxError as err:
        where = f"{err.filename}, line {err.lineno}" if err.filename else target
        source = f"\n    {err.text.rstrip()}" if err.text else ""
        raise RetroGamerError(
            f"The game module '{target}' has a syntax error at {where}:{source}\n"
            f"{type(err).__name__}: {err.msg}\nFix that line and run the same command again."
        ) from None
    except ImportError as err:
        raise RetroGamerError(
            f"Cannot import game module '{target}': {err}.\n"
            f"Python looked in: {', '.join(sys.path[:4])}, …\n"
            "Run from the folder that contains the game, give its path (my_game.py), "
            "or install it with `pip install -e .` in the game's project."
        ) from None


def _forget_if_elsewhere(name: str, source: Path) -> None:
    """Drop a module of this name imported earlier in this process from another file (another project's
    ``my_game.py``, or a project since moved), so the import reads ``source`` rather than the stale module."""
    module = sys.modules.get(name)
    loaded = getattr(module, "__file__", None)
    if module is not None and (loaded is None or Path(loaded).resolve() != source.resolve()):
        del sys.modules[name]


def load_factory(spec: str, base_dir: Path | None = None) -> Callable[..., Any]:
    """Return the game factory named by ``spec`` (see the module docstring for the forms)."""
    target, function = _split(spec)
    module = import_target(target, base_dir)
    factory = getattr(module, function, None)
    if not callable(factory):
        raise RetroGamerError(
            f"Module '{module.__name__}' has no function '{function}' (from factory '{spec}'). "
            f"Define `def {function}(): return Game(...)` there, or name another function as '{target}:NAME'."
        )
    return factory


def check_callable_without_arguments(factory: Callable[..., Any], spec: str, given: tuple[str, ...] = ()) -> None:
    """Refuse a factory that cannot be called with no arguments (besides ``given``), naming what it asks for."""
    import inspect

    try:
        signature = inspect.signature(factory)
    except (TypeError, ValueError):  # a builtin or C function: let the call decide
        return
    try:
        signature.bind(**dict.fromkeys(given))
    except TypeError:
        needs = [
            p.name
            for p in signature.parameters.values()
            if p.default is p.empty and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD) and p.name not in given
        ]
        where = inspect.getsourcefile(factory) or "its module"
        raise RetroGamerError(
            f"The game factory '{spec}' ({where}) takes {signature}, but it is called with no arguments"
            + (f" except {', '.join(given)}" if given else "")
            + f", so {', '.join(needs)} would be missing. "
            f"Give {'them' if len(needs) > 1 else 'it'} a default value (def {factory.__name__}({needs[0]}=...)), "
            "or point the description at a function that takes none."
        ) from None


def is_model_uri(source: object) -> bool:
    """``runs:/…`` and ``models:/…`` name MLflow models; anything else is a path."""
    return isinstance(source, str) and source.startswith(("runs:/", "models:/"))


def game_factory(desc: GameDescription, base_dir: Path | None = None) -> Callable[[], Any]:
    """The description's factory as a no-argument callable, with ``opponent=`` filled in when the
    description names an opponent (a run directory relative to ``base_dir``, or a model URI)."""
    import functools
    import inspect

    factory = load_factory(desc.factory, base_dir)
    if not desc.opponent:
        check_callable_without_arguments(factory, desc.factory)
        return factory
    try:
        inspect.signature(factory).bind(opponent=None)
    except TypeError:
        raise ConfigError(
            f"factory '{desc.factory}'",
            [
                f"takes no 'opponent' argument, but the game description sets opponent = {desc.opponent!r}. "
                "Give the factory an `opponent=None` parameter (see retro_gamer.examples.chase) or remove opponent."
            ],
        ) from None
    except ValueError:  # a builtin or C function without a signature: let the call decide
        pass
    check_callable_without_arguments(factory, desc.factory, given=("opponent",))
    source = desc.opponent
    if not is_model_uri(source):
        source = str((Path(base_dir or ".") / source).resolve())
    return functools.partial(factory, opponent=source)


def portable(spec: str, base_dir: Path) -> str:
    """A top-level module that lives in ``base_dir`` becomes a relative file path, so a run
    created from the game's folder still finds the game when trained from elsewhere."""
    target, function = _split(spec)
    if _looks_like_path(target) or "." in target:
        return spec
    module = import_target(target, base_dir)
    file = Path(getattr(module, "__file__", "") or "").resolve()
    where = file.parent if file.name == "__init__.py" else file
    try:
        relative = where.relative_to(base_dir.resolve())
    except ValueError:
        return spec  # installed elsewhere: keep the module name
    return f"{relative.as_posix()}:{function}"


def absolute(spec: str, base: Path) -> str:
    """A factory (or run directory) given as a path relative to ``base``, made absolute so it resolves
    from anywhere (a downloaded model); module names and model URIs pass through."""
    target, function = _split(spec)
    if is_model_uri(spec) or not _looks_like_path(target) or Path(target).is_absolute():
        return spec
    path = Path(os.path.normpath(Path(base).resolve() / target)).as_posix()
    return f"{path}:{function}" if spec != target else path


def rebase(spec: str, old_base: Path, new_base: Path) -> str:
    """Re-express a relative file factory against another folder; module names pass through."""
    target, function = _split(spec)
    if not _looks_like_path(target) or Path(target).is_absolute():
        return spec
    moved = os.path.relpath(os.path.normpath(old_base.resolve() / target), new_base.resolve())
    suffix = f":{function}" if spec != target else ""
    return Path(moved).as_posix() + suffix


def find_pyproject(target: str, base_dir: Path | None = None) -> Path | None:
    """The ``pyproject.toml`` of the project that holds ``target`` (a module name or a path).

    A module is imported to find its file, so an unimportable one fails here with the import error.
    """
    if _looks_like_path(target):
        start = (
            Path(target) if Path(target).is_absolute() else Path(os.path.normpath((base_dir or Path.cwd()) / target))
        )
        if not start.exists():
            raise RetroGamerError(f"Game file or folder '{target}' does not exist (looked at {start}).")
    else:
        module = import_target(target, base_dir)
        start = Path(getattr(module, "__file__", None) or ".")
    start = start.resolve()
    for folder in ([start] if start.is_dir() else []) + list(start.parents):
        candidate = folder / "pyproject.toml"
        if candidate.is_file():
            return candidate
        if folder.name in ("site-packages", "dist-packages"):
            break
    return None


def description_from_pyproject(target: str, base_dir: Path | None = None) -> GameDescription:
    """Read ``[tool.retro-gamer]`` for the game ``target`` (module name, file or folder)."""
    path = find_pyproject(_split(target)[0], base_dir)
    if path is None:
        raise RetroGamerError(
            f"No pyproject.toml found for game '{target}'. Add one beside the game with a "
            '[tool.retro-gamer] table (actions = ["KEY_UP", ...], reward = "score").'
        )
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(str(path), [f"is not valid TOML: {err}."]) from None
    table = data.get("tool", {}).get("retro-gamer")
    if table is None:
        raise ConfigError(
            str(path), ['has no [tool.retro-gamer] table; add one with actions = [...] and reward = "..."']
        )
    source = f"{path} [tool.retro-gamer]"
    if _split(target)[0] != target:  # an explicit module:function beats the table's own factory
        return parse_description({**table, "factory": target}, source)
    return parse_description(table, source, defaults={"factory": target})
