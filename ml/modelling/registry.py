"""MLflow logging, model registry and champion/challenger promotion (sqlite backend).

A trained :class:`~ml.models.churn.model.ChurnModel` is logged as a pyfunc model whose artifacts are the
CatBoost binary and a JSON of the calibrator and feature lists, so the calibrator always travels
with its booster. Promotion is by rule: the new version becomes ``champion`` only if its AUC on the
same validation frame is at least the current champion's AUC minus a margin; otherwise it is
``challenger``.

Nothing per person is logged: parameters, aggregate metrics, the split summary (dates, counts,
rates), the two plots and the model. No training rows, no customer ids, no input example.

MLflow keeps the tracking URI in process-global state; every public function here sets it from
its :class:`MlflowConfig` first, so calls with different configs do not leak into each other.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from importlib.metadata import version as installed_version
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.pyfunc import PythonModel
from mlflow.tracking import MlflowClient

from ml.data.features import LABEL_COLUMN
from ml.modelling.evaluation import EvaluationResult
from ml.modelling.promotion import (
    PromotionDecision,
    PromotionRule,
    decide_promotion,
    promotion_scores,
)
from ml.models.churn.model import ChurnModel
from ml.serving.publishing import redact_url

CHAMPION = "champion"
CHALLENGER = "challenger"
_ARTIFACT_KEY = "churn_model"
_REQUIREMENTS = ("catboost", "pandas", "numpy", "scikit-learn")


@dataclass(frozen=True)
class MlflowConfig:
    """Where to track and register.

    Attributes:
        tracking_uri: ``sqlite:///<CRM_HOME>/mlflow.db``; also used as the registry URI.
        artifacts_dir: Root of run and model artifacts (``<CRM_HOME>/mlartifacts``).
        experiment: Experiment name.
        model_name: Registered model name.
    """

    tracking_uri: str
    artifacts_dir: Path
    experiment: str = "churn"
    model_name: str = "churn"


@dataclass(frozen=True)
class RegistrationResult:
    """Outcome of logging and registering one model.

    Attributes:
        run_id: MLflow run id.
        model_version: Registered model version (string, as the registry gives it).
        alias: ``champion`` or ``challenger``.
        champion_auc_before: AUC of the previous champion on the same validation frame, or
            ``None`` when there was no champion.
        reason: The promotion decision in words, with the numbers.
        decision: The whole decision, term by term.
    """

    run_id: str
    model_version: str
    alias: str
    champion_auc_before: float | None
    reason: str
    decision: PromotionDecision


class ChurnPyfunc(PythonModel):
    """pyfunc wrapper: loads the booster and calibrator from the model's artifacts.

    ``predict`` returns calibrated churn probabilities for a frame of features.
    """

    def __init__(self) -> None:
        self.model: ChurnModel | None = None

    def load_context(self, context: Any) -> None:
        self.model = ChurnModel.load(Path(context.artifacts[_ARTIFACT_KEY]))

    # A DataFrame hint tells MLflow not to infer a schema (no input example is ever logged).
    def predict(
        self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None
    ) -> np.ndarray:
        if self.model is None:
            raise RuntimeError("model artifacts are not loaded")
        return self.model.predict_proba(model_input)


def _use(config: MlflowConfig) -> MlflowClient:
    mlflow.set_tracking_uri(config.tracking_uri)
    mlflow.set_registry_uri(config.tracking_uri)
    return MlflowClient(tracking_uri=config.tracking_uri, registry_uri=config.tracking_uri)


def _experiment_id(client: MlflowClient, config: MlflowConfig) -> str:
    experiment = client.get_experiment_by_name(config.experiment)
    if experiment is not None:
        return str(experiment.experiment_id)
    # Without an explicit location MLflow would write artifacts to ./mlruns in the cwd.
    location = (config.artifacts_dir / config.experiment).resolve()
    location.mkdir(parents=True, exist_ok=True)
    return str(client.create_experiment(config.experiment, artifact_location=location.as_uri()))


def _pip_requirements() -> list[str]:
    return [f"{name}=={installed_version(name)}" for name in _REQUIREMENTS]


class RegistryUnavailableError(RuntimeError):
    """The MLflow tracking server or registry database cannot be reached."""


# What the registry answers when there is simply no champion yet (no model, or no alias).
_NO_CHAMPION_CODES = {"RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"}


def _champion_version(client: MlflowClient, config: MlflowConfig) -> str | None:
    try:
        return str(client.get_model_version_by_alias(config.model_name, CHAMPION).version)
    except MlflowException as error:
        if error.error_code in _NO_CHAMPION_CODES:
            return None
        # Anything else (connection refused, a locked database) must not read as "no champion".
        # MLflow's message repeats the URI, password included: redact it and do not chain the
        # original error, whose text would reach the run log.
        redacted = redact_url(config.tracking_uri)
        raise RegistryUnavailableError(
            f"MLflow registry at {redacted} is unavailable, so {config.model_name!r} cannot be "
            f"loaded and nothing is scored or published: "
            f"{str(error).replace(config.tracking_uri, redacted)}"
        ) from None


def _required_champion_version(config: MlflowConfig) -> str:
    version = _champion_version(_use(config), config)
    if version is None:
        raise LookupError(
            f"no champion for registered model {config.model_name!r} at {config.tracking_uri}: "
            "train and register a model first"
        )
    return version


def _load_version(config: MlflowConfig, version: str) -> ChurnModel:
    loaded = mlflow.pyfunc.load_model(f"models:/{config.model_name}/{version}")
    wrapper = loaded.unwrap_python_model()
    if not isinstance(wrapper, ChurnPyfunc) or wrapper.model is None:
        raise TypeError(f"{config.model_name} version {version} is not a churn pyfunc model")
    return wrapper.model


def latest_promotion_decision(config: MlflowConfig) -> tuple[str, str | None, dict[str, Any]]:
    """The newest registered version, the current champion, and the version's decision.

    Returns:
        ``(version, champion_version, decision)``; the decision is ``promotion_decision.json``
        of the version's run (``PromotionDecision.to_dict()``).

    Raises:
        LookupError: Nothing is registered under the model name yet.
    """
    client = _use(config)
    versions = client.search_model_versions(f"name = '{config.model_name}'")
    if not versions:
        raise LookupError(f"no version of {config.model_name!r} at {config.tracking_uri}")
    newest = max(versions, key=lambda v: int(v.version))
    decision = mlflow.artifacts.load_dict(f"runs:/{newest.run_id}/promotion_decision.json")
    return str(newest.version), _champion_version(client, config), decision


def load_champion(config: MlflowConfig) -> tuple[ChurnModel, str]:
    """Load the model behind ``models:/<model_name>@champion``.

    Args:
        config: Tracking and registry settings.

    Returns:
        The model and its registered version.

    Raises:
        LookupError: If no version carries the champion alias (nothing trained yet).
    """
    version = _required_champion_version(config)
    # Load by version, not by alias, so the returned version is the one actually loaded.
    return _load_version(config, version), version


def _flat_params(params: dict[str, Any], prefix: str = "") -> dict[str, str]:
    return {f"{prefix}{k}": str(v) for k, v in params.items()}


def log_unregistered_run(
    config: MlflowConfig,
    params: dict[str, Any],
    metrics: dict[str, float],
    json_artifacts: dict[str, Any],
) -> str:
    """Log one run of a model that has no registry life cycle (e.g. segments, refitted each run).

    Args:
        config: Tracking settings; ``config.experiment`` names the experiment.
        params: Flat settings of the run.
        metrics: Finite numbers only; others are dropped.
        json_artifacts: File name -> JSON-serialisable object (aggregates only, never customer
            rows: nothing here may hold PII).

    Returns:
        The MLflow run id.
    """
    client = _use(config)
    with mlflow.start_run(experiment_id=_experiment_id(client, config)) as run:
        mlflow.log_params(params)
        mlflow.log_metrics({k: float(v) for k, v in metrics.items() if np.isfinite(v)})
        for name, content in json_artifacts.items():
            mlflow.log_dict(content, name)
        return str(run.info.run_id)


def log_and_register(
    config: MlflowConfig,
    model: ChurnModel,
    split_summary: dict[str, Any],
    metrics: EvaluationResult,
    params: dict[str, Any],
    plot_paths: list[Path],
    validation_frame: pd.DataFrame,
    rule: PromotionRule | None = None,
    extra_metrics: dict[str, float] | None = None,
    gate_failures: tuple[str, ...] = (),
    json_artifacts: dict[str, Any] | None = None,
) -> RegistrationResult:
    """Log a trained model to MLflow, register it, and set champion or challenger.

    The current champion (if any) is scored on the same validation frame as the new model and
    ``ml.modelling.promotion.decide_promotion`` applies the rule (AUC, Brier, ECE, lift at capacity, gates).
    The decision is logged as ``promotion_decision.json`` and as tags.

    Args:
        config: Tracking and registry settings.
        model: The trained model.
        split_summary: Aggregate description of the split (``TimeSplit.summary()``).
        metrics: Out-of-time metrics of ``model`` on ``validation_frame``.
        params: Training parameters (``TrainingConfig.as_params()``).
        plot_paths: PNG files to log under ``plots/``.
        validation_frame: Validation rows with features and label; used only in memory to
            compare with the champion, never logged.
        rule: The promotion rule (default margins when None).
        extra_metrics: More aggregate metrics to log (e.g. ``oracle_auc``).
        gate_failures: Why blocking checks (the fairness gate) failed; any failure keeps the
            new version a challenger whatever its metrics.
        json_artifacts: File name -> JSON-serialisable aggregates (e.g. the fairness report).

    Returns:
        Run id, version, alias, the champion's AUC before, the reason and the whole decision.
    """
    rule = rule or PromotionRule()
    client = _use(config)
    experiment_id = _experiment_id(client, config)

    y_true = validation_frame[LABEL_COLUMN].astype(int).to_numpy()
    previous = _champion_version(client, config)
    champion_scores = (
        promotion_scores(
            y_true,
            _load_version(config, previous).predict_proba(validation_frame),
            rule.capacity,
        )
        if previous is not None
        else None
    )
    new_scores = promotion_scores(y_true, model.predict_proba(validation_frame), rule.capacity)
    decision = decide_promotion(
        new_scores,
        champion_scores,
        rule,
        rows=len(validation_frame),
        champion_version=previous,
        gate_failures=gate_failures,
    )
    alias = CHAMPION if decision.promote else CHALLENGER

    with mlflow.start_run(experiment_id=experiment_id) as run:
        mlflow.log_params(_flat_params(params))
        mlflow.log_params(_flat_params(split_summary, prefix="split_"))
        mlflow.log_params(
            {
                "calibration_chosen": model.calibration_report.method,
                "refit_on_calibration_slice": str(
                    model.calibration_report.refit_on_calibration_slice
                ),
                "features": ",".join(model.feature_names),
                "cat_features": ",".join(model.cat_features),
            }
        )
        mlflow.log_params(_flat_params(asdict(rule), prefix="promotion_"))
        logged: dict[str, float] = {
            **metrics.as_metrics(),
            **{k: float(v) for k, v in (extra_metrics or {}).items()},
        }
        report = model.calibration_report
        if report.brier_uncalibrated is not None:
            logged["calibration_brier_uncalibrated"] = report.brier_uncalibrated
        if report.brier_calibrated_out_of_fold is not None:
            logged["calibration_brier_sigmoid_oof"] = report.brier_calibrated_out_of_fold
        if champion_scores is not None:
            logged |= {f"champion_{k}_before": v for k, v in asdict(champion_scores).items()}
        mlflow.log_metrics({k: v for k, v in logged.items() if np.isfinite(v)})
        for plot in plot_paths:
            mlflow.log_artifact(str(plot), artifact_path="plots")
        mlflow.log_dict(split_summary, "split_summary.json")
        mlflow.log_dict(decision.to_dict(), "promotion_decision.json")
        for name, content in (json_artifacts or {}).items():
            mlflow.log_dict(content, name)

        with tempfile.TemporaryDirectory() as tmp:
            model_dir = model.save(Path(tmp) / _ARTIFACT_KEY)
            info = mlflow.pyfunc.log_model(
                name="model",
                python_model=ChurnPyfunc(),
                artifacts={_ARTIFACT_KEY: str(model_dir)},
                pip_requirements=_pip_requirements(),
                registered_model_name=config.model_name,
            )
        model_version = str(info.registered_model_version)
        mlflow.set_tags({"alias": alias, "promotion_reason": decision.reason})

    client.set_registered_model_alias(config.model_name, alias, model_version)
    client.set_model_version_tag(
        config.model_name, model_version, "validation_auc", f"{new_scores.roc_auc:.6f}"
    )
    client.set_model_version_tag(
        config.model_name, model_version, "promotion_reason", decision.reason
    )
    return RegistrationResult(
        run_id=run.info.run_id,
        model_version=model_version,
        alias=alias,
        champion_auc_before=champion_scores.roc_auc if champion_scores is not None else None,
        reason=decision.reason,
        decision=decision,
    )


# --------------------------------------------------------------------------------------------
# Every other model of the suite (leads, CLV, uplift, next product): one registry life cycle.
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelRegistration:
    """Outcome of :func:`log_and_register_model`.

    Attributes:
        run_id: MLflow run id.
        model_version: Registered model version.
        alias: ``champion`` or ``challenger``.
        metric: Name of the promotion metric (higher is better).
        score: The new version's promotion metric on the evaluation data.
        champion_score_before: The previous champion's metric on the same data, or ``None``.
        reason: The promotion decision in words, with the numbers.
    """

    run_id: str
    model_version: str
    alias: str
    metric: str
    score: float
    champion_score_before: float | None
    reason: str


class ModelObjectPyfunc(PythonModel):
    """pyfunc wrapper that carries a fitted model object (MLflow pickles it with cloudpickle).

    The suite's models are small objects around CatBoost boosters or fitted parameters, and
    they pickle whole; ``predict`` calls the object's ``predict_proba`` (classifiers with a
    calibrator) or else its ``predict``.
    """

    def __init__(self, model: Any) -> None:
        self.model = model

    def predict(
        self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None
    ) -> Any:
        predict = getattr(self.model, "predict_proba", None) or self.model.predict
        return predict(model_input)


def _load_object_version(config: MlflowConfig, version: str) -> Any:
    loaded = mlflow.pyfunc.load_model(f"models:/{config.model_name}/{version}")
    wrapper = loaded.unwrap_python_model()
    if not isinstance(wrapper, ModelObjectPyfunc):
        raise TypeError(f"{config.model_name} version {version} is not a model-object pyfunc")
    return wrapper.model


def load_champion_model(config: MlflowConfig) -> tuple[Any, str]:
    """Load the model object behind ``models:/<model_name>@champion`` and its version.

    Raises:
        LookupError: If no version carries the champion alias.
    """
    version = _required_champion_version(config)
    return _load_object_version(config, version), version


def log_and_register_model(
    config: MlflowConfig,
    model: Any,
    *,
    metric: str,
    new_score: float,
    champion_score: Callable[[Any], float] | None,
    params: dict[str, Any],
    metrics: dict[str, float],
    plot_paths: Sequence[Path] = (),
    json_artifacts: dict[str, Any] | None = None,
    promotion_margin: float = 0.0,
) -> ModelRegistration:
    """Log a fitted model, register it, and make it champion or challenger by rule.

    The rule is the churn model's: the current champion is scored on the same held-out data as
    the new model, and the new version becomes champion when
    ``new_score >= champion - promotion_margin`` (higher is better). ``new_score`` is measured
    before any refit on the held-out rows; the champion may have been refitted on them in its
    own run, which favours the champion: the rule errs on the side of keeping it.

    Args:
        config: Tracking and registry settings (experiment and registered model name).
        model: The fitted model object; it must pickle and have ``predict(frame)``.
        metric: Name of the promotion metric, e.g. ``roc_auc`` or ``qini``.
        new_score: The new model's held-out metric, from before any refit on those rows.
        champion_score: Held-out metric of the champion's model object (closes over the
            evaluation data, which is never logged). ``None`` for a model refitted from scratch
            every run whose method was chosen on a holdout (CLV): the new version is champion.
        params: Flat training settings.
        metrics: Aggregate held-out metrics (finite numbers only are logged).
        plot_paths: PNG files to log under ``plots/``.
        json_artifacts: File name -> JSON-serialisable aggregates (never customer rows).
        promotion_margin: How much lower than the champion's metric the new one may be.
    """
    client = _use(config)
    experiment_id = _experiment_id(client, config)
    previous = _champion_version(client, config)
    before: float | None = None
    if champion_score is not None and previous is not None:
        before = float(champion_score(_load_object_version(config, previous)))
    new_score = float(new_score)

    with mlflow.start_run(experiment_id=experiment_id) as run:
        mlflow.log_params(_flat_params(params))
        logged = {k: float(v) for k, v in metrics.items()}
        logged[f"promotion_{metric}"] = new_score
        if before is not None:
            logged[f"champion_{metric}_before"] = before
        mlflow.log_metrics({k: v for k, v in logged.items() if np.isfinite(v)})
        for plot in plot_paths:
            mlflow.log_artifact(str(plot), artifact_path="plots")
        for name, content in (json_artifacts or {}).items():
            mlflow.log_dict(content, name)
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=ModelObjectPyfunc(model),
            pip_requirements=_pip_requirements(),
            registered_model_name=config.model_name,
        )
        model_version = str(info.registered_model_version)
        if champion_score is None:
            alias = CHAMPION
            reason = f"refitted every run: {metric} {new_score:.4f} on its holdout"
        elif before is None:
            alias, reason = CHAMPION, f"first model: {metric} {new_score:.4f}, no champion"
        elif new_score >= before - promotion_margin:
            alias = CHAMPION
            reason = (
                f"promoted: {metric} {new_score:.4f} >= champion v{previous} "
                f"{before:.4f} - margin {promotion_margin:.4f} on the same held-out data"
            )
        else:
            alias = CHALLENGER
            reason = (
                f"kept as challenger: {metric} {new_score:.4f} < champion v{previous} "
                f"{before:.4f} - margin {promotion_margin:.4f} on the same held-out data"
            )
        mlflow.set_tags({"alias": alias, "promotion_reason": reason})

    client.set_registered_model_alias(config.model_name, alias, model_version)
    client.set_model_version_tag(config.model_name, model_version, metric, f"{new_score:.6f}")
    client.set_model_version_tag(config.model_name, model_version, "promotion_reason", reason)
    return ModelRegistration(
        run_id=run.info.run_id,
        model_version=model_version,
        alias=alias,
        metric=metric,
        score=new_score,
        champion_score_before=before,
        reason=reason,
    )


def log_artifact_dir(
    config: MlflowConfig, run_id: str, directory: Path, artifact_path: str
) -> None:
    """Add a folder (e.g. a model card) to an existing run's artifacts."""
    client = _use(config)
    client.log_artifacts(run_id, str(directory), artifact_path)


def roll_back(config: MlflowConfig, version: str, reason: str) -> str:
    """Make an earlier registered version the champion again, and record why.

    The version must exist; the previous champion keeps its version and becomes ``challenger``
    (so rolling forward is the same call with its number). The decision is written as tags on
    the version (``promotion_reason``) like every promotion.

    Returns:
        The version that was champion before, or ``"none"``.

    Raises:
        LookupError: If the model or the version does not exist.
    """
    client = _use(config)
    try:
        client.get_model_version(config.model_name, version)
    except MlflowException as missing:
        raise LookupError(
            f"registered model {config.model_name!r} has no version {version!r}"
        ) from missing
    previous = _champion_version(client, config) or "none"
    if previous == version:
        return previous
    client.set_registered_model_alias(config.model_name, CHAMPION, version)
    if previous != "none":
        client.set_registered_model_alias(config.model_name, CHALLENGER, previous)
    client.set_model_version_tag(
        config.model_name, version, "promotion_reason", f"rolled back from v{previous}: {reason}"
    )
    return previous
