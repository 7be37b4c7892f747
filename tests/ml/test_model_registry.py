"""The suite's generic registry life cycle: champion/challenger by a held-out metric."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from ml.modelling.registry import MlflowConfig, load_champion_model, log_and_register_model


@dataclass(frozen=True)
class ConstantModel:
    """A tiny picklable model: predicts one number; ``quality`` stands for its held-out metric."""

    quality: float

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        return np.full(len(frame), self.quality)


def _config(tmp_path: Path, name: str) -> MlflowConfig:
    return MlflowConfig(
        tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}",
        artifacts_dir=tmp_path / "mlartifacts",
        experiment=name,
        model_name=name,
    )


def _register(config: MlflowConfig, model: ConstantModel, plot: Path, margin: float = 0.0):
    return log_and_register_model(
        config,
        model,
        metric="qini",
        new_score=model.quality,
        # The champion is judged by its own predictions on the same held-out rows.
        champion_score=lambda champion: float(champion.predict(pd.DataFrame({"x": [1]}))[0]),
        params={"quality": model.quality},
        metrics={"qini": model.quality, "rows": 10.0},
        plot_paths=[plot],
        json_artifacts={"split_summary.json": {"rows": 10}},
        promotion_margin=margin,
    )


@pytest.fixture()
def plot(tmp_path: Path) -> Path:
    path = tmp_path / "plot.png"
    path.write_bytes(b"\x89PNG\r\n")
    return path


def test_first_better_worse_and_margin(tmp_path: Path, plot: Path) -> None:
    config = _config(tmp_path, "toy")
    first = _register(config, ConstantModel(0.30), plot)
    assert (first.alias, first.champion_score_before) == ("champion", None)
    assert first.reason.startswith("first model")

    better = _register(config, ConstantModel(0.35), plot)
    assert better.alias == "champion" and better.champion_score_before == pytest.approx(0.30)

    worse = _register(config, ConstantModel(0.20), plot)
    assert worse.alias == "challenger"
    assert "kept as challenger: qini 0.2000 < champion v2 0.3500" in worse.reason
    model, version = load_champion_model(config)
    assert (model, version) == (ConstantModel(0.35), "2")

    within_margin = _register(config, ConstantModel(0.33), plot, margin=0.05)
    assert within_margin.alias == "champion"

    client = MlflowClient(config.tracking_uri)
    run = client.get_run(worse.run_id)
    assert run.data.metrics["champion_qini_before"] == pytest.approx(0.35)
    assert run.data.tags["promotion_reason"] == worse.reason
    assert {a.path for a in client.list_artifacts(worse.run_id, "plots")} == {"plots/plot.png"}


def test_refitted_every_run_is_always_champion(tmp_path: Path, plot: Path) -> None:
    config = _config(tmp_path, "refit")
    for quality in (0.5, 0.1):
        result = log_and_register_model(
            config,
            ConstantModel(quality),
            metric="neg_value_mae",
            new_score=-quality,
            champion_score=None,
            params={},
            metrics={},
        )
        assert result.alias == "champion"
        assert result.reason.startswith("refitted every run")
    assert load_champion_model(config)[0] == ConstantModel(0.1)


def test_no_champion_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(LookupError, match="no champion for registered model 'nothing'"):
        load_champion_model(_config(tmp_path, "nothing"))
