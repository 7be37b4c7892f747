"""Churn versions registered before the one registry life cycle (up to commit 879c883).

Those versions were logged with a churn-only pyfunc wrapper whose pickle held no model: the
booster (``model.cbm``) and a JSON of the calibrator, feature lists and training window were
artifacts, read back in ``load_context``. The registry resolves the old wrapper to
:class:`LegacyChurnPyfunc` (``ml.modelling.registry.LEGACY_MODULES``), which reads the same
artifacts into today's :class:`~ml.models.churn.model.ChurnModel`.
"""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Any

import pandas as pd
from catboost import CatBoostClassifier
from mlflow.pyfunc import PythonModel

from ml.modelling.boosting import CalibrationReport, Calibrator
from ml.models.churn.model import ChurnModel, TrainingWindow

_ARTIFACT_KEY = "churn_model"
_MODEL_FILE = "model.cbm"
_META_FILE = "churn_model.json"


def load_churn_artifacts(directory: Path) -> ChurnModel:
    """Read the booster and JSON an old churn version stored as artifacts."""
    meta = json.loads((directory / _META_FILE).read_text())
    booster = CatBoostClassifier()
    booster.load_model(str(directory / _MODEL_FILE))
    calibrator = meta["calibrator"]
    window = meta["training_window"]
    return ChurnModel(
        booster,
        feature_names=tuple(meta["feature_names"]),
        cat_features=tuple(meta["cat_features"]),
        calibrator=Calibrator(
            **{
                **calibrator,
                # JSON turned the threshold tuples into lists.
                "x_thresholds": tuple(calibrator["x_thresholds"]),
                "y_thresholds": tuple(calibrator["y_thresholds"]),
            }
        )
        if calibrator
        else None,
        training_window=TrainingWindow(
            tuple(date.fromisoformat(d) for d in window["train_dates"]),
            date.fromisoformat(window["calibration_date"]) if window["calibration_date"] else None,
            date.fromisoformat(window["validation_date"]),
        )
        if window
        else None,
        calibration_report=CalibrationReport(**meta["calibration_report"]),
    )


class LegacyChurnPyfunc(PythonModel):
    """The old churn wrapper: its model comes from the version's artifacts."""

    def __init__(self) -> None:
        self.model: ChurnModel | None = None

    def load_context(self, context: Any) -> None:
        self.model = load_churn_artifacts(Path(context.artifacts[_ARTIFACT_KEY]))

    def predict(
        self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None
    ) -> Any:
        if self.model is None:
            raise RuntimeError("model artifacts are not loaded")
        return self.model.predict_proba(model_input)
