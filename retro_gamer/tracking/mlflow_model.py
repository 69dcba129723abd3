"""Trained policies as MLflow models: log one, register and promote it, and download it by model URI.

A logged policy is an MLflow 3 *LoggedModel* (``models:/<model_id>``) in the pyfunc flavor, so
MLflow users can ``mlflow.pyfunc.load_model`` it and ``predict`` encoded observations. Its pyfunc
artifact ``run`` is a minimal run directory (``config.toml`` + ``checkpoints/ep_NNNN.pt``), so
:func:`download_policy` only has to fetch that folder and :class:`~retro_gamer.policy.TrainedPolicy`
loads it like any run, without unpickling or executing anything from the store.

The model is saved as *models from code*: its code is a short file that builds
:class:`PolicyModel`, which holds no state until ``load_context`` reads the weights with
``weights_only=True``. A pickled ``PythonModel`` would be cloudpickle, which MLflow 3.17 refuses to
load unless ``MLFLOW_ALLOW_PICKLE_DESERIALIZATION`` is set, and which can run code when loaded.

Every function takes its store explicitly (a client or a tracking URI): the trainer logs into a
store that need not be MLflow's global one, so nothing here reads or changes the fluent API's
tracking URI or active run.
"""

from __future__ import annotations

import atexit
import logging
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import tomli_w
import torch
from mlflow import MlflowClient
from mlflow.entities import LoggedModel, LoggedModelOutput, LoggedModelStatus
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from mlflow.models import Model, ModelSignature
from mlflow.pyfunc import PythonModel
from mlflow.types import Schema, TensorSpec

from retro_gamer import __version__
from retro_gamer.compat import tomllib
from retro_gamer.config.schema import CONFIG_FILE, read_config
from retro_gamer.dqn.network import QNetwork
from retro_gamer.errors import RetroGamerError
from retro_gamer.games.loading import absolute
from retro_gamer.run.checkpoint import CHECKPOINT_DIR, checkpoint_name, latest_checkpoint
from retro_gamer.run.checkpoint import load as load_checkpoint
from retro_gamer.tracking.store import environment, resolve_uri, sqlite_path

MODEL_NAME = "policy"
# MLflow reserves the alias "latest" (any case; see mlflow.utils.validation._validate_model_alias_name_reserved)
# and already resolves models:/NAME@latest to the highest version; register_policy sets this one too.
NEWEST_ALIAS = "newest"
RUN_ARTIFACT = "run"  # the pyfunc artifact that holds the run directory
RUN_FOLDER = f"artifacts/{RUN_ARTIFACT}"  # where pyfunc keeps it inside the model's artifacts
URI_FORMS = "runs:/<run_id>/policy, models:/<name>/<version>, models:/<name>@<alias> or models:/<model_id>"

# The models-from-code file logged with every policy: MLflow runs it to build the model.
_MODEL_CODE = '''"""A retro-gamer policy (see retro_gamer.tracking.mlflow_model.PolicyModel)."""
from mlflow.models import set_model

from retro_gamer.tracking.mlflow_model import PolicyModel

set_model(PolicyModel())
'''

# MLflow retries an unreachable server 7 times with doubling backoff (minutes); loading a model
# should fail in seconds. A policy is about 0.5 MB: no progress bars.
_FAIL_FAST = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "5",
}
_QUIET = {"MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false"}


@contextmanager
def _quiet(logger_name: str) -> Iterator[None]:
    """Only warnings from ``logger_name`` while logging a model: every run would print MLflow's INFO line about
    checking the input example, which tells a user nothing (the example is ours and always fits)."""
    logger = logging.getLogger(logger_name)
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(level)


_MISSING = {"RESOURCE_DOES_NOT_EXIST", "NOT_FOUND", "INVALID_PARAMETER_VALUE"}


class PolicyModel(PythonModel):
    """The pyfunc face of a policy: encoded observations in, greedy action indices out.

    ``predict`` takes ``{"board": uint8 (N, h, w), "extras": float32 (N, k)}``, what
    :meth:`retro_gamer.env.observation.ObservationEncoder.encode` makes, stacked, and returns int64 (N,)
    indices into the actions of ``config.toml`` (the last one is the no-op).
    """

    # ``model_input`` has no type hint: MLflow accepts only list[...] hints there. The logged tensor
    # signature validates the input instead, so MLflow's type-hint wrapper (and its warning about the
    # missing hint, printed on every import) is switched off, as MLflow does for its own ChatModel.
    _skip_type_hint_validation = True

    def load_context(self, context: Any) -> None:
        run_dir = Path(context.artifacts[RUN_ARTIFACT])
        newest = latest_checkpoint(run_dir)
        if newest is None:
            raise RetroGamerError(f"the logged policy has no checkpoint in {run_dir}: log it again from its run")
        payload = load_checkpoint(newest)
        self.network = QNetwork.from_dims(read_config(run_dir).model, payload["observation"])
        self.network.load_state_dict(payload["weights"])
        self.network.eval()

    def predict(self, context: Any, model_input, params: dict[str, Any] | None = None) -> np.ndarray:
        board = torch.as_tensor(np.asarray(model_input["board"], dtype=np.uint8))
        extras = torch.as_tensor(np.asarray(model_input["extras"], dtype=np.float32))
        with torch.inference_mode():
            return self.network(board, extras).argmax(dim=1).numpy().astype(np.int64)


def _stage_run(run_dir: Path, checkpoint_path: Path, payload: dict[str, Any], folder: Path) -> Path:
    """``folder`` as a minimal run directory: ``config.toml`` with absolute game paths, one checkpoint."""
    doc = tomllib.loads((run_dir / CONFIG_FILE).read_text(encoding="utf-8"))
    for section, key in (("game", "factory"), ("game", "opponent"), ("metadata", "observation_function")):
        if isinstance(doc.get(section, {}).get(key), str):
            doc[section][key] = absolute(doc[section][key], run_dir)
    (folder / CHECKPOINT_DIR).mkdir(parents=True)
    (folder / CONFIG_FILE).write_bytes(tomli_w.dumps(doc).encode())
    shutil.copyfile(checkpoint_path, folder / CHECKPOINT_DIR / checkpoint_name(payload["episode"]))
    return folder


def _signature(dims: dict[str, Any]) -> ModelSignature:
    h, w = dims["board_shape"]
    inputs = Schema(
        [
            TensorSpec(np.dtype(np.uint8), (-1, h, w), "board"),
            TensorSpec(np.dtype(np.float32), (-1, dims["extras_size"]), "extras"),
        ]
    )
    return ModelSignature(inputs=inputs, outputs=Schema([TensorSpec(np.dtype(np.int64), (-1,))]))


def log_policy_model(
    client: MlflowClient,
    run_id: str,
    run_dir: Path,
    checkpoint_path: Path,
    input_example_obs: tuple[np.ndarray, np.ndarray] | None = None,
) -> str:
    """Log ``checkpoint_path`` of ``run_dir`` as pyfunc model ``policy`` of run ``run_id``; returns
    its ``models:/<model_id>`` URI.

    MLflow's ``log_model`` works through the global tracking URI and active run, so this does its
    steps with ``client``: create the LoggedModel, save the pyfunc model locally, upload it, record
    it as an output of the run (at the checkpoint's episode, so ``runs:/<run_id>/policy`` means the
    latest one), and mark it READY, or FAILED when any step fails. The run stays as it was.
    ``input_example_obs`` is one encoded observation (board, extras); zeros of the right shape otherwise.
    """
    run_dir, checkpoint_path = Path(run_dir), Path(checkpoint_path)
    payload = load_checkpoint(checkpoint_path)
    dims = payload["observation"]
    if input_example_obs is None:
        input_example_obs = (np.zeros(dims["board_shape"], np.uint8), np.zeros(dims["extras_size"], np.float32))
    board, extras = input_example_obs
    example = {"board": np.asarray(board, np.uint8)[None], "extras": np.asarray(extras, np.float32)[None]}
    experiment = client.get_run(run_id).info.experiment_id
    model = client.create_logged_model(
        experiment, name=MODEL_NAME, source_run_id=run_id, tags={"retro_gamer.checkpoint": checkpoint_path.stem}
    )
    try:
        with (
            tempfile.TemporaryDirectory(prefix="retro-gamer-log-") as tmp,
            environment(_QUIET),
            _quiet("mlflow.pyfunc"),
        ):
            code = Path(tmp) / "policy_model.py"
            code.write_text(_MODEL_CODE)
            staged = _stage_run(run_dir, checkpoint_path, payload, Path(tmp) / RUN_ARTIFACT)
            mlflow.pyfunc.save_model(
                Path(tmp) / "model",
                python_model=str(code),
                artifacts={RUN_ARTIFACT: str(staged)},
                signature=_signature(dims),
                input_example=example,
                pip_requirements=[f"retro-gamer=={__version__}", f"torch=={torch.__version__.split('+')[0]}"],
                mlflow_model=Model(
                    artifact_path=model.artifact_location,
                    model_uuid=model.model_id,
                    run_id=run_id,
                    model_id=model.model_id,
                ),
            )
            client.log_model_artifacts(model.model_id, str(Path(tmp) / "model"))
        client.log_outputs(run_id, [LoggedModelOutput(model.model_id, step=payload["episode"])])
    except BaseException:
        client.finalize_logged_model(model.model_id, LoggedModelStatus.FAILED)
        raise
    client.finalize_logged_model(model.model_id, LoggedModelStatus.READY)
    return f"models:/{model.model_id}"


# --- resolving model URIs ----------------------------------------------------------------------


def _parse(uri: str) -> tuple[str, str, str]:
    """``(kind, a, b)``: ("run", run_id, model name), ("version", name, version), ("alias", name, alias)
    or ("id", model_id, "")."""
    if uri.startswith("runs:/"):
        run_id, _, name = uri[len("runs:/") :].partition("/")
        if run_id and name and "/" not in name:
            return "run", run_id, name
    elif uri.startswith("models:/"):
        rest = uri[len("models:/") :]
        name, at, alias = rest.partition("@")
        if at and name and alias and "/" not in rest:
            return "alias", name, alias
        name, slash, version = rest.partition("/")
        if slash and name and version.isdigit():
            return "version", name, version
        if rest and not at and not slash:
            return "id", rest, ""
    raise RetroGamerError(
        f"'{uri}' is not a model URI retro-gamer understands. Use {URI_FORMS} "
        "(models:/<name>@latest is the highest version)."
    )


def _open(uri: str, store: str) -> MlflowClient:
    """A client for ``store``; a SQLite store that does not exist is reported, never created."""
    db = sqlite_path(store)
    if db is not None and not db.is_file():
        raise RetroGamerError(
            f"Model '{uri}': there is no MLflow store at {store} (no file {db}). Run from the "
            "project whose training logged the model, or set MLFLOW_TRACKING_URI (or pass tracking_uri) "
            "to the store that holds it."
        )
    return MlflowClient(tracking_uri=store, registry_uri=store)


@contextmanager
def _store_call(uri: str, store: str) -> Iterator[None]:
    """Fail fast on an unreachable server, and turn MLflow's other errors into one paragraph."""
    try:
        with environment({**_FAIL_FAST, **_QUIET}):
            yield
    except (MlflowException, OSError) as err:  # requests' errors are OSErrors too
        reason = (getattr(err, "message", None) or str(err)).strip().splitlines()[0]
        reason = reason if len(reason) <= 200 else reason[:200] + "…"
        raise RetroGamerError(
            f"Model '{uri}': the MLflow store {store} could not be used ({reason}). Check that the "
            "store is reachable (start the tracking server), or point MLFLOW_TRACKING_URI (or tracking_uri) "
            "at the store that holds the model."
        ) from None


def _missing(err: MlflowException) -> bool:
    return err.error_code in _MISSING


def _problem(uri: str, store: str, what: str) -> RetroGamerError:
    return RetroGamerError(f"Model '{uri}' in the MLflow store {store}: {what}")


def _registry_hint(client: MlflowClient, name: str) -> str:
    """What exists under registered model ``name`` (or which names exist), so the user can pick."""
    try:
        registered = client.get_registered_model(name)
    except MlflowException as err:
        if not _missing(err):
            raise
        names = sorted(m.name for m in client.search_registered_models(max_results=50))
        return f"there is no registered model '{name}'. Registered models: {', '.join(names) or '(none)'}."
    versions = sorted(int(v.version) for v in client.search_model_versions(f"name = '{name}'"))
    aliases = ", ".join(f"@{a} → {v}" for a, v in sorted(registered.aliases.items())) or "(none)"
    return (
        f"'{name}' has versions {', '.join(map(str, versions)) or '(none)'} and aliases {aliases} "
        f"(models:/{name}@latest is the highest version)."
    )


def _version(client: MlflowClient, uri: str, store: str, kind: str, name: str, ref: str) -> ModelVersion:
    """The version ``models:/name/ref`` or ``models:/name@ref`` names."""
    try:
        if kind == "alias":
            return client.get_model_version_by_alias(name, ref)
        return client.get_model_version(name, ref)
    except MlflowException as err:
        if not _missing(err):
            raise
    what = f"alias '@{ref}'" if kind == "alias" else f"version {ref}"
    raise _problem(uri, store, f"no {what} of '{name}': {_registry_hint(client, name)}")


def _model_by_id(client: MlflowClient, uri: str, store: str, model_id: str) -> LoggedModel:
    try:
        return client.get_logged_model(model_id)
    except MlflowException as err:
        if not _missing(err):
            raise
    try:
        client.get_registered_model(model_id)
        hint = f"'{model_id}' is a registered model: use models:/{model_id}/<version> or models:/{model_id}@<alias>."
    except MlflowException:
        hint = "Use the models:/<model_id> URI the training run printed, or a registered name and version."
    raise _problem(uri, store, f"no logged model with id '{model_id}'. {hint}")


def _model_of_run(client: MlflowClient, uri: str, store: str, run_id: str, name: str) -> LoggedModel:
    """The model ``name`` the run logged last (at the highest step), as ``runs:/`` means in MLflow 3."""
    try:
        run = client.get_run(run_id)
    except MlflowException as err:
        if not _missing(err):
            raise
        raise _problem(
            uri, store, f"no run with id '{run_id}'. Copy the run id from the MLflow UI or the training output."
        ) from None
    outputs = sorted(run.outputs.model_outputs if run.outputs else [], key=lambda o: o.step, reverse=True)
    models = [client.get_logged_model(o.model_id) for o in outputs]
    for model in models:
        if model.name == name:
            return model
    logged = ", ".join(sorted({m.name for m in models})) or "none"
    raise _problem(
        uri,
        store,
        f"run {run_id} logged no model named '{name}' (its models: {logged}). "
        f"Train it with tracking enabled, or use runs:/{run_id}/<name>.",
    )


def _logged_model(client: MlflowClient, uri: str, store: str) -> LoggedModel:
    """The LoggedModel a ``runs:/`` or ``models:/<model_id>`` URI names."""
    kind, a, b = _parse(uri)
    if kind == "run":
        return _model_of_run(client, uri, store, a, b)
    if kind == "id":
        return _model_by_id(client, uri, store, a)
    raise RetroGamerError(
        f"'{uri}' is already a registered version; name the logged model instead: "
        "models:/<model_id> or runs:/<run_id>/policy."
    )


def _artifact_root(client: MlflowClient, uri: str, store: str) -> str:
    """Where the artifacts of the model ``uri`` names are stored."""
    kind, name, ref = _parse(uri)
    if kind in ("version", "alias"):
        version = _version(client, uri, store, kind, name, ref)
        return client.get_model_version_download_uri(name, version.version)
    model = _logged_model(client, uri, store)
    if model.status != LoggedModelStatus.READY:
        raise _problem(
            uri,
            store,
            f"model {model.model_id} is {model.status}: its logging did not finish. Log the checkpoint again.",
        )
    return model.artifact_location


# --- registry -----------------------------------------------------------------------------------


def _register(client: MlflowClient, model: LoggedModel, name: str) -> str:
    try:
        client.create_registered_model(name)
    except MlflowException as err:
        if err.error_code != "RESOURCE_ALREADY_EXISTS":
            raise
    # The source is the model's artifact location, not models:/<model_id>: MLflow's SQL registry
    # looks a models:/ source up through the global tracking URI, not this client's store.
    version = client.create_model_version(
        name, source=model.artifact_location, run_id=model.source_run_id, model_id=model.model_id
    )
    client.set_registered_model_alias(name, NEWEST_ALIAS, version.version)
    return str(version.version)


def register_policy(client: MlflowClient, model_uri: str, name: str) -> str:
    """Register the logged model ``model_uri`` as a new version of ``name`` (created when missing) and
    point ``@newest`` at it; returns the version. (``@latest`` cannot be set: MLflow reserves it and
    resolves ``models:/NAME@latest`` to the highest version by itself.)"""
    with _store_call(model_uri, client.tracking_uri):
        return _register(client, _logged_model(client, model_uri, client.tracking_uri), name)


def promote(source: str, name: str, alias: str, tracking_uri: str) -> str:
    """Point ``alias`` (``champion``, …) of registered model ``name`` at the version ``source`` names;
    a ``models:/<model_id>`` or ``runs:/`` source is registered under ``name`` first unless it already
    is. Returns one line saying what changed."""
    with _store_call(source, tracking_uri):
        client = _open(source, tracking_uri)
        kind, a, b = _parse(source)
        if kind in ("version", "alias"):
            if a != name:
                raise RetroGamerError(
                    f"'{source}' is a version of '{a}', not '{name}'. Promote it under '{a}', "
                    f"or promote its models:/<model_id> to register it under '{name}'."
                )
            version = str(_version(client, source, tracking_uri, kind, a, b).version)
        else:
            model = _logged_model(client, source, tracking_uri)
            sources = {model.artifact_location, f"models:/{model.model_id}"}
            known = [int(v.version) for v in client.search_model_versions(f"name = '{name}'") if v.source in sources]
            version = str(max(known)) if known else _register(client, model, name)
        try:
            previous = str(client.get_model_version_by_alias(name, alias).version)
        except MlflowException:
            previous = None
        try:
            client.set_registered_model_alias(name, alias, version)
        except MlflowException as err:
            if err.error_code != "INVALID_PARAMETER_VALUE":
                raise
            raise RetroGamerError(
                f"Cannot set alias '{alias}' on {name} version {version}: {err.message} Use "
                "letters, digits, '_' and '-' ('latest' and v<N> are reserved by MLflow)."
            ) from None
    was = {None: "", version: " (already)"}.get(previous, f" (was version {previous})")
    return f"{name} version {version} is now @{alias}{was}; load it with models:/{name}@{alias}"


# --- downloading --------------------------------------------------------------------------------

_downloads: dict[tuple[str, str], Path] = {}
_download_root: Path | None = None


def _new_download_folder() -> Path:
    """A fresh folder under one temp folder per process, removed at exit."""
    global _download_root
    if _download_root is None:
        _download_root = Path(tempfile.mkdtemp(prefix="retro-gamer-models-"))
        atexit.register(shutil.rmtree, _download_root, ignore_errors=True)
    return Path(tempfile.mkdtemp(dir=_download_root))


def download_policy(uri: str, tracking_uri: str | None = None) -> Path:
    """The local run directory (``config.toml`` + ``checkpoints/``) of the policy model ``uri``.

    Only that folder is downloaded; nothing from the store is unpickled or run. Downloads are cached
    for the life of the process by (store, URI), so an alias moved meanwhile is seen by the next
    process. ``tracking_uri`` defaults to ``MLFLOW_TRACKING_URI``, else the current project's SQLite store.
    """
    store = tracking_uri or resolve_uri(None, Path.cwd())
    if (store, uri) in _downloads:
        return _downloads[(store, uri)]
    _parse(uri)  # a malformed URI is reported before any store is opened
    with _store_call(uri, store):
        client = _open(uri, store)
        run_folder = f"{_artifact_root(client, uri, store).rstrip('/')}/{RUN_FOLDER}"
        listed = mlflow.artifacts.list_artifacts(artifact_uri=run_folder, tracking_uri=store)
        if CONFIG_FILE not in {Path(f.path).name for f in listed}:
            raise _problem(
                uri,
                store,
                f"it is not a retro-gamer policy (no {RUN_FOLDER}/{CONFIG_FILE} in its "
                "artifacts). Use the URI of a model logged by retro-gamer training.",
            )
        folder = Path(
            mlflow.artifacts.download_artifacts(
                artifact_uri=run_folder, dst_path=str(_new_download_folder()), tracking_uri=store
            )
        )
    _downloads[(store, uri)] = folder
    return folder
