"""Evidently drift on small synthetic frames: no drift, strong drift in known columns, sampling."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ml.modelling.drift import drift_report

COLUMNS = ["tenure_days", "monthly_price", "logins_30d", "plan", "country_code"]
CATEGORICAL = ["plan", "country_code"]


def _frame(rows: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "tenure_days": rng.integers(0, 700, rows),
            "monthly_price": rng.normal(20, 5, rows),
            "logins_30d": rng.poisson(6, rows),
            "plan": rng.choice(["basic", "standard", "premium"], rows, p=[0.5, 0.3, 0.2]),
            "country_code": pd.Series(rng.choice(["DE", "FR", "NL"], rows)).where(
                rng.random(rows) >= 0.1
            ),
            "email": "someone@example.com",  # not analysed: only the named columns are
        }
    )


def test_same_distribution_has_no_drift(tmp_path: Path) -> None:
    html = tmp_path / "reports" / "drift.html"
    result = drift_report(_frame(3000, 1), _frame(3000, 2), COLUMNS, CATEGORICAL, html)
    assert result.drifted_columns == ()
    assert result.drift_share == 0.0
    assert result.n_columns == 5
    assert html.stat().st_size > 10_000 and "<html" in html.read_text()[:2000].lower()
    assert [p.name for p in html.parent.iterdir()] == ["drift.html"]  # no temp file left


def test_strong_shift_in_three_columns_is_flagged(tmp_path: Path) -> None:
    current = _frame(3000, 2)
    current["monthly_price"] += 15  # three standard deviations
    current["logins_30d"] = current["logins_30d"] // 4
    current["plan"] = np.where(current["plan"] == "basic", "premium", current["plan"])
    # Sampling caps both sides at max_rows (seeded), whatever their sizes.
    result = drift_report(
        _frame(5000, 1), current, COLUMNS, CATEGORICAL, tmp_path / "d.html", max_rows=2000
    )
    assert result.drifted_columns == ("monthly_price", "logins_30d", "plan")
    assert result.drift_share == pytest.approx(0.6)
    assert (result.reference_rows, result.current_rows) == (2000, 2000)


def test_score_drift_single_column_and_bad_arguments(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    reference = pd.DataFrame({"churn_probability": rng.beta(2, 8, 1500)})
    current = pd.DataFrame({"churn_probability": rng.beta(5, 5, 1200)})
    result = drift_report(reference, current, ["churn_probability"], [], tmp_path / "s.html")
    assert result.drifted_columns == ("churn_probability",)
    assert result.drift_share == 1.0
    assert (result.reference_rows, result.current_rows) == (1500, 1200)
    with pytest.raises(ValueError, match="lacks columns"):
        drift_report(reference, current, ["nope"], [], tmp_path / "x.html")
    with pytest.raises(ValueError, match="categorical"):
        drift_report(reference, current, ["churn_probability"], ["plan"], tmp_path / "x.html")
