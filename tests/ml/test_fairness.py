"""Fairness audit: hand-computed group metrics, the gate, small groups, proxies, audit groups."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from fairlearn.metrics import (
    MetricFrame,
    count,
    false_positive_rate,
    selection_rate,
    true_positive_rate,
)
from sklearn.metrics import brier_score_loss

from ml.modelling.fairness import (
    FairnessConfig,
    fairness_report,
    group_metrics,
    protected_groups,
    proxy_check,
)

# Ten rows, two groups of five; decisions at 0.5, capacity 4 (worked out in the test below).
Y10 = np.array([1, 1, 0, 0, 1, 0, 1, 0, 0, 0])
P10 = np.array([0.9, 0.4, 0.7, 0.2, 0.6, 0.8, 0.3, 0.1, 0.55, 0.05])
G10 = pd.DataFrame({"g": ["a"] * 5 + ["b"] * 5})


def _world(n: int, seed: int = 0) -> tuple[np.ndarray, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    sensitive = pd.DataFrame(
        {
            "gender": rng.choice(["female", "male"], n),
            "plan": rng.choice(["basic", "premium"], n),
        }
    )
    return rng.uniform(0.0, 1.0, n), sensitive


def _labels(proba: np.ndarray, seed: int = 1) -> np.ndarray:
    return (np.random.default_rng(seed).uniform(size=len(proba)) < proba).astype(int)


def test_group_metrics_match_hand_computed_values() -> None:
    report = fairness_report(
        Y10,
        P10,
        0.5,
        G10,
        FairnessConfig(min_group_size=1, capacity_k=4, significance_level=None),
        gated=["g"],
    )
    a, b = (report.groups.set_index("group").loc[name] for name in ("a", "b"))
    # a: y 1 1 0 0 1, selected (p >= 0.5) 1 0 1 0 1.
    assert a["n"] == 5
    assert a["selection_rate"] == pytest.approx(3 / 5)
    assert a["tpr"] == pytest.approx(2 / 3)
    assert a["fpr"] == pytest.approx(1 / 2)
    # b: y 0 1 0 0 0, selected 1 0 0 1 0; its only positive (p 0.3) is missed.
    assert b["selection_rate"] == pytest.approx(2 / 5)
    assert b["tpr"] == 0.0
    assert b["fpr"] == pytest.approx(2 / 4)
    # Top 4 overall: 0.9 (a, 1), 0.8 (b, 0), 0.7 (a, 0), 0.6 (a, 1).
    assert a["precision_at_k"] == pytest.approx(2 / 3)
    assert b["precision_at_k"] == 0.0
    # Calibration of a: mean p 2.8 / 5, observed 3 / 5; Brier (.01 + .36 + .49 + .04 + .16) / 5.
    assert a["mean_predicted"] == pytest.approx(0.56)
    assert a["observed_rate"] == pytest.approx(0.6)
    assert a["calibration_gap"] == pytest.approx(-0.04)
    assert a["brier"] == pytest.approx(0.212)
    summary = report.attributes[0]
    assert summary.selection_rate_ratio == pytest.approx(0.4 / 0.6)
    assert summary.tpr_difference == pytest.approx(2 / 3)
    # At the capacity cut (top 4: three of a, one of b) the disparity is larger.
    assert a["capacity_selection_rate"] == pytest.approx(3 / 5)
    assert b["capacity_selection_rate"] == pytest.approx(1 / 5)
    assert summary.capacity_selection_rate_ratio == pytest.approx(1 / 3)
    assert report.reasons == (
        "g: selection-rate ratio 0.67 (b 0.400 vs a 0.600) < 0.8",
        "g at capacity 4: selection-rate ratio 0.33 (b 0.200 vs a 0.600) < 0.8",
    )


def test_vectorised_group_metrics_equal_fairlearns_metric_frame() -> None:
    # group_metrics replaces MetricFrame for speed; fairlearn stays the reference it must match.
    rng = np.random.default_rng(7)
    n = 3000
    y = (rng.random(n) < 0.2).astype(int)
    p = np.clip(0.2 + 0.3 * (y - 0.2) + rng.normal(0, 0.15, n), 0, 1)
    groups = pd.Series(rng.choice(["a", "b", "c", "d"], n), dtype=object)
    y[groups.to_numpy() == "d"] = 0  # a group without positives: TPR undefined
    in_top_k = np.zeros(n, dtype=bool)
    in_top_k[np.argsort(-p, kind="stable")[:300]] = True
    threshold = 0.3

    def decided(metric):  # fairlearn's rates on the thresholded decision
        return lambda yy, pp: float(metric(yy, (pp >= threshold).astype(int)))

    frame = MetricFrame(
        metrics={
            "n": count,
            "selection_rate": decided(selection_rate),
            "tpr": decided(true_positive_rate),
            "fpr": decided(false_positive_rate),
            "precision_at_k": lambda yy, pp, k: float(yy[k].mean()) if k.any() else math.nan,
            "mean_predicted": lambda yy, pp: float(np.mean(pp)),
            "observed_rate": lambda yy, pp: float(np.mean(yy)),
            "brier": lambda yy, pp: float(brier_score_loss(yy, pp, labels=[0, 1])),
            "capacity_selection_rate": lambda yy, pp, k: float(k.mean()),
        },
        y_true=y,
        y_pred=p,
        sensitive_features=groups.rename("group"),
        sample_params={
            "precision_at_k": {"k": in_top_k},
            "capacity_selection_rate": {"k": in_top_k},
        },
    )
    expected = frame.by_group.reset_index()
    expected.loc[expected["group"] == "d", "tpr"] = math.nan  # fairlearn says 0; we say undefined
    ours = group_metrics(y, p, in_top_k, groups, threshold)
    pd.testing.assert_frame_equal(ours, expected, check_dtype=False, check_exact=False, rtol=1e-12)


def test_tpr_is_undefined_not_zero_for_a_group_without_positives() -> None:
    y = np.array([0, 0, 1, 0])
    report = fairness_report(
        y, np.array([0.9, 0.1, 0.9, 0.1]), 0.5, pd.DataFrame({"g": ["a", "a", "b", "b"]}),
        FairnessConfig(min_group_size=1, significance_level=None), gated=["g"],
    )  # fmt: skip
    assert math.isnan(report.groups.set_index("group")["tpr"]["a"])
    # Only b has a TPR, so no difference can be formed.
    assert math.isnan(report.attributes[0].tpr_difference)


def test_fair_scores_pass_the_gate() -> None:
    proba, sensitive = _world(4000)
    report = fairness_report(
        _labels(proba), proba, 0.5, sensitive, FairnessConfig(capacity_k=400), gated=["gender"]
    )
    assert report.gate_passed, report.reasons
    assert report.attributes[0].selection_rate_ratio > 0.9
    assert report.as_metrics()["fairness.gate_passed"] == 1.0


def test_planted_disparity_fails_with_a_reason_naming_attribute_and_groups() -> None:
    proba, sensitive = _world(4000)
    proba = np.where(sensitive["gender"] == "female", proba * 0.6, proba)
    report = fairness_report(_labels(proba), proba, 0.5, sensitive, gated=["gender"])
    assert not report.gate_passed
    (reason,) = report.reasons
    assert reason.startswith("gender: selection-rate ratio 0.")
    assert "female" in reason and "male" in reason and "< 0.8" in reason
    assert report.as_metrics()["fairness.gender.selection_rate_ratio"] < 0.8


def test_business_slices_are_reported_but_do_not_block() -> None:
    proba, sensitive = _world(4000)
    proba = np.where(sensitive["plan"] == "basic", proba * 0.5, proba)
    report = fairness_report(_labels(proba), proba, 0.5, sensitive, gated=["gender"])
    plan = next(a for a in report.attributes if a.attribute == "plan")
    assert not plan.gated and plan.violations  # the disparity is measured and shown ...
    assert report.gate_passed  # ... but only protected attributes gate
    assert "plan" in report.table_markdown()


def test_optional_tpr_gate() -> None:
    proba, sensitive = _world(4000)
    # Equal selection rates by construction, but the female labels ignore the score.
    y = np.where(sensitive["gender"] == "female", _labels(np.full(4000, 0.5)), _labels(proba))
    lenient = fairness_report(y, proba, 0.5, sensitive, gated=["gender"])
    strict = fairness_report(
        y, proba, 0.5, sensitive, FairnessConfig(max_tpr_difference=0.1), gated=["gender"]
    )
    assert lenient.gate_passed
    assert not strict.gate_passed and "gender: TPR difference" in strict.reasons[0]


def test_small_groups_are_reported_but_not_gated() -> None:
    proba, sensitive = _world(2000)
    # Five "diverse" customers, none selected: a ratio of 0 on five rows is noise.
    sensitive.loc[:4, "gender"] = "diverse"
    proba[:5] = 0.1
    y = _labels(proba)
    report = fairness_report(y, proba, 0.5, sensitive, gated=["gender"])
    diverse = report.groups[report.groups["group"] == "diverse"].iloc[0]
    assert diverse["n"] == 5 and diverse["selection_rate"] == 0.0 and not diverse["in_gate"]
    assert report.attributes[0].n_groups == 3 and report.attributes[0].n_groups_in_gate == 2
    assert report.gate_passed
    # ... but never passed silently as fair: the group is named as untestable.
    assert diverse["selection_status"] == "not enough rows"
    assert any("diverse has 5 rows" in note for note in report.attributes[0].notes)
    assert "not enough rows" in report.table_markdown()
    # The same group does block once it is large enough to count.
    strict = fairness_report(
        y,
        proba,
        0.5,
        sensitive,
        FairnessConfig(min_group_size=5, significance_level=None),
        ["gender"],
    )
    assert not strict.gate_passed and "diverse 0.000" in strict.reasons[0]


def test_missing_attribute_values_form_an_unknown_group() -> None:
    sensitive = pd.DataFrame({"g": ["a", None, "a", None]})
    report = fairness_report(
        np.array([0, 1, 1, 0]), np.array([0.2, 0.7, 0.6, 0.1]), 0.5, sensitive, gated=["g"]
    )
    assert set(report.groups["group"]) == {"a", "unknown"}


def test_a_misspelt_gated_attribute_is_an_error_not_a_silent_pass() -> None:
    with pytest.raises(ValueError, match="gendr"):
        fairness_report(Y10, P10, 0.5, G10, gated=["gendr"])


def test_outputs_are_aggregates_and_json_serialisable() -> None:
    report = fairness_report(
        Y10,
        P10,
        0.5,
        G10,
        FairnessConfig(min_group_size=1, capacity_k=4, significance_level=None),
        gated=["g"],
    )
    metrics = report.as_metrics()
    assert set(metrics) == {
        "fairness.gate_passed",
        "fairness.g.selection_rate_ratio",
        "fairness.g.capacity_selection_rate_ratio",
        "fairness.g.tpr_difference",
        "fairness.g.n_groups_in_gate",
        "fairness.g.n_inconclusive",
        "fairness.g.passed",
    }
    assert metrics["fairness.gate_passed"] == 0.0
    payload = json.loads(json.dumps(report.to_dict(), allow_nan=False))
    assert payload["gate_passed"] is False and len(payload["groups"]) == 2
    markdown = report.table_markdown()
    assert "FAILED" in markdown and "| g | a | 5 |" in markdown


def test_proxy_check_flags_a_noisy_copy_of_gender_only() -> None:
    rng = np.random.default_rng(3)
    n = 3000
    gender = rng.choice(["female", "male"], n)
    birth_year = rng.integers(1950, 2005, n)
    features = pd.DataFrame(
        {
            # 85% copies of gender, 15% random: still a strong proxy.
            "noisy_gender": np.where(rng.uniform(size=n) < 0.85, gender, rng.choice(["x", "y"], n)),
            "spend_by_gender": rng.normal(size=n) + 1.5 * (gender == "male"),
            "tenure_by_age": (2026 - birth_year) + rng.normal(scale=5.0, size=n),
            "independent_cat": rng.choice(["a", "b", "c"], n),
            "independent_num": rng.normal(size=n),
        }
    )
    sensitive = pd.DataFrame({"gender": gender, "birth_year": birth_year})
    result = proxy_check(features, sensitive).set_index(["feature", "protected"])
    flagged = set(result.index[result["flagged"]])
    assert flagged == {
        ("noisy_gender", "gender"),
        ("spend_by_gender", "gender"),
        ("tenure_by_age", "birth_year"),
    }
    assert result.loc[("noisy_gender", "gender"), "method"] == "cramers_v"
    assert result.loc[("spend_by_gender", "gender"), "method"] == "correlation_ratio"
    assert result.loc[("tenure_by_age", "birth_year"), "method"] == "spearman"
    assert result["association"][("independent_cat", "gender")] < 0.1
    assert result["association"][("independent_num", "birth_year")] < 0.1


def test_correlation_ratio_by_hand() -> None:
    # Group means 1 and 3 around a grand mean of 2: between SS 2 * 1 + 2 * 1 = 4, total SS
    # 4 + 0 + 0 + 4 = 8 -> eta = sqrt(1/2).
    features = pd.DataFrame({"x": [0.0, 2.0, 2.0, 4.0]})
    result = proxy_check(features, pd.DataFrame({"gender": ["f", "f", "m", "m"]}))
    assert result.loc[0, "association"] == pytest.approx(math.sqrt(1 / 2))


@pytest.mark.parametrize("leaked", ["gender", "birth_year"])
def test_proxy_check_refuses_protected_columns_as_features(leaked: str) -> None:
    features = pd.DataFrame({leaked: [1, 2], "x": [0.0, 1.0]})
    with pytest.raises(ValueError, match="never be features"):
        proxy_check(features, pd.DataFrame({"gender": ["f", "m"]}))


def test_protected_groups_age_bands_and_unknowns() -> None:
    customers = pd.DataFrame(
        {
            "customer_id": list("abcdefgh"),
            "birth_year": [2002, 2001, 1992, 1991, 1962, 1961, None, 2030],
            "gender": [" Female ", "male", None, "", "diverse", "MALE", "female", "male"],
        }
    )
    groups = protected_groups(customers, as_of_year=2026)
    assert list(groups.columns) == ["customer_id", "gender", "age_band"]
    assert groups["customer_id"].tolist() == list("abcdefgh")
    # Ages 24, 25, 34, 35, 64, 65; missing and future birth years are unknown.
    assert groups["age_band"].tolist() == [
        "<25", "25-34", "25-34", "35-44", "55-64", "65+", "unknown", "unknown",
    ]  # fmt: skip
    assert groups["gender"].tolist() == [
        "female", "male", "unknown", "unknown", "diverse", "male", "female", "male",
    ]  # fmt: skip
    assert "birth_year" not in groups.columns


def test_custom_age_bands() -> None:
    customers = pd.DataFrame({"customer_id": ["a", "b"], "birth_year": [1990, 1960], "gender": "f"})
    config = FairnessConfig(age_bands=(40,))
    assert config.age_band_labels == ("<40", "40+")
    assert protected_groups(customers, 2026, config)["age_band"].tolist() == ["<40", "40+"]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"min_selection_rate_ratio": 0.0},
        {"min_selection_rate_ratio": 1.2},
        {"max_tpr_difference": -0.1},
        {"min_group_size": 0},
        {"capacity_k": 0},
        {"proxy_threshold": 0.0},
        {"age_bands": (35, 25)},
        {"age_bands": ()},
        {"criterion": "parity"},
        {"max_calibration_gap": 0.0},
    ],
)
def test_config_rejects_invalid_settings(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        FairnessConfig(**kwargs)  # type: ignore[arg-type]


def _selected(per_group: int, female: int, male: int) -> tuple[np.ndarray, pd.DataFrame]:
    """``per_group`` rows per gender, the first ``female``/``male`` of each scored 0.9, others 0.1."""
    rank = np.arange(per_group)
    proba = np.r_[np.where(rank < female, 0.9, 0.1), np.where(rank < male, 0.9, 0.1)]
    return proba, pd.DataFrame({"gender": np.repeat(["female", "male"], per_group)})


def test_a_planted_disparity_on_many_rows_fails_the_tested_rule() -> None:
    # 2000 per group, 140 against 280 selected: ratio 0.5, 99% upper bound 0.63 < 0.8.
    proba, sensitive = _selected(2000, 140, 280)
    report = fairness_report(proba > 0.5, proba, 0.5, sensitive, gated=["gender"])
    assert not report.gate_passed and not report.inconclusive
    (reason,) = report.reasons
    assert reason.startswith("gender: selection-rate ratio 0.50 (female 0.070 vs male 0.140)")
    assert reason.endswith("upper bound 0.63 (one-sided, alpha 0.01 over 1 comparison)")
    female = report.groups.set_index("group").loc["female"]
    assert female["selection_status"] == "disparity"
    assert female["selection_ratio_upper"] < 0.8


def test_the_same_ratio_on_twenty_selected_rows_is_inconclusive_not_failed() -> None:
    # 100 per group, 7 against 14 selected (21 in all): ratio 0.5, but the bound reaches 1.4.
    proba, sensitive = _selected(100, 7, 14)
    report = fairness_report(proba > 0.5, proba, 0.5, sensitive, gated=["gender"])
    assert report.gate_passed
    (finding,) = report.inconclusive
    assert finding.startswith("gender: selection-rate ratio 0.50")
    assert "inconclusive, too few rows" in finding
    assert report.groups.set_index("group").at["female", "selection_status"] == "inconclusive"
    assert report.as_metrics()["fairness.gender.n_inconclusive"] == 1.0
    assert "Inconclusive" in report.table_markdown()
    assert report.to_dict()["inconclusive"] == [finding]
    # Without the test the point ratio alone blocks, as the plain four-fifths rule did.
    strict = fairness_report(
        proba > 0.5, proba, 0.5, sensitive, FairnessConfig(significance_level=None), ["gender"]
    )
    assert not strict.gate_passed and not strict.inconclusive


def test_katz_upper_bound_by_hand() -> None:
    proba, sensitive = _selected(100, 7, 14)
    report = fairness_report(proba > 0.5, proba, 0.5, sensitive, gated=["gender"])
    se = math.sqrt(1 / 7 - 1 / 100 + 1 / 14 - 1 / 100)
    expected = 0.5 * math.exp(2.3263478740408408 * se)  # one-sided 99%, one comparison
    female = report.groups.set_index("group").loc["female"]
    assert female["selection_ratio_upper"] == pytest.approx(expected)
    assert math.isnan(report.groups.set_index("group").at["male", "selection_ratio_upper"])


def test_the_bound_is_corrected_for_the_number_of_groups_compared() -> None:
    # Group b selects 45 of 2000 against 90 of 2000 elsewhere (ratio 0.5). Against one group
    # the 99% bound is 0.76 and fails; among seven groups (six comparisons, Bonferroni) it is
    # 0.85: a ratio this far off among many groups happens by chance too often to block on.
    def report_for(groups: list[str]):
        proba = np.tile(np.where(np.arange(2000) < 90, 0.9, 0.1), len(groups))
        proba[2000 : 2000 + 90] = np.where(np.arange(90) < 45, 0.9, 0.1)
        sensitive = pd.DataFrame({"band": np.repeat(groups, 2000)})
        return fairness_report(proba > 0.5, proba, 0.5, sensitive, gated=["band"])

    assert not report_for(["a", "b"]).gate_passed
    many = report_for(list("abcdefg"))
    assert many.gate_passed
    (finding,) = many.inconclusive
    assert finding.startswith("band: selection-rate ratio 0.50 (b 0.022 vs a 0.045)")
    assert "over 6 comparisons" in finding


def test_a_group_nobody_selects_gets_a_finite_bound() -> None:
    proba, sensitive = _selected(60, 0, 3)
    report = fairness_report(proba > 0.5, proba, 0.5, sensitive, gated=["gender"])
    female = report.groups.set_index("group").loc["female"]
    assert female["selection_ratio"] == 0.0 and np.isfinite(female["selection_ratio_upper"])
    assert female["selection_status"] == "inconclusive" and report.gate_passed


def test_a_planted_disparity_at_the_capacity_cut_fails() -> None:
    # Everybody clears the threshold (ratio 1), but women's scores are scaled down, so the top
    # 400 contacted are nearly all men.
    proba, sensitive = _world(4000)
    proba = np.where(sensitive["gender"] == "female", proba * 0.6, proba)
    config = FairnessConfig(capacity_k=400)
    report = fairness_report(_labels(proba), proba, 0.0, sensitive, config, gated=["gender"])
    assert report.attributes[0].selection_rate_ratio == 1.0
    assert not report.gate_passed
    (reason,) = report.reasons
    assert reason.startswith("gender at capacity 400: selection-rate ratio 0.")
    assert report.groups.set_index("group").at["female", "capacity_status"] == "disparity"
    assert report.as_metrics()["fairness.gender.capacity_selection_rate_ratio"] < 0.8


def _base_rate_world(n: int = 4_000) -> tuple[np.ndarray, np.ndarray, pd.DataFrame]:
    """A calibrated model of groups whose outcome rates truly differ (about 45% against 20%)."""
    rng = np.random.default_rng(3)
    senior = rng.uniform(size=n) < 0.3
    proba = np.clip(rng.beta(2, 5, n) + np.where(senior, 0.25, 0.0), 0, 1)
    return _labels(proba, seed=4), proba, pd.DataFrame({"senior": np.where(senior, "yes", "no")})


def test_calibration_criterion_passes_a_calibrated_model_of_unequal_base_rates() -> None:
    y, proba, sensitive = _base_rate_world()
    parity = fairness_report(y, proba, 0.4, sensitive, gated=["senior"])
    assert not parity.gate_passed  # the selection rates differ as the outcome rates do
    calibration = fairness_report(
        y, proba, 0.4, sensitive, FairnessConfig(criterion="calibration"), gated=["senior"]
    )
    assert calibration.gate_passed
    (summary,) = calibration.attributes
    assert summary.selection_rate_ratio < 0.8
    assert any("reported, not gated" in note for note in summary.notes)
    assert "calibration within groups" in calibration.table_markdown()


def test_calibration_criterion_fails_a_group_whose_risk_is_understated() -> None:
    y, proba, sensitive = _base_rate_world()
    understated = np.where(sensitive["senior"] == "yes", proba * 0.7, proba)
    report = fairness_report(
        y, understated, 0.4, sensitive, FairnessConfig(criterion="calibration"), gated=["senior"]
    )
    assert not report.gate_passed
    (reason,) = report.reasons
    assert reason.startswith("senior: group yes predicted") and "limit 0.05" in reason
