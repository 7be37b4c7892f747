"""The model registry: every model of the suite is logged, registered and loaded the same way.

One life cycle for every model (MLflow on sqlite by default):

* a training pipeline returns a :class:`Candidate`: the fitted model object, its parameters and
  aggregate metrics, its plots, its model card, and the rule that decides whether it replaces the
  champion (:mod:`ml.modelling.promotion`);
* :func:`register` loads the current champion, lets the rule compare both on the same held-out
  rows, logs the run (parameters, metrics, plots, ``promotion_decision.json``, the model card),
  registers the model and sets the ``champion`` or ``challenger`` alias;
* :func:`load_champion` loads the model object behind ``models:/<name>@champion``.

The model travels as one pyfunc wrapper, :class:`ModelPyfunc`, that carries the fitted object
(MLflow pickles it with cloudpickle; a booster travels with its calibrator). Nothing per person
is logged: parameters, aggregate metrics, plots and the model, never training rows, customer ids
or an input example.

MLflow keeps the tracking URI in process-global state; every public function here sets it from
its :class:`Registry` first, so calls with different registries do not leak into each other.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import sys
import types
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from importlib.metadata import version as installed_version
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.pyfunc import PythonModel
from mlflow.tracking import MlflowClient

from ml.core.postgres import redact_url
from ml.modelling.model_card import ModelCard, write_model_card
from ml.modelling.promotion import PromotionDecision

CHAMPION = "champion"
CHALLENGER = "challenger"
_REQUIREMENTS = ("catboost", "pandas", "numpy", "scikit-learn")
# What the registry answers when there is simply no champion yet (no model, or no alias).
_NO_CHAMPION_CODES = {"RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"}


@dataclass(frozen=True)
class Registry:
    """Where models are tracked and registered.

    Attributes:
        tracking_uri: ``sqlite:///<CRM_HOME>/mlflow.db`` or a server; also the registry URI.
        artifacts_dir: Root of run and model artifacts (``<CRM_HOME>/mlartifacts``) for
            experiments this registry creates.
    """

    tracking_uri: str
    artifacts_dir: Path


class RegistryUnavailableError(RuntimeError):
    """The MLflow tracking server or registry database cannot be reached."""


class ModelPyfunc(PythonModel):
    """The pyfunc wrapper of every registered model: it carries the fitted model object.

    ``predict`` calls the object's ``predict_proba`` (calibrated classifiers) or else its
    ``predict``; the pipelines load the object itself (:func:`load_champion`) and call it.
    """

    def __init__(self, model: Any) -> None:
        self.model = model

    # A DataFrame hint tells MLflow not to infer a schema (no input example is ever logged).
    def predict(
        self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None
    ) -> Any:
        predict = getattr(self.model, "predict_proba", None) or self.model.predict
        return predict(model_input)


@dataclass(frozen=True, eq=False)
class Candidate:
    """A trained model version, ready to be registered.

    Attributes:
        name: Registered model name (also the MLflow experiment).
        model: The fitted model object; it must pickle.
        decide: The promotion rule: given the champion's model object and version (``None``,
            ``None`` when there is no champion), the decision. It closes over the held-out rows,
            which are never logged.
        params: Flat training settings.
        metrics: Aggregate held-out metrics (only finite numbers are logged).
        card: The model card; version, alias, creation time and promotion are filled in here.
        card_dir: Folder the card is written to (logged as the run's ``model_card``).
        plots: PNG files to log under ``plots/``.
        json_artifacts: File name -> JSON-serialisable aggregates (never customer rows).
    """

    name: str
    model: Any
    decide: Callable[[Any | None, str | None], PromotionDecision]
    params: Mapping[str, object]
    metrics: Mapping[str, float]
    card: ModelCard
    card_dir: Path
    plots: Sequence[Path] = ()
    json_artifacts: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, eq=False)
class Training:
    """What a model's ``train`` returns: the candidate, and what a person wants to see of the run.

    Attributes:
        candidate: The model version to register.
        summary: Headline figures and facts (AUC, rows, holdout dates...) for the run's page.
        tables: Markdown tables worth showing on that page (a fairness audit, flagged proxies).
    """

    candidate: Candidate
    summary: Mapping[str, float | int | str]
    tables: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Registration:
    """Outcome of registering one model version.

    Attributes:
        run_id: MLflow run id.
        model_version: Registered model version (string, as the registry gives it).
        alias: ``champion`` or ``challenger``.
        decision: The promotion decision, term by term, with its reason.
        model_card: The card's Markdown and HTML files.
    """

    run_id: str
    model_version: str
    alias: str
    decision: PromotionDecision
    model_card: tuple[Path, Path]

    @property
    def reason(self) -> str:
        """The promotion decision in words, with the numbers."""
        return self.decision.reason


def _use(registry: Registry) -> MlflowClient:
    mlflow.set_tracking_uri(registry.tracking_uri)
    mlflow.set_registry_uri(registry.tracking_uri)
    return MlflowClient(tracking_uri=registry.tracking_uri, registry_uri=registry.tracking_uri)


def _experiment_id(client: MlflowClient, registry: Registry, experiment: str) -> str:
    found = client.get_experiment_by_name(experiment)
    if found is not None:
        return str(found.experiment_id)
    # Without an explicit location MLflow would write artifacts to ./mlruns in the cwd.
    location = (registry.artifacts_dir / experiment).resolve()
    location.mkdir(parents=True, exist_ok=True)
    return str(client.create_experiment(experiment, artifact_location=location.as_uri()))


def _pip_requirements() -> list[str]:
    return [f"{name}=={installed_version(name)}" for name in _REQUIREMENTS]


def _champion_version(client: MlflowClient, registry: Registry, name: str) -> str | None:
    try:
        return str(client.get_model_version_by_alias(name, CHAMPION).version)
    except MlflowException as error:
        if error.error_code in _NO_CHAMPION_CODES:
            return None
        # Anything else (connection refused, a locked database) must not read as "no champion".
        # MLflow's message repeats the URI, password included: redact it and do not chain the
        # original error, whose text would reach the run log.
        redacted = redact_url(registry.tracking_uri)
        raise RegistryUnavailableError(
            f"MLflow registry at {redacted} is unavailable, so {name!r} cannot be loaded and "
            f"nothing is scored or published: "
            f"{str(error).replace(registry.tracking_uri, redacted)}"
        ) from None


def champion_version(registry: Registry, name: str) -> str | None:
    """The version behind ``models:/<name>@champion``, or None when there is none yet."""
    return _champion_version(_use(registry), registry, name)


def version_metrics(registry: Registry, name: str, version: str) -> dict[str, float]:
    """The held-out metrics logged with ``version`` of ``name`` when it was trained (what the
    monitoring compares a scoring run's estimated and realized figures with)."""
    client = _use(registry)
    run_id = client.get_model_version(name, version).run_id
    return {} if run_id is None else dict(client.get_run(run_id).data.metrics)


def _load_version(name: str, version: str) -> Any:
    with legacy_module_paths():
        loaded = mlflow.pyfunc.load_model(f"models:/{name}/{version}")
    wrapper = loaded.unwrap_python_model()
    model = getattr(wrapper, "model", None)
    if model is None:
        raise TypeError(f"{name} version {version} carries no model object")
    return model


def load_version(registry: Registry, name: str, version: str) -> Any:
    """Load the model object of one registered version of ``name``."""
    _use(registry)
    return _load_version(name, version)


def reference_probabilities(
    registry: Registry, name: str
) -> Callable[[str, np.ndarray], np.ndarray]:
    """``(version, served probabilities) -> reference probabilities`` of ``name``'s versions
    (``CalibratedBooster.reference_probability``), each version loaded once: what performance
    estimation trusts (``ml.modelling.performance.ReferenceProbability``)."""
    models: dict[str, Any] = {}

    def of(version: str, served: np.ndarray) -> np.ndarray:
        if version not in models:
            models[version] = load_version(registry, name, version)
        mapped = getattr(models[version], "reference_probability", None)
        return served if mapped is None else mapped(served)

    return of


def load_champion(registry: Registry, name: str) -> tuple[Any, str]:
    """Load the model object behind ``models:/<name>@champion`` and its version.

    Raises:
        LookupError: If no version carries the champion alias (nothing trained yet).
        RegistryUnavailableError: The registry cannot be reached.
    """
    version = champion_version(registry, name)
    if version is None:
        raise LookupError(
            f"no champion for registered model {name!r} at {redact_url(registry.tracking_uri)}: "
            "train and register a model first"
        )
    # Load by version, not by alias, so the returned version is the one actually loaded.
    return load_version(registry, name, version), version


def _finite(values: Mapping[str, float]) -> dict[str, float]:
    return {k: float(v) for k, v in values.items() if np.isfinite(float(v))}


def register(registry: Registry, candidate: Candidate) -> Registration:
    """Log a candidate, register it and make it champion or challenger by its rule.

    The current champion (if any) is loaded and the candidate's rule compares both on the same
    held-out rows; the decision is logged as ``promotion_decision.json`` and as tags, every term
    as ``promotion_<term>`` and ``champion_<term>_before`` metrics, and the model card (with the
    version, alias and decision filled in) under ``model_card/``.
    """
    client = _use(registry)
    experiment_id = _experiment_id(client, registry, candidate.name)
    previous = _champion_version(client, registry, candidate.name)
    champion = _load_version(candidate.name, previous) if previous is not None else None
    decision = candidate.decide(champion, previous)
    alias = CHAMPION if decision.promote else CHALLENGER

    with mlflow.start_run(experiment_id=experiment_id) as run:
        mlflow.log_params({k: str(v) for k, v in candidate.params.items()})
        terms = {f"promotion_{t.name}": t.new for t in decision.terms}
        before = {f"champion_{t.name}_before": t.champion for t in decision.terms}
        mlflow.log_metrics(_finite({**candidate.metrics, **terms, **before}))
        for plot in candidate.plots:
            mlflow.log_artifact(str(plot), artifact_path="plots")
        mlflow.log_dict(decision.to_dict(), "promotion_decision.json")
        for file_name, content in candidate.json_artifacts.items():
            mlflow.log_dict(content, file_name)
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=ModelPyfunc(candidate.model),
            pip_requirements=_pip_requirements(),
            registered_model_name=candidate.name,
        )
        model_version = str(info.registered_model_version)
        mlflow.set_tags({"alias": alias, "promotion_reason": decision.reason})
        card = replace(
            candidate.card,
            model_name=candidate.name,
            model_version=model_version,
            alias=alias,
            created_at=datetime.now(UTC),
            promotion=decision.reason,
        )
        card_paths = write_model_card(card, candidate.card_dir)
        mlflow.log_artifacts(str(candidate.card_dir), "model_card")

    client.set_registered_model_alias(candidate.name, alias, model_version)
    client.set_model_version_tag(candidate.name, model_version, "promotion_reason", decision.reason)
    for term in decision.terms:
        client.set_model_version_tag(candidate.name, model_version, term.name, f"{term.new:.6f}")
    return Registration(run.info.run_id, model_version, alias, decision, card_paths)


def log_unregistered_run(
    registry: Registry,
    experiment: str,
    params: Mapping[str, Any],
    metrics: Mapping[str, float],
    json_artifacts: Mapping[str, Any],
) -> str:
    """Log one run of a model that has no registry life cycle (segments, refitted each run).

    Args:
        registry: Where to track.
        experiment: MLflow experiment name.
        params: Flat settings of the run.
        metrics: Finite numbers only; others are dropped.
        json_artifacts: File name -> JSON-serialisable aggregates (never customer rows).

    Returns:
        The MLflow run id.
    """
    client = _use(registry)
    with mlflow.start_run(experiment_id=_experiment_id(client, registry, experiment)) as run:
        mlflow.log_params(dict(params))
        mlflow.log_metrics(_finite(metrics))
        for file_name, content in json_artifacts.items():
            mlflow.log_dict(content, file_name)
        return str(run.info.run_id)


def latest_promotion_decision(registry: Registry, name: str) -> tuple[str, str | None, dict]:
    """The newest registered version of ``name``, the current champion, and that version's
    decision (``promotion_decision.json`` of its run, :meth:`PromotionDecision.to_dict`).

    Raises:
        LookupError: Nothing is registered under the name yet.
    """
    client = _use(registry)
    versions = client.search_model_versions(f"name = '{name}'")
    if not versions:
        raise LookupError(f"no version of {name!r} at {redact_url(registry.tracking_uri)}")
    newest = max(versions, key=lambda v: int(v.version))
    decision = mlflow.artifacts.load_dict(f"runs:/{newest.run_id}/promotion_decision.json")
    return str(newest.version), _champion_version(client, registry, name), decision


def promotion_records(
    registry: Registry, names: Sequence[str], decided_at: datetime
) -> pd.DataFrame:
    """One row per model: its newest version's promotion decision, for the governance table.

    Models with nothing registered yet, or whose newest version has no decision file (versions
    registered before every model had one), have no row.

    Returns:
        ``model_name``, ``model_version``, ``decided_at``, ``promoted``, ``champion_compared``,
        ``champion_now``, ``comparison_rows``, ``reason``, ``terms`` (JSON).
    """
    rows = []
    for name in names:
        try:
            version, champion, decision = latest_promotion_decision(registry, name)
        except (LookupError, MlflowException):
            continue
        rows.append(
            {
                "model_name": name,
                "model_version": version,
                "decided_at": decided_at,
                "promoted": bool(decision["promote"]),
                "champion_compared": decision["champion_version"],
                "champion_now": champion,
                "comparison_rows": int(decision["rows"]),
                "reason": decision["reason"],
                "terms": json.dumps(decision["terms"]),
            }
        )
    return pd.DataFrame(rows)


def roll_back(registry: Registry, name: str, version: str, reason: str) -> str:
    """Make an earlier registered version the champion again, and record why.

    The version must exist; the previous champion keeps its version and becomes ``challenger``
    (so rolling forward is the same call with its number). The decision is written as a tag on
    the version (``promotion_reason``) like every promotion.

    Returns:
        The version that was champion before, or ``"none"``.

    Raises:
        LookupError: If the model or the version does not exist.
    """
    client = _use(registry)
    try:
        client.get_model_version(name, version)
    except MlflowException as missing:
        raise LookupError(f"registered model {name!r} has no version {version!r}") from missing
    previous = _champion_version(client, registry, name) or "none"
    if previous == version:
        return previous
    client.set_registered_model_alias(name, CHAMPION, version)
    if previous != "none":
        client.set_registered_model_alias(name, CHALLENGER, previous)
    client.set_model_version_tag(
        name, version, "promotion_reason", f"rolled back from v{previous}: {reason}"
    )
    return previous


# --------------------------------------------------------------------------------------------
# Registries written before ml/ became packages (up to commit 879c883)
# --------------------------------------------------------------------------------------------

# A registered model is a pickle, and a pickle names the module of every class in it. These are
# the modules of the flat layout and where their classes live now (searched in order); two
# classes were also renamed. Unpickling a version registered then resolves its classes here.
# When a pickled class moves again, add its old module to this table.
LEGACY_MODULES: dict[str, tuple[str, ...]] = {
    "ml.registry": ("ml.modelling.registry", "ml.models.churn.legacy"),
    "ml.training": ("ml.models.churn.model", "ml.modelling.boosting"),
    "ml.evaluation": ("ml.modelling.evaluation",),
    "ml.frames": ("ml.modelling.boosting",),
    "ml.leads": ("ml.models.lead_scoring.model",),
    "ml.next_product": ("ml.models.next_product.model",),
    "ml.clv": ("ml.models.customer_value.model",),
    "ml.campaign_uplift": ("ml.models.retention_uplift.model",),
    "ml.uplift": ("ml.modelling.uplift",),
}
LEGACY_NAMES = {"ModelObjectPyfunc": "ModelPyfunc", "ChurnPyfunc": "LegacyChurnPyfunc"}


def _legacy_module(old: str, homes: tuple[str, ...]) -> types.ModuleType:
    module = types.ModuleType(old, f"where the classes of {old} live now: {', '.join(homes)}")

    def find(name: str) -> Any:
        for home in homes:
            found = getattr(importlib.import_module(home), LEGACY_NAMES.get(name, name), None)
            if found is not None:
                return found
        raise AttributeError(f"{old}.{name} has no home in {', '.join(homes)}")

    module.__getattr__ = find  # type: ignore[method-assign]
    return module


@contextlib.contextmanager
def legacy_module_paths() -> Iterator[None]:
    """While loading a model, resolve the module paths of the flat layout to the packages.

    Old module names that are real modules now (none are) are left alone, and the aliases are
    removed again afterwards, so nothing outside a load ever imports an old path.
    """
    added = [old for old in LEGACY_MODULES if old not in sys.modules]
    for old in added:
        sys.modules[old] = _legacy_module(old, LEGACY_MODULES[old])
    try:
        yield
    finally:
        for old in added:
            sys.modules.pop(old, None)
