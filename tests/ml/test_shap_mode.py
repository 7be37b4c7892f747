"""The SHAP mode of the explanations (CRM_SHAP_MODE) and the driver-agreement metric."""

from __future__ import annotations

import json
from datetime import datetime
from typing import get_args

import numpy as np
import pandas as pd
import pytest

from ml.core.settings import Settings
from ml.modelling.explanations import (
    SHAP_MODES,
    driver_agreement,
    shap_contributions,
    top_driver_order,
)
from ml.models.churn import pipeline as churn
from ml.models.churn.explain import top_drivers
from ml.models.churn.model import ChurnModel


@pytest.fixture(scope="module")
def rows(feature_frame: pd.DataFrame) -> pd.DataFrame:
    return feature_frame.tail(400).reset_index(drop=True)


def test_agreement_on_a_hand_made_case() -> None:
    reference = np.array(
        [
            [3.0, -2.0, 1.0, 0.5],  # top 3: 0, 1, 2
            [1.0, 2.0, 3.0, 4.0],  # top 3: 3, 2, 1
            [5.0, 0.0, 0.0, -4.0],  # top 3: 0, 3, 1 (the tie keeps model order)
        ]
    )
    other = np.array(
        [
            [3.0, -2.0, 1.0, 0.5],  # the same
            [1.0, 2.0, 4.0, 3.0],  # 2, 3, 1: same set, other order, other top 1
            [5.0, 0.0, 0.2, -4.0],  # 0, 3, 2: same top 1, other set
        ]
    )
    agreement = driver_agreement(reference, other, k=3)
    assert agreement.rows == 3 and agreement.k == 3
    assert agreement.top1 == pytest.approx(2 / 3)
    assert agreement.same_set == pytest.approx(2 / 3)
    assert agreement.same_order == pytest.approx(1 / 3)
    assert agreement.max_abs_difference == pytest.approx(1.0)
    assert driver_agreement(reference, reference).as_dict() == {
        "rows": 3,
        "k": 3,
        "top1": 1.0,
        "same_set": 1.0,
        "same_order": 1.0,
        "max_abs_difference": 0.0,
    }


def test_top_driver_order_ranks_by_magnitude_and_keeps_model_order_on_ties() -> None:
    shap = np.array([[0.1, -0.5, 0.5, 0.2]])
    assert top_driver_order(shap, 3).tolist() == [[1, 2, 3]]
    assert top_driver_order(shap, 10).shape == (1, 4)


def test_agreement_rejects_other_shapes_and_no_rows() -> None:
    with pytest.raises(ValueError, match="shapes differ"):
        driver_agreement(np.zeros((2, 3)), np.zeros((2, 4)))
    with pytest.raises(ValueError, match="no rows"):
        driver_agreement(np.zeros((0, 3)), np.zeros((0, 3)))


def test_unknown_mode_is_refused(trained_model: ChurnModel, rows: pd.DataFrame) -> None:
    pool = trained_model.pool(trained_model.prepare(rows))
    with pytest.raises(ValueError, match="shap mode"):
        shap_contributions(trained_model.booster, pool, "fast")  # type: ignore[arg-type]


def test_the_setting_offers_exactly_the_modes(monkeypatch: pytest.MonkeyPatch) -> None:
    assert get_args(Settings.model_fields["shap_mode"].annotation) == SHAP_MODES
    monkeypatch.setenv("CRM_SHAP_MODE", "approximate")
    assert Settings().shap_mode == "approximate"
    monkeypatch.setenv("CRM_SHAP_MODE", "fast")
    with pytest.raises(ValueError, match="shap_mode"):
        Settings()


def test_drivers_follow_the_mode(trained_model: ChurnModel, rows: pd.DataFrame) -> None:
    pool = trained_model.pool(trained_model.prepare(rows))
    regular = shap_contributions(trained_model.booster, pool, "regular")
    approximate = shap_contributions(trained_model.booster, pool, "approximate")
    # Both modes split the same raw prediction among the features; they split it differently.
    np.testing.assert_allclose(regular.sum(axis=1), approximate.sum(axis=1), atol=1e-9)
    assert not np.allclose(regular, approximate)

    for mode, shap in (("regular", regular), ("approximate", approximate)):
        drivers = top_drivers(trained_model, rows, n=3, shap_mode=mode)
        order = top_driver_order(shap, 3)
        expected = shap[np.arange(len(rows))[:, None], order].ravel()
        np.testing.assert_allclose(drivers["contribution"].to_numpy(dtype=float), expected)


def test_scoring_explains_with_the_mode(trained_model: ChurnModel, rows: pd.DataFrame) -> None:
    at = datetime(2026, 1, 1)
    pool = trained_model.pool(trained_model.prepare(rows))
    for mode in ("regular", "approximate"):
        scores = churn.score(trained_model, "1", rows, at, shap_mode=mode)
        first = [json.loads(d)[0]["contribution"] for d in scores["churn_top_drivers"]]
        shap = shap_contributions(trained_model.booster, pool, mode)
        largest = shap[np.arange(len(rows)), top_driver_order(shap, 1)[:, 0]]
        np.testing.assert_allclose(first, np.round(largest, 4), atol=1e-9)
    # The scores themselves do not depend on how they are explained.
    np.testing.assert_array_equal(
        churn.score(trained_model, "1", rows, at, shap_mode="approximate")["churn_probability"],
        churn.score(trained_model, "1", rows, at)["churn_probability"],
    )
