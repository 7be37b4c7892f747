"""An MLflow registry written by the flat-layout code (commit 879c883) still loads and predicts.

The fixture ``tests/fixtures/legacy_registry/legacy_registry.tar.gz`` holds a sqlite registry
with one champion of every registered model (churn as ``ml.registry.ChurnPyfunc``, the others as
``ml.registry.ModelObjectPyfunc`` around pickled objects of ``ml.leads``, ``ml.next_product``,
``ml.campaign_uplift`` and ``ml.clv``), small input frames, and what the old code predicted on
them. Each test unpacks it into its own ``tmp_path``, points its paths there, loads the champion
with the current registry API (``ml.modelling.registry.LEGACY_MODULES``
resolves the old module paths) and asserts the predictions are the same up to the last bit a
CPU may round differently (relative 1e-12: on an AMD EPYC one churn probability of 40 differed
from the fixture's by one unit in the last place, 5.6e-17).

Regenerate the fixture with ``tests/fixtures/legacy_registry/make_fixture.py`` (it must run with
the 879c883 code; see its docstring).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from ml.modelling.boosting import BoostingParams
from ml.modelling.registry import Registry, load_champion, roll_back
from ml.models.churn.model import ChurnModel
from ml.models.customer_value.model import ClvModel, predict_clv
from ml.models.lead_scoring.model import LeadModel, score_leads
from ml.models.next_product.model import NextProductModel, recommend
from ml.models.retention_uplift.model import CampaignUpliftModel, predict_retention_uplift
from tests.fixtures.legacy_registry.relocate import (
    ARTIFACTS,
    DATABASE,
    PLACEHOLDER,
    manifest,
    tracking_uri,
    unpack_fixture,
)

RTOL = 1e-12


def assert_same(actual: np.ndarray, expected: np.ndarray) -> None:
    np.testing.assert_allclose(actual, expected, rtol=RTOL, atol=0)


class Legacy:
    """An unpacked, relocated copy of the fixture."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.models: dict[str, Any] = manifest(root)["models"]

    @property
    def registry(self) -> Registry:
        return Registry(tracking_uri(self.root), self.root / ARTIFACTS)

    def frame(self, relative: str) -> pd.DataFrame:
        return pd.read_parquet(self.root / "data" / relative)

    def frames(self, name: str) -> dict[str, pd.DataFrame]:
        return {key: self.frame(path) for key, path in self.models[name]["files"].items()}


@pytest.fixture()
def legacy(tmp_path: Path) -> Legacy:
    return Legacy(unpack_fixture(tmp_path))


def _upgraded(config: Any) -> None:
    """A config pickled with flat CatBoost fields loads with them in ``boosting``."""
    assert isinstance(config.boosting, BoostingParams)
    assert not {"iterations", "threads", "thread_count"} & set(vars(config))


def _column(frame: pd.DataFrame, name: str | None = None) -> np.ndarray:
    return (frame[name] if name else frame.iloc[:, 0]).to_numpy()


def test_the_fixture_is_relocated_into_tmp_path(legacy: Legacy, tmp_path: Path) -> None:
    con = sqlite3.connect(legacy.root / DATABASE)
    try:
        assert not [line for line in con.iterdump() if PLACEHOLDER in line]
        locations = [row[0] for row in con.execute("select artifact_location from experiments")]
    finally:
        con.close()
    assert all(str(tmp_path) in location for location in locations)
    assert not [p for p in legacy.root.rglob("MLmodel") if PLACEHOLDER in p.read_text()]
    assert set(legacy.models) == {
        "churn",
        "lead_scoring",
        "next_product",
        "retention_uplift",
        "customer_value",
    }


def test_churn_champion(legacy: Legacy) -> None:
    f = legacy.frames("churn")
    model, version = load_champion(legacy.registry, "churn")
    assert version == legacy.models["churn"]["champion_version"]
    assert isinstance(model, ChurnModel)
    assert_same(model.predict_proba(f["input"]), _column(f["predict_proba"]))


def test_lead_scoring_champion(legacy: Legacy) -> None:
    f = legacy.frames("lead_scoring")
    model, version = load_champion(legacy.registry, "lead_scoring")
    assert version == legacy.models["lead_scoring"]["champion_version"]
    assert isinstance(model, LeadModel)
    _upgraded(model.config)
    assert_same(model.predict_proba(f["input"]), _column(f["predict_proba"]))
    scores = score_leads(model, f["input"], model_version=version)
    # The reasons follow the rules of ml.modelling.reasons since the old code ran; the scores,
    # grades and drivers are the same, exactly.
    old = f["score_leads"]
    pd.testing.assert_frame_equal(
        scores.drop(columns=["reason", "reason_factors"]),
        old.drop(columns=["reason"]),
        check_exact=False,
        rtol=RTOL,
        atol=0,
    )
    assert (
        scores["reason"].str.match(r"raises conversion: |holds conversion down: |no strong").all()
    )


def test_next_product_champion(legacy: Legacy) -> None:
    f = legacy.frames("next_product")
    model, version = load_champion(legacy.registry, "next_product")
    assert version == legacy.models["next_product"]["champion_version"]
    assert isinstance(model, NextProductModel)
    _upgraded(model.config)
    assert_same(model.predict(f["input"]), _column(f["predict"]))
    offers = recommend(model, f["input"])
    # The same offers and probabilities; the reason adds what the reason rules cite.
    pd.testing.assert_frame_equal(
        offers.drop(columns=["offer_reason", "offer_reason_factors"]),
        f["recommend"].drop(columns=["offer_reason"]),
        check_exact=False,
        rtol=RTOL,
        atol=0,
    )
    assert all(
        new.startswith(old + "; ")
        for new, old in zip(offers["offer_reason"], f["recommend"]["offer_reason"], strict=True)
    )


def test_retention_uplift_champion(legacy: Legacy) -> None:
    f = legacy.frames("retention_uplift")
    model, version = load_champion(legacy.registry, "retention_uplift")
    assert version == legacy.models["retention_uplift"]["champion_version"]
    assert isinstance(model, CampaignUpliftModel)
    _upgraded(model.learner.config)
    assert_same(model.predict(f["input"]), _column(f["predict"]))
    treated, control = model.learner.predict_outcomes(f["input"])
    assert_same(treated, _column(f["predict_outcomes"], "p_treated"))
    assert_same(control, _column(f["predict_outcomes"], "p_control"))
    uplift = predict_retention_uplift(model, f["input"])
    old = f["predict_retention_uplift"]
    # The same numbers and segments; the reason adds what the reason rules cite.
    pd.testing.assert_frame_equal(
        uplift.drop(columns=["uplift_reason", "uplift_reason_factors"]),
        old.drop(columns=["uplift_reason"]),
        check_exact=False,
        rtol=RTOL,
        atol=0,
    )
    assert all(
        new.startswith(was + "; ")
        for new, was in zip(uplift["uplift_reason"], old["uplift_reason"], strict=True)
    )


def test_customer_value_champion_and_the_version_before(legacy: Legacy) -> None:
    """Version 2 (catboost) is the champion; version 1 (bgnbd) is checked after a roll-back."""
    meta = legacy.models["customer_value"]
    f = legacy.frames("customer_value")
    registry = legacy.registry
    assert meta["champion_version"] == "2"
    for number in ("2", "1"):
        version_meta = meta["versions"][number]
        if number != meta["champion_version"]:
            roll_back(registry, "customer_value", number, "legacy fixture: the version before")
        model, version = load_champion(registry, "customer_value")
        assert version == number
        assert isinstance(model, ClvModel)
        _upgraded(model.config)
        assert model.method == version_meta["method"]
        features = f["features"] if version_meta["uses_features"] else None
        expected = legacy.frame(version_meta["files"][f"predict_clv_{model.method}"])
        pd.testing.assert_frame_equal(
            predict_clv(model, f["input"], features=features),
            expected,
            check_exact=False,
            rtol=RTOL,
            atol=0,
        )
