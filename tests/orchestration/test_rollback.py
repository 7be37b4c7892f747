"""Rolling back a model is one command; scoring then uses the version it names."""

from __future__ import annotations

from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from ml.modelling.registry import Registry, load_champion, register
from orchestration.rollback import main
from tests.ml.test_model_registry import ConstantModel, toy_candidate


def test_rollback_command_moves_the_champion_and_records_why(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CRM_HOME", str(tmp_path))
    registry = Registry(f"sqlite:///{tmp_path / 'mlflow.db'}", tmp_path / "mlartifacts")
    for quality in (0.70, 0.75):
        register(registry, toy_candidate("next_product", ConstantModel(quality), tmp_path))
    assert load_champion(registry, "next_product")[1] == "2"

    assert main(["next_product", "1", "--reason", "v2 misbehaves on new data"]) == 0
    assert "champion is now v1 (was v2)" in capsys.readouterr().out
    model, version = load_champion(registry, "next_product")
    assert (version, model) == ("1", ConstantModel(0.70))
    client = MlflowClient(registry.tracking_uri)
    assert str(client.get_model_version_by_alias("next_product", "challenger").version) == "2"
    tag = client.get_model_version("next_product", "1").tags["promotion_reason"]
    assert tag == "rolled back from v2: v2 misbehaves on new data"

    assert main(["next_product", "9"]) == 1
    assert "has no version '9'" in capsys.readouterr().err
    assert load_champion(registry, "next_product")[1] == "1"
