"""Score stability: PSI by hand and against shifts, changed shares, thresholds."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from ml.modelling.stability import StabilityThresholds, changed_share, psi, stability


def test_psi_by_hand() -> None:
    # Reference median 0.5 splits two bins of half each; the current run puts 80% above it.
    reference = [0.1, 0.2, 0.3, 0.4, 0.6, 0.7, 0.8, 0.9]
    current = [0.1, 0.6, 0.7, 0.8, 0.9]
    expected = (0.2 - 0.5) * math.log(0.2 / 0.5) + (0.8 - 0.5) * math.log(0.8 / 0.5)
    assert psi(reference, current, bins=2) == pytest.approx(expected)


def test_psi_is_near_zero_for_the_same_distribution_and_large_for_a_shift() -> None:
    rng = np.random.default_rng(0)
    before = rng.beta(1.5, 6.0, 50_000)
    assert psi(before, rng.beta(1.5, 6.0, 50_000)) < 0.01
    assert psi(before, rng.beta(2.5, 5.0, 50_000)) > StabilityThresholds().psi


def test_psi_of_a_bin_one_side_lacks_is_finite() -> None:
    assert math.isfinite(psi([0.1, 0.2, 0.8, 0.9], [0.85, 0.9, 0.95], bins=2))
    with pytest.raises(ValueError, match="both sides"):
        psi([], [0.1])


def test_changed_share_counts_only_keys_in_both_runs() -> None:
    before = pd.Series({"a": "high", "b": "low", "c": "low", "gone": "high"})
    after = pd.Series({"a": "high", "b": "medium", "c": None, "new": "low"})
    share, rows = changed_share(before, after)
    assert (share, rows) == (pytest.approx(2 / 3), 3)
    assert math.isnan(changed_share(before, pd.Series({"x": "low"}))[0])


def test_stability_fails_each_figure_past_its_threshold() -> None:
    ids = [f"c{i}" for i in range(1_000)]
    before = pd.DataFrame({"id": ids, "p": np.linspace(0, 1, 1_000), "band": "low", "act": "none"})
    after = before.assign(band=["high"] * 300 + ["low"] * 700, act="call")
    found = {
        s.metric: s
        for s in stability(before, after, StabilityThresholds(), "id", "p", "band", "act")
    }
    assert found["score_psi"].passed and found["score_psi"].value == pytest.approx(0.0)
    assert found["band_changed_share"].value == pytest.approx(0.3)
    assert not found["band_changed_share"].passed
    assert not found["action_changed_share"].passed
    only_scores = stability(before, after, StabilityThresholds(), "id", "p")
    assert [s.metric for s in only_scores] == ["score_psi"]
