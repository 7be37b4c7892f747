"""The one registry life cycle with a toy model: champion/challenger by a held-out metric."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from ml.modelling.model_card import ModelCard
from ml.modelling.promotion import PromotionDecision, decide_by_metric, refitted_every_run
from ml.modelling.registry import Candidate, Registration, Registry, load_champion, register


@dataclass(frozen=True)
class ConstantModel:
    """A tiny picklable model: predicts one number; ``quality`` stands for its held-out metric."""

    quality: float

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        return np.full(len(frame), self.quality)


def _registry(tmp_path: Path) -> Registry:
    return Registry(f"sqlite:///{tmp_path / 'mlflow.db'}", tmp_path / "mlartifacts")


def toy_candidate(
    name: str, model: ConstantModel, folder: Path, plot: Path | None = None, margin: float = 0.0
) -> Candidate:
    def decide(champion: ConstantModel | None, version: str | None) -> PromotionDecision:
        # The champion is judged by its own predictions on the same held-out rows.
        before = float(champion.predict(pd.DataFrame({"x": [1]}))[0]) if champion else None
        return decide_by_metric(
            "qini", model.quality, before, rows=10, champion_version=version, margin=margin
        )

    return Candidate(
        name=name,
        model=model,
        decide=decide,
        params={"quality": model.quality},
        metrics={"qini": model.quality, "rows": 10.0},
        card=ModelCard(model_name=name, intended_use="Testing the registry."),
        card_dir=folder / f"card-{model.quality}",
        plots=(plot,) if plot else (),
        json_artifacts={"split_summary.json": {"rows": 10}},
    )


@pytest.fixture()
def plot(tmp_path: Path) -> Path:
    path = tmp_path / "plot.png"
    path.write_bytes(b"\x89PNG\r\n")
    return path


def _before(result: Registration) -> float | None:
    return result.decision.terms[0].champion if result.decision.terms else None


def test_first_better_worse_and_margin(tmp_path: Path, plot: Path) -> None:
    registry = _registry(tmp_path)
    first = register(registry, toy_candidate("toy", ConstantModel(0.30), tmp_path, plot))
    assert (first.alias, _before(first)) == ("champion", None)
    assert first.reason.startswith("first model")

    better = register(registry, toy_candidate("toy", ConstantModel(0.35), tmp_path, plot))
    assert better.alias == "champion" and _before(better) == pytest.approx(0.30)

    worse = register(registry, toy_candidate("toy", ConstantModel(0.20), tmp_path, plot))
    assert worse.alias == "challenger"
    assert "kept as challenger: qini 0.2000 < champion v2 0.3500" in worse.reason
    assert load_champion(registry, "toy") == (ConstantModel(0.35), "2")

    within_margin = register(
        registry, toy_candidate("toy", ConstantModel(0.33), tmp_path, plot, 0.05)
    )
    assert within_margin.alias == "champion"

    client = MlflowClient(registry.tracking_uri)
    run = client.get_run(worse.run_id)
    assert run.data.metrics["champion_qini_before"] == pytest.approx(0.35)
    assert run.data.metrics["promotion_qini"] == pytest.approx(0.20)
    assert run.data.tags["promotion_reason"] == worse.reason
    assert {a.path for a in client.list_artifacts(worse.run_id, "plots")} == {"plots/plot.png"}
    card = {a.path for a in client.list_artifacts(worse.run_id, "model_card")}
    assert {"model_card/model_card.md", "model_card/model_card.html"} <= card
    assert "version 3 (challenger)" in worse.model_card[0].read_text()


def test_refitted_every_run_is_always_champion(tmp_path: Path) -> None:
    registry = _registry(tmp_path)
    for quality in (0.5, 0.1):
        candidate = Candidate(
            name="refit",
            model=ConstantModel(quality),
            decide=lambda champion, version, q=quality: refitted_every_run(
                "neg_value_mae", -q, rows=10
            ),
            params={},
            metrics={},
            card=ModelCard(model_name="refit", intended_use="Testing the registry."),
            card_dir=tmp_path / f"card-{quality}",
        )
        result = register(registry, candidate)
        assert result.alias == "champion"
        assert result.reason.startswith("refitted every run")
    assert load_champion(registry, "refit")[0] == ConstantModel(0.1)


def test_no_champion_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(LookupError, match="no champion for registered model 'nothing'"):
        load_champion(_registry(tmp_path), "nothing")
