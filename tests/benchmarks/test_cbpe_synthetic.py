"""``benchmarks/cbpe_synthetic.py``: its recorded keys agree with themselves, and its speed
measurement runs (on a few rows)."""

from __future__ import annotations

import importlib
import json
from collections.abc import Iterator
from types import ModuleType

import pytest

from tests.benchmarks.conftest import BENCHMARKS

RESULTS = BENCHMARKS / "results" / "quality.json"


@pytest.fixture(scope="module")
def cbpe() -> Iterator[ModuleType]:
    with pytest.MonkeyPatch.context() as patch:
        patch.syspath_prepend(str(BENCHMARKS))
        yield importlib.import_module("cbpe_synthetic")


def test_recorded_errors_are_the_recorded_figures() -> None:
    synthetic = json.loads(RESULTS.read_text())["synthetic"]
    for key, world in (("cbpe_auc_abs_error", "plain"), ("cbpe_auc_abs_error_shift", "shift")):
        auc = synthetic["cbpe"][world]["roc_auc"]
        assert synthetic[key] == pytest.approx(abs(auc["estimated"] - auc["realized"]), abs=1e-4)
        assert auc["interval"][0] < auc["estimated"] < auc["interval"][1]
    assert synthetic["cbpe"]["shift"]["covariate_shift"] > 0
    assert synthetic["cbpe"]["plain"]["covariate_shift"] == 0
    met = synthetic["cbpe_auc_abs_error"] <= 0.02 and synthetic["cbpe_auc_abs_error_shift"] <= 0.03
    assert synthetic["cbpe_met"] == met


def test_speed_runs_on_a_few_rows(cbpe: ModuleType) -> None:
    found = cbpe.speed(rows=20_000)
    assert found["rows"] == 20_000
    assert found["segments"] == 17  # all, 3 plans, 3 contracts, 5 countries, 5 segments
    assert all(found[k] >= 0 for k in ("estimate_seconds", "monitoring_pass_seconds"))
