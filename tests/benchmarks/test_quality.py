"""Smoke run of ``benchmarks/quality.py`` on a few hundred rows of each public data set.

It proves the benchmark still runs against the current ``ml/`` code and reports every figure
``quality.json`` promises, with sane values; the figures themselves mean nothing at this size. The
synthetic stage is left out: it runs the pipeline's dagster assets and dbt (about 2 minutes even
for 300 customers), which tests/orchestration exercises already.
"""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest

PUBLIC_STAGES = ("telco", "leads", "hillstrom", "cdnow", "online_retail")


@pytest.fixture(scope="module")
def smoke_report(quality: ModuleType) -> dict[str, Any]:
    data = quality.data_dir(None)
    missing = [
        str(data / quality.PUBLIC_FILES[s])
        for s in PUBLIC_STAGES
        if not (data / quality.PUBLIC_FILES[s]).is_file()
    ]
    if missing:
        pytest.skip(f"public data not found ({', '.join(missing)}); set CRM_PUBLIC_DATA")
    # One thread: the suite runs two test files at once on two cores.
    return quality.run(data, replace(quality.SMOKE, threads=1), stages=PUBLIC_STAGES)


def _number(report: dict[str, Any], path: str) -> float:
    value: Any = report
    for part in path.split("."):
        value = value[part]
    assert isinstance(value, float | int), f"{path} is {value!r}"
    assert math.isfinite(value), f"{path} is {value}"
    return float(value)


@pytest.mark.parametrize(
    "path",
    [
        "telco.cv_auc",
        "telco.lr_cv_auc",
        "leads.cv_auc",
        "leads.lr_cv_auc",
    ],
)
def test_auc_is_a_probability(smoke_report: dict[str, Any], path: str) -> None:
    assert 0.0 <= _number(smoke_report, path) <= 1.0


@pytest.mark.parametrize(
    "path",
    [
        "telco.cv_auc_sd",
        "leads.cv_auc_sd",
        "cdnow.purchases_mae",
        "cdnow.bgnbd_purchases_mae",
        "cdnow.value_mae",
        "cdnow.bgnbd_value_mae",
        "cdnow.hybrid_purchases_mae",
        "cdnow.hybrid_value_mae",
        "online_retail.purchases_mae",
        "online_retail.bgnbd_purchases_mae",
        "online_retail.hybrid_purchases_mae",
        "online_retail.hybrid_value_mae",
    ],
)
def test_spread_and_error_are_not_negative(smoke_report: dict[str, Any], path: str) -> None:
    assert _number(smoke_report, path) >= 0.0


def test_uplift_and_interval(smoke_report: dict[str, Any]) -> None:
    uplift = _number(smoke_report, "hillstrom.uplift_at_30")
    low, high = smoke_report["hillstrom"]["uplift_at_30_ci"]
    assert -1.0 <= low <= high <= 1.0
    assert -1.0 <= uplift <= 1.0
    assert -1.0 <= _number(smoke_report, "hillstrom.qini") <= 1.0


def test_every_telco_variant_and_uplift_learner_is_reported(
    smoke_report: dict[str, Any], quality: ModuleType
) -> None:
    assert set(smoke_report["telco"]["variants"]) == {v.name for v in quality.TELCO_VARIANTS}
    assert set(smoke_report["hillstrom"]["learners"]) == set(quality.UPLIFT_VARIANTS)


def test_leads_never_use_the_columns_sales_fill_in(
    smoke_report: dict[str, Any], quality: ModuleType
) -> None:
    assert set(quality.LEADS_AFTER_CONTACT) <= set(smoke_report["leads"]["excluded_columns"])


def test_results_section_is_rendered_and_replaced_in_place(
    smoke_report: dict[str, Any], quality: ModuleType, tmp_path: Path
) -> None:
    synthetic = {
        "customers": 300,
        "seed": 42,
        "how": "the pipeline's assets",
        "auc": 0.8,
        "oracle_auc": 0.82,
        "validation_rows": 100,
        "validation_as_of": "2026-07-01",
    }
    report = {**smoke_report, "synthetic": synthetic}
    report["targets"] = quality.targets(report)
    results = tmp_path / "RESULTS.md"
    results.write_text("# Results\n\nIntro.\n\n## Pipeline\n\nText.\n")

    quality.write_section(results, quality.render_section(report))
    once = results.read_text()
    quality.write_section(results, quality.render_section(report))

    assert results.read_text() == once
    assert once.index("Intro.") < once.index(quality.SECTION_TITLE) < once.index("## Pipeline")
    assert f"{report['telco']['cv_auc']:.3f} ± " in once


def test_interval_of_the_mean_keeps_a_strong_ranking_above_zero(quality: ModuleType) -> None:
    rng = np.random.default_rng(0)
    n = 4000
    treatment = rng.integers(0, 2, n)
    responsive = rng.random(n) < 0.5
    # Treatment doubles the visit rate of responsive customers only.
    outcome = (rng.random(n) < np.where(responsive & (treatment == 1), 0.4, 0.2)).astype(int)
    splits = [
        quality.SplitScores(rows, responsive[rows].astype(float) + rng.random(len(rows)) * 0.1)
        for rows in (rng.permutation(n)[: n // 3] for _ in range(3))
    ]
    low, high = quality.mean_uplift_interval(outcome, treatment, splits, n_boot=200)
    estimate = np.mean(
        [
            quality.uplift_at_k(outcome[s.test_rows], s.uplift, treatment[s.test_rows], 0.3)
            for s in splits
        ]
    )
    assert 0.0 < low <= estimate <= high


def test_a_partial_run_replaces_only_its_stages_and_checks_the_targets_again(
    quality: ModuleType,
) -> None:
    recorded = {
        "measured_at": "2026-01-01T00:00:00+00:00",
        "telco": {"cv_auc": 0.84},
        "hillstrom": {"uplift_at_30": 0.08, "uplift_at_30_ci": [0.01, 0.1]},
        "cdnow": {"hybrid_purchases_mae": 0.9, "bgnbd_purchases_mae": 0.8},
        "seconds": {"telco": 10.0, "cdnow": 5.0, "total": 15.0},
    }
    partial = {
        "measured_at": "2026-02-02T00:00:00+00:00",
        "versions": {"catboost": "1.2"},
        "cdnow": {"hybrid_purchases_mae": 0.7, "bgnbd_purchases_mae": 0.8},
        "seconds": {"cdnow": 3.0, "total": 3.0},
    }
    assert not quality.targets(recorded)["cdnow_hybrid"]["met"]

    merged = quality.merge_stages(recorded, partial, ["cdnow"])

    assert merged["telco"] == recorded["telco"] and merged["cdnow"] == partial["cdnow"]
    assert merged["measured_at"] == recorded["measured_at"]
    assert merged["updated"]["stages"] == ["cdnow"]
    assert merged["updated"]["measured_at"] == partial["measured_at"]
    assert merged["seconds"] == {"telco": 10.0, "cdnow": 3.0, "total": 15.0}
    assert merged["targets"]["cdnow_hybrid"]["met"]
    assert "online_retail_hybrid" not in merged["targets"]  # no figures, no verdict
