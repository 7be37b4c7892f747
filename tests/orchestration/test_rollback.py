"""Rolling back a model is one command; scoring then uses the version it names."""

from __future__ import annotations

from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from ml.modelling.registry import MlflowConfig, load_champion_model, log_and_register_model
from orchestration.rollback import main
from tests.ml.test_model_registry import ConstantModel


def _register(config: MlflowConfig, quality: float) -> None:
    log_and_register_model(
        config,
        ConstantModel(quality),
        metric="roc_auc",
        new_score=quality,
        champion_score=lambda champion: champion.quality,
        params={},
        metrics={},
    )


def test_rollback_command_moves_the_champion_and_records_why(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CRM_HOME", str(tmp_path))
    config = MlflowConfig(
        tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}",
        artifacts_dir=tmp_path / "mlartifacts",
        experiment="next_product",
        model_name="next_product",
    )
    _register(config, 0.70)
    _register(config, 0.75)
    assert load_champion_model(config)[1] == "2"

    assert main(["next_product", "1", "--reason", "v2 misbehaves on new data"]) == 0
    assert "champion is now v1 (was v2)" in capsys.readouterr().out
    model, version = load_champion_model(config)
    assert (version, model) == ("1", ConstantModel(0.70))
    client = MlflowClient(config.tracking_uri)
    assert str(client.get_model_version_by_alias("next_product", "challenger").version) == "2"
    tag = client.get_model_version("next_product", "1").tags["promotion_reason"]
    assert tag == "rolled back from v2: v2 misbehaves on new data"

    assert main(["next_product", "9"]) == 1
    assert "has no version '9'" in capsys.readouterr().err
    assert load_champion_model(config)[1] == "1"
