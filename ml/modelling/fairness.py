"""Fairness audit of a scoring model and the blocking promotion gate built on it.

Protected attributes (``ml.data.contract.PROTECTED_COLUMNS``: ``birth_year`` and ``gender`` of the
customers table) are never features; they are read here only to audit a model's decisions.

* :func:`protected_groups` turns the protected columns into audit groups (gender, age band).
* :func:`fairness_report` measures, per attribute and group, the decision at the action threshold
  (selection rate, TPR, FPR), precision within a contact capacity, and calibration: the
  metrics of fairlearn's ``MetricFrame`` in one vectorised group-by (:func:`group_metrics`).
  Attributes named in ``gated`` (the protected ones) decide :attr:`FairnessReport.gate_passed`;
  business slices (plan, country, company size) are measured the same way but only reported.
* :func:`proxy_check` flags features strongly associated with a protected attribute, because a
  model can rebuild a protected attribute it never sees from such a proxy.

The four-fifths rule is tested, not read off point estimates: each group's selection rate is
divided by the most-selected group's, and a group fails only when the one-sided upper confidence
bound of that ratio (Katz log interval, Bonferroni over the groups) stays below 0.8. A ratio
under 0.8 whose bound reaches 0.8 is *inconclusive*: reported, never passed silently as fair, but
not blocking, because a gate on the chance disparities of ~20 selected customers would block good
models at random. Groups smaller than ``FairnessConfig.min_group_size`` are reported as "not
enough rows" and left out of the gate. The rule runs at the action threshold and, when
``capacity_k`` is set, at the capacity cut (the ``k`` highest-scored rows), who is actually
contacted.
"""

from __future__ import annotations

import math
import re
from collections.abc import Collection
from dataclasses import asdict, dataclass, replace
from itertools import pairwise
from typing import Any, Literal

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike
from scipy.stats import norm, spearmanr
from scipy.stats.contingency import association

from ml.data.contract import PROTECTED_COLUMNS
from ml.data.flat_tables import PROTECTED_PREFIX
from ml.modelling.model_card import markdown_table

UNKNOWN = "unknown"
PROTECTED_ATTRIBUTES: tuple[str, ...] = ("gender", "age_band")
"""Audit attributes built by :func:`protected_groups`; the default ``gated`` attributes."""

GROUP_METRICS: tuple[str, ...] = (
    "n",
    "selection_rate",
    "tpr",
    "fpr",
    "precision_at_k",
    "mean_predicted",
    "observed_rate",
    "calibration_gap",
    "brier",
    "capacity_selection_rate",
)
STATUS_COLUMNS: tuple[str, ...] = (
    "selection_ratio",
    "selection_ratio_upper",
    "selection_status",
    "capacity_ratio",
    "capacity_ratio_upper",
    "capacity_status",
)
"""Per-group verdict of the four-fifths rule at the threshold and at the capacity cut."""
# Statuses of a group under the four-fifths rule (``selection_status``/``capacity_status``).
REFERENCE, OK, INCONCLUSIVE, DISPARITY = "reference", "ok", "inconclusive", "disparity"
NOT_ENOUGH_ROWS, NOT_COMPARED = "not enough rows", "not compared"
# An age outside this range is a data-entry error (birth year 1800 or in the future), not a group.
_MAX_PLAUSIBLE_AGE = 120


@dataclass(frozen=True)
class FairnessConfig:
    """Settings of the fairness audit and gate.

    Attributes:
        min_selection_rate_ratio: The gate fails when the lowest selection rate of a gated
            attribute's groups divided by the highest is below this (0.8 is the four-fifths rule).
        max_tpr_difference: Optional second gate: the largest TPR minus the smallest (equal
            opportunity) may not exceed this. ``None`` reports the difference without gating.
        min_group_size: Groups with fewer rows are reported but excluded from the gate, because
            their rates are dominated by chance.
        capacity_k: Contact capacity: precision@k is measured over the ``k`` highest-scored rows
            of the whole population, split by group. ``None`` skips precision@k.
        proxy_threshold: Association (Cramér's V, correlation ratio or |Spearman|, all in
            [0, 1]) from which :func:`proxy_check` flags a feature as a proxy.
        age_bands: Lower age edges of the bands after the first; ``(25, 35, 45, 55, 65)`` gives
            ``<25, 25-34, 35-44, 45-54, 55-64, 65+``.
        significance_level: A group fails the four-fifths rule only if its disparity is
            significant: the one-sided upper confidence bound of its selection-rate ratio to the
            most-selected group (Katz log interval of a ratio of two proportions), at level
            ``1 - significance_level / m`` with ``m`` the groups compared against the reference
            (Bonferroni: an attribute of seven age bands makes six comparisons per cut), stays
            below ``min_selection_rate_ratio``. A ratio below the bar whose bound reaches it is
            reported as inconclusive, not gated. 0.01 bounds the false-alarm rate per attribute
            and cut at 1% for groups exactly at the 0.8 bar, and far lower for a fair model;
            on the synthetic world, random birth years put one of six age bands at a ratio of
            0.38 on a few dozen selected customers, which 0.05 without the correction blocked.
            The same level gates the calibration criterion's z-test. ``None`` gates on the point
            ratio alone.
        criterion: What the gate asks of the model's decisions. ``"selection_rate"``
            (demographic parity, the four-fifths rule above): every group is acted on at a
            similar rate. ``"calibration"`` (calibration within groups, "sufficiency"): a score
            means the same risk in every group; the gate fails when a group's mean predicted
            probability differs from its observed rate by more than ``max_calibration_gap``, and
            significantly (binomial z-test at ``significance_level``). Selection rates and TPR
            differences are then reported, not gated. When the groups' outcome rates truly
            differ (in the Telco data seniors churn at 44%, others at 23%), no model with one
            threshold can be both calibrated and equal in selection rates (Kleinberg,
            Mullainathan and Raghavan 2016; Chouldechova 2017): choosing is a policy decision,
            which is why it is a setting.
        max_calibration_gap: Largest |mean predicted - observed rate| of a compared group under
            the ``"calibration"`` criterion.
    """

    min_selection_rate_ratio: float = 0.8
    max_tpr_difference: float | None = None
    min_group_size: int = 50
    capacity_k: int | None = None
    proxy_threshold: float = 0.3
    age_bands: tuple[int, ...] = (25, 35, 45, 55, 65)
    significance_level: float | None = 0.01
    criterion: Literal["selection_rate", "calibration"] = "selection_rate"
    max_calibration_gap: float = 0.05

    def __post_init__(self) -> None:
        if self.criterion not in ("selection_rate", "calibration"):
            raise ValueError(
                f"criterion must be 'selection_rate' or 'calibration', got {self.criterion!r}"
            )
        if not 0.0 < self.max_calibration_gap <= 1.0:
            raise ValueError(
                f"max_calibration_gap must be in (0, 1], got {self.max_calibration_gap}"
            )
        if not 0.0 < self.min_selection_rate_ratio <= 1.0:
            raise ValueError(
                f"min_selection_rate_ratio must be in (0, 1], got {self.min_selection_rate_ratio}"
            )
        if self.max_tpr_difference is not None and not 0.0 <= self.max_tpr_difference <= 1.0:
            raise ValueError(f"max_tpr_difference must be in [0, 1], got {self.max_tpr_difference}")
        if self.significance_level is not None and not 0.0 < self.significance_level < 0.5:
            raise ValueError(
                f"significance_level must be in (0, 0.5) or None, got {self.significance_level}"
            )
        if self.min_group_size < 1:
            raise ValueError(f"min_group_size must be >= 1, got {self.min_group_size}")
        if self.capacity_k is not None and self.capacity_k < 1:
            raise ValueError(f"capacity_k must be >= 1 or None, got {self.capacity_k}")
        if not 0.0 < self.proxy_threshold <= 1.0:
            raise ValueError(f"proxy_threshold must be in (0, 1], got {self.proxy_threshold}")
        edges = self.age_bands
        if not edges or any(b <= a for a, b in pairwise(edges)) or edges[0] < 1:
            raise ValueError(f"age_bands must be positive and strictly increasing, got {edges}")

    @property
    def age_band_labels(self) -> tuple[str, ...]:
        """Band names in order, e.g. ``("<25", "25-34", ..., "65+")``."""
        edges = self.age_bands
        middle = tuple(f"{lo}-{hi - 1}" for lo, hi in pairwise(edges))
        return (f"<{edges[0]}", *middle, f"{edges[-1]}+")


@dataclass(frozen=True)
class AttributeSummary:
    """Disparities of one attribute over its groups with ``n >= min_group_size``.

    Attributes:
        attribute: Column of the sensitive frame.
        gated: Whether this attribute decides the gate (protected) or is only reported.
        n_groups: Groups seen.
        n_groups_in_gate: Groups large enough to be compared.
        selection_rate_ratio: Lowest / highest selection rate (fairlearn's demographic-parity
            ratio over the compared groups); NaN when fewer than two groups compare or none is
            selected.
        capacity_selection_rate_ratio: The same ratio at the capacity cut (share of each group
            among the ``capacity_k`` highest-scored rows); NaN without a capacity.
        lowest_selection_group: Group with the lowest selection rate.
        highest_selection_group: Group with the highest selection rate.
        tpr_difference: Highest minus lowest TPR over compared groups that have positives.
        lowest_tpr_group: Group with the lowest TPR.
        highest_tpr_group: Group with the highest TPR.
        violations: Rules this attribute breaks, one sentence each (naming groups and values).
            For a reported-only attribute they are shown but do not block.
        inconclusive: Groups whose ratio is below the bar but whose upper confidence bound is
            not: too few rows to tell a real disparity from chance. Reported, not blocking.
        notes: Why a rule could not be evaluated (groups with not enough rows, a single large
            group).
    """

    attribute: str
    gated: bool
    n_groups: int
    n_groups_in_gate: int
    selection_rate_ratio: float
    capacity_selection_rate_ratio: float
    lowest_selection_group: str | None
    highest_selection_group: str | None
    tpr_difference: float
    lowest_tpr_group: str | None
    highest_tpr_group: str | None
    violations: tuple[str, ...]
    inconclusive: tuple[str, ...]
    notes: tuple[str, ...]

    @property
    def passed(self) -> bool:
        """No rule is broken (a reported-only attribute never blocks, whatever this says)."""
        return not self.violations


@dataclass(frozen=True, eq=False)
class FairnessReport:
    """Result of :func:`fairness_report`.

    Attributes:
        groups: Tidy frame, one row per (attribute, group): ``attribute``, ``group``, the
            :data:`GROUP_METRICS` columns, ``gated`` and ``in_gate`` (``n >= min_group_size``).
        attributes: One summary per attribute, in the order of the sensitive frame's columns.
        threshold: Action threshold the decisions were taken at.
        config: Settings used.
    """

    groups: pd.DataFrame
    attributes: tuple[AttributeSummary, ...]
    threshold: float
    config: FairnessConfig

    @property
    def reasons(self) -> tuple[str, ...]:
        """Why the gate fails: the violations of gated attributes (empty when it passes)."""
        return tuple(v for a in self.attributes if a.gated for v in a.violations)

    @property
    def inconclusive(self) -> tuple[str, ...]:
        """Gated groups below the bar whose disparity could be chance: to watch, not blocking."""
        return tuple(v for a in self.attributes if a.gated for v in a.inconclusive)

    @property
    def gate_passed(self) -> bool:
        """Whether every gated attribute keeps within the configured limits."""
        return not self.reasons

    def as_metrics(self) -> dict[str, float]:
        """Aggregates as flat MLflow metrics (no group names, no customer rows).

        Undefined values (NaN) are left out rather than logged as NaN.
        """
        metrics: dict[str, float] = {"fairness.gate_passed": float(self.gate_passed)}
        for summary in self.attributes:
            key = f"fairness.{_metric_name(summary.attribute)}"
            values = {
                "selection_rate_ratio": summary.selection_rate_ratio,
                "capacity_selection_rate_ratio": summary.capacity_selection_rate_ratio,
                "tpr_difference": summary.tpr_difference,
                "n_groups_in_gate": float(summary.n_groups_in_gate),
                "n_inconclusive": float(len(summary.inconclusive)),
                "passed": float(summary.passed),
            }
            metrics.update({f"{key}.{k}": float(v) for k, v in values.items() if not math.isnan(v)})
        return metrics

    def to_dict(self) -> dict[str, Any]:
        """The report as JSON-serialisable data (NaN becomes ``None``), for an MLflow artifact."""
        groups = self.groups.astype(object).where(self.groups.notna(), None)
        return {
            "gate_passed": self.gate_passed,
            "reasons": list(self.reasons),
            "inconclusive": list(self.inconclusive),
            "threshold": self.threshold,
            "config": asdict(self.config),
            "attributes": [
                {k: _json_value(v) for k, v in asdict(a).items()} | {"passed": a.passed}
                for a in self.attributes
            ],
            "groups": [
                {k: _json_value(v) for k, v in row.items()}
                for row in groups.to_dict(orient="records")
            ],
        }

    def table_markdown(self) -> str:
        """Markdown for the Dagster UI and model cards: verdict, per-attribute and per-group tables."""
        verdict = "PASSED" if self.gate_passed else "FAILED"
        rule = (
            f"calibration within groups: |mean predicted - observed| <= "
            f"{self.config.max_calibration_gap:g}"
            if self.config.criterion == "calibration"
            else f"selection-rate ratio >= {self.config.min_selection_rate_ratio:g}"
            + (
                f" unless its upper confidence bound reaches it (one-sided, alpha "
                f"{self.config.significance_level:g}, Bonferroni over the groups)"
                if self.config.significance_level is not None
                else ""
            )
            + (
                f", also at capacity {self.config.capacity_k}"
                if self.config.capacity_k is not None
                else ""
            )
        )
        lines = [
            f"**Fairness gate: {verdict}** (threshold {self.threshold:.3g}, {rule}"
            + (
                f", TPR difference <= {self.config.max_tpr_difference:g}"
                if self.config.max_tpr_difference is not None
                else ""
            )
            + f"; groups with n < {self.config.min_group_size} are not compared)",
            "",
        ]
        lines += [f"- {reason}" for reason in self.reasons]
        if self.reasons:
            lines.append("")
        if self.inconclusive:
            lines += [
                "Inconclusive (below the bar, but too few rows to rule out chance; not blocking):",
                "",
                *(f"- {text}" for text in self.inconclusive),
                "",
            ]
        summary = pd.DataFrame(
            {
                "attribute": [a.attribute for a in self.attributes],
                "role": ["gated" if a.gated else "reported" for a in self.attributes],
                "groups compared": [f"{a.n_groups_in_gate}/{a.n_groups}" for a in self.attributes],
                "selection-rate ratio": [a.selection_rate_ratio for a in self.attributes],
                "ratio at capacity": [a.capacity_selection_rate_ratio for a in self.attributes],
                "TPR difference": [a.tpr_difference for a in self.attributes],
                "result": [
                    "; ".join(a.violations or (*a.inconclusive, *a.notes)) or "ok"
                    for a in self.attributes
                ],
            }
        )
        groups = self.groups.drop(columns=["gated"])
        # Capacity columns are empty without a capacity; an empty column only adds noise.
        groups = groups.loc[:, groups.notna().any()]
        return "\n".join([*lines, markdown_table(summary), "", markdown_table(groups)])


def protected_groups(
    customers: pd.DataFrame, as_of_year: int, config: FairnessConfig | None = None
) -> pd.DataFrame:
    """Audit groups from the protected columns of the customers table.

    The protected columns are read only here and only to audit; they must never reach a model.

    Args:
        customers: ``marts.customers`` rows with ``customer_id``, ``gender`` and ``birth_year``.
        as_of_year: Year the age is computed at (``as_of_year - birth_year``).
        config: Supplies ``age_bands``; defaults to :class:`FairnessConfig`.

    Returns:
        ``customer_id``, ``gender`` (trimmed, lower-case; missing or blank -> ``"unknown"``) and
        ``age_band`` (e.g. ``"35-44"``; missing or implausible birth year -> ``"unknown"``), one
        row per input row in input order.

    Raises:
        ValueError: If a column is missing.
    """
    config = config or FairnessConfig()
    missing = {"customer_id", *PROTECTED_COLUMNS} - set(customers.columns)
    if missing:
        raise ValueError(f"customers frame lacks columns {sorted(missing)}")
    gender = customers["gender"].astype("string").str.strip().str.lower()
    gender = gender.mask(gender == "").fillna(UNKNOWN)
    age = as_of_year - pd.to_numeric(customers["birth_year"], errors="coerce").to_numpy(float)
    plausible = (age >= 0) & (age < _MAX_PLAUSIBLE_AGE)  # NaN compares False -> unknown
    labels = np.array(config.age_band_labels, dtype=object)
    band_index = np.searchsorted(np.asarray(config.age_bands), np.nan_to_num(age), side="right")
    return pd.DataFrame(
        {
            "customer_id": customers["customer_id"].to_numpy(),
            "gender": gender.to_numpy(dtype=object),
            "age_band": np.where(plausible, labels[band_index], UNKNOWN),
        }
    )


def declared_protected_groups(rows: pd.DataFrame, numeric_groups: int = 4) -> pd.DataFrame:
    """Audit groups from the ``protected_*`` columns a flat-table mapping declared.

    Args:
        rows: Rows of a flat table (``ml.data.flat_tables``), e.g. a model's holdout.
        numeric_groups: A numeric column with more than ten values is audited in this many
            quantile groups (an age in years is not a group of its own per year).

    Returns:
        One column per declared protected column, named without the prefix, positionally aligned
        with ``rows``; no columns when the mapping declared none (nothing to audit).
    """
    columns = {}
    for name in (c for c in rows.columns if c.startswith(PROTECTED_PREFIX)):
        column = rows[name]
        if pd.api.types.is_numeric_dtype(column) and column.nunique() > 10:
            column = pd.qcut(column, numeric_groups, duplicates="drop").astype(str)
        columns[name.removeprefix(PROTECTED_PREFIX)] = column.astype(object).to_numpy()
    return pd.DataFrame(columns, index=range(len(rows)))


def audit_customer_selection(
    rows: pd.DataFrame,
    customers: pd.DataFrame,
    config: FairnessConfig | None = None,
    top_fraction: float = 0.1,
) -> FairnessReport:
    """Who a model selects among customers, by gender and age band (``marts.customers``).

    For models that act on every customer they score (an offer, a treatment) and whose only
    cut is capacity: at threshold 0 everybody is selected (ratio 1, nothing to gate), and the
    gate is the four-fifths rule at the capacity cut, the ``capacity_k`` highest-scored
    customers (default ``ceil(top_fraction * customers)``, the top decile lift is read at).

    Args:
        rows: One row per customer: ``customer_id``, ``as_of_date``, ``score`` in [0, 1] (what
            ranks customers for the cut) and ``outcome`` (0/1, for TPR and calibration columns).
        customers: ``customer_id``, ``gender``, ``birth_year`` (protected; audit only).
        config: Settings; ``capacity_k`` ``None`` takes the top fraction.
        top_fraction: Share of customers in the capacity cut when ``capacity_k`` is unset.

    Returns:
        The report, gated on gender and age band.

    Raises:
        ValueError: If a customer appears twice in ``rows``.
    """
    config = config or FairnessConfig()
    if rows["customer_id"].duplicated().any():
        raise ValueError("audit rows must be one per customer")
    if config.capacity_k is None:
        config = replace(config, capacity_k=max(1, math.ceil(top_fraction * len(rows))))
    as_of_year = pd.Timestamp(rows["as_of_date"].max()).year
    groups = protected_groups(customers, as_of_year, config)
    sensitive = rows[["customer_id"]].merge(
        groups, on="customer_id", how="left", validate="one_to_one"
    )[list(PROTECTED_ATTRIBUTES)]
    return fairness_report(
        rows["outcome"].to_numpy(dtype=int),
        rows["score"].to_numpy(dtype=float),
        0.0,
        sensitive,
        config,
    )


def fairness_report(
    y_true: ArrayLike,
    proba: ArrayLike,
    threshold: float,
    sensitive: pd.DataFrame,
    config: FairnessConfig | None = None,
    gated: Collection[str] = PROTECTED_ATTRIBUTES,
) -> FairnessReport:
    """Group metrics and disparities of a model's decisions, and the promotion gate.

    A row is selected (acted on) when ``proba >= threshold``. Every column of ``sensitive`` is an
    attribute whose values are groups (missing -> ``"unknown"``; numeric columns are used as
    categories, so bin them first).

    Args:
        y_true: Observed 0/1 outcomes.
        proba: Predicted probabilities in [0, 1], row-aligned with ``y_true``.
        threshold: Action threshold.
        sensitive: One column per attribute, row-aligned with ``y_true`` (positionally; the index
            is ignored): protected attributes and business slices alike.
        config: Settings; defaults to :class:`FairnessConfig`.
        gated: Attributes that decide the gate (the protected ones); the others are reported
            only. Each must be a column of ``sensitive``, so a misspelt name cannot switch the
            gate off silently.

    Returns:
        The report; ``report.gate_passed`` and ``report.reasons`` are the gate's verdict.

    Raises:
        ValueError: On mismatched lengths, empty input, probabilities or threshold outside
            [0, 1], or a gated attribute that is not a column of ``sensitive``.
    """
    config = config or FairnessConfig()
    y = np.asarray(y_true).astype(int)
    p = np.asarray(proba, dtype=float)
    if y.ndim != 1 or y.shape != p.shape or len(sensitive) != len(y):
        raise ValueError(
            f"y_true, proba and sensitive must have equal length, got {y.shape}, {p.shape}, "
            f"{len(sensitive)}"
        )
    if len(y) == 0:
        raise ValueError("cannot audit zero rows")
    if np.isnan(p).any() or (p < 0).any() or (p > 1).any():
        raise ValueError("proba must lie in [0, 1] without NaN")
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"threshold must be in [0, 1], got {threshold}")
    unknown = set(gated) - set(sensitive.columns)
    if unknown:
        raise ValueError(f"gated attributes {sorted(unknown)} are not columns of sensitive")

    in_top_k = np.zeros(len(p), dtype=bool)
    if config.capacity_k is not None:
        # Stable sort on the negated score, as in ml.modelling.evaluation: ties keep input order.
        in_top_k[np.argsort(-p, kind="stable")[: config.capacity_k]] = True

    tables = []
    summaries = []
    for attribute in sensitive.columns:
        table = group_metrics(y, p, in_top_k, _as_groups(sensitive[attribute]), threshold)
        table.insert(0, "attribute", str(attribute))
        if config.capacity_k is None:
            table[["precision_at_k", "capacity_selection_rate"]] = np.nan
        table["calibration_gap"] = table["mean_predicted"] - table["observed_rate"]
        table["gated"] = attribute in gated
        table["in_gate"] = table["n"] >= config.min_group_size
        for cut, rate_column in (
            ("selection", "selection_rate"),
            ("capacity", "capacity_selection_rate"),
        ):
            rule = four_fifths(table["n"], table[rate_column], table["in_gate"], config)
            table[[f"{cut}_ratio", f"{cut}_ratio_upper", f"{cut}_status"]] = rule.to_numpy()
        if config.capacity_k is None:
            table["capacity_status"] = None
        columns = ["attribute", "group", *GROUP_METRICS, *STATUS_COLUMNS, "gated", "in_gate"]
        tables.append(table[columns])
        summaries.append(_summarise(table, str(attribute), attribute in gated, config))
    return FairnessReport(
        groups=pd.concat(tables, ignore_index=True),
        attributes=tuple(summaries),
        threshold=float(threshold),
        config=config,
    )


def proxy_check(
    features: pd.DataFrame, sensitive: pd.DataFrame, config: FairnessConfig | None = None
) -> pd.DataFrame:
    """Association of every feature with every protected attribute; strong ones are proxies.

    The measure depends on the column types, and each lies in [0, 1]:

    * categorical feature, categorical attribute: Cramér's V (scipy's ``association``);
    * numeric and categorical (either way round): correlation ratio eta, the share of the
      numeric column's spread explained by the groups, square-rooted;
    * numeric feature, numeric attribute (e.g. ``birth_year``): |Spearman rho| (scipy).

    Missing categories count as their own category (missingness can itself be a proxy); rows
    with a missing numeric value are left out of that pair. Cramér's V is biased upwards for
    many categories on few rows, so read flags on small samples with care.

    Args:
        features: Model features, row-aligned (positionally) with ``sensitive``.
        sensitive: Protected attributes, e.g. ``gender`` and ``birth_year`` or ``age_band``.
        config: Supplies ``proxy_threshold``; defaults to :class:`FairnessConfig`.

    Returns:
        One row per (feature, protected) pair: ``feature``, ``protected``, ``method``,
        ``association``, ``n`` (rows used) and ``flagged`` (``association >= proxy_threshold``),
        strongest first.

    Raises:
        ValueError: If the lengths differ or a protected column is among the features.
    """
    config = config or FairnessConfig()
    if len(features) != len(sensitive):
        raise ValueError(
            f"features and sensitive must have equal length, got {len(features)}, {len(sensitive)}"
        )
    leaked = (set(PROTECTED_COLUMNS) | set(sensitive.columns)) & set(features.columns)
    if leaked:
        raise ValueError(f"protected columns {sorted(leaked)} must never be features")
    features, sensitive = features.reset_index(drop=True), sensitive.reset_index(drop=True)
    # Group codes of every categorical column once, not once per pair (600k validation rows at
    # 1M customers made the per-pair string conversions and object group-bys take minutes).
    codes = {
        name: pd.factorize(_as_groups(column))[0]
        for name, column in [*features.items(), *sensitive.items()]
        if not _is_numeric(column)
    }
    rows = [
        (str(f), str(s), *_association(features[f], sensitive[s], codes.get(f), codes.get(s)))
        for f in features.columns
        for s in sensitive.columns
    ]
    result = pd.DataFrame(rows, columns=["feature", "protected", "method", "association", "n"])
    result["flagged"] = result["association"] >= config.proxy_threshold
    return result.sort_values(
        "association", ascending=False, na_position="last", kind="stable"
    ).reset_index(drop=True)


def group_metrics(
    y: np.ndarray, p: np.ndarray, in_top_k: np.ndarray, groups: pd.Series, threshold: float
) -> pd.DataFrame:
    """Per group: n, selection rate, TPR, FPR, precision in the top k, mean prediction, observed
    rate, Brier score and the share selected at the capacity cut, one vectorised group-by.

    The metrics of fairlearn's ``MetricFrame`` (tests/ml/test_fairness.py checks they are equal),
    without its per-row ``np.stack`` of every column for every metric and group: at 1M
    customers (600k validation rows) that took minutes of the training step.
    A rate whose denominator is empty in a group (TPR without positives, FPR without negatives,
    precision without a top-k row) is NaN, not 0.

    Args:
        y: Observed 0/1 outcomes.
        p: Predicted probabilities, row-aligned.
        in_top_k: Whether each row is within the contact capacity.
        groups: The group of each row (positionally aligned).
        threshold: Action threshold: a row is selected when ``p >= threshold``.

    Returns:
        One row per group, sorted by group: ``group`` and the metric columns.
    """
    positive = y == 1
    selected = p >= threshold
    parts = pd.DataFrame(
        {
            "group": groups.to_numpy(),
            "selected": selected,
            "true_positive": positive & selected,
            "false_positive": ~positive & selected,
            "positive": positive,
            "negative": ~positive,
            "in_top_k": in_top_k,
            "positive_in_top_k": positive & in_top_k,
            "p": p,
            "y": y,
            "squared_error": (p - y) ** 2,
            "n": 1,
        }
    )
    sums = parts.groupby("group", sort=True).sum()
    n = sums["n"]

    def rate(numerator: str, denominator: pd.Series) -> pd.Series:
        return (sums[numerator] / denominator.where(denominator > 0)).astype(float)

    table = pd.DataFrame(
        {
            "n": n.astype(int),
            "selection_rate": rate("selected", n),
            "tpr": rate("true_positive", sums["positive"]),
            "fpr": rate("false_positive", sums["negative"]),
            "precision_at_k": rate("positive_in_top_k", sums["in_top_k"]),
            "mean_predicted": rate("p", n),
            "observed_rate": rate("y", n),
            "brier": rate("squared_error", n),
            # Share of the group inside the capacity cut: its selection rate at top-k.
            "capacity_selection_rate": rate("in_top_k", n),
        }
    )
    return table.rename_axis("group").reset_index()


def four_fifths(
    n: pd.Series, rate: pd.Series, in_gate: pd.Series, config: FairnessConfig
) -> pd.DataFrame:
    """The four-fifths rule per group, tested: ratio to the most-selected group and its bound.

    Each group's selection rate is divided by that of the most-selected group of ``in_gate``
    (the *reference*). Its one-sided upper confidence bound at level ``1 - significance_level``
    is the Katz log interval of a ratio of two proportions, ``exp(log r + z * se)`` with
    ``se = sqrt(1/x_g - 1/n_g + 1/x_ref - 1/n_ref)`` (``x`` selected, ``n`` rows) and ``z`` the
    normal quantile at ``1 - significance_level / m``, ``m`` the groups compared against the
    reference (Bonferroni, so an attribute of many groups does not fail by chance); a group with
    nobody selected gets the Haldane correction (0.5 added to each cell) so its bound is finite.

    Args:
        n: Rows per group.
        rate: Selection rate per group (selected / n), at the threshold or the capacity cut.
        in_gate: Groups large enough to be compared (``n >= min_group_size``).
        config: Supplies ``min_selection_rate_ratio`` and ``significance_level``.

    Returns:
        Positionally aligned with ``n``: ``ratio``, ``upper`` and ``status`` — ``"reference"``,
        ``"ok"`` (ratio at or above the bar), ``"disparity"`` (bound below the bar, or the ratio
        when ``significance_level`` is ``None``), ``"inconclusive"`` (ratio below the bar, bound
        not), ``"not enough rows"`` (not ``in_gate``) or ``"not compared"`` (fewer than two
        groups compare, or nobody is selected).
    """
    n_rows = n.to_numpy(dtype=float)
    rates = rate.to_numpy(dtype=float)
    compared = in_gate.to_numpy(dtype=bool) & ~np.isnan(rates)
    result = pd.DataFrame(
        {"ratio": np.nan, "upper": np.nan, "status": NOT_ENOUGH_ROWS}, index=range(len(n))
    )
    result.loc[in_gate.to_numpy(dtype=bool), "status"] = NOT_COMPARED
    if compared.sum() < 2 or np.nanmax(np.where(compared, rates, np.nan)) <= 0:
        return result
    reference = int(np.nanargmax(np.where(compared, rates, np.nan)))
    selected = np.rint(rates * n_rows)
    x_ref, n_ref = selected[reference], n_rows[reference]
    ratio = rates / rates[reference]
    # Haldane: nobody selected makes the log ratio infinite; 0.5 in each cell keeps it finite.
    zero = selected == 0
    x = np.where(zero, selected + 0.5, selected)
    rows = np.where(zero, n_rows + 1.0, n_rows)
    with np.errstate(divide="ignore", invalid="ignore"):
        se = np.sqrt(1 / x - 1 / rows + 1 / x_ref - 1 / n_ref)
        alpha = config.significance_level
        z = norm.ppf(1 - alpha / (compared.sum() - 1)) if alpha is not None else 0.0
        upper = np.exp(np.log((x / rows) / (x_ref / n_ref)) + z * se)
    below = ratio < config.min_selection_rate_ratio
    status = np.where(
        ~below, OK, np.where(upper < config.min_selection_rate_ratio, DISPARITY, INCONCLUSIVE)
    )
    status[reference] = REFERENCE
    upper[reference] = np.nan  # a group against itself has no interval
    result.loc[compared, "ratio"] = ratio[compared]
    result.loc[compared, "upper"] = upper[compared]
    result.loc[compared, "status"] = status[compared]
    return result


def _summarise(
    table: pd.DataFrame, attribute: str, gated: bool, config: FairnessConfig
) -> AttributeSummary:
    compared = table[table["in_gate"]].set_index("group")
    violations: list[str] = []
    inconclusive: list[str] = []
    notes = [
        f"{attribute}: group {group} has {n} rows (< {config.min_group_size}): not enough rows "
        "to test"
        for group, n in table.loc[~table["in_gate"], ["group", "n"]].itertuples(index=False)
    ]
    ratio, low_sel, high_sel = math.nan, None, None
    capacity_ratio = math.nan
    if len(compared) < 2:
        notes.append(f"fewer than two groups with n >= {config.min_group_size}; not compared")
    else:
        rates = compared["selection_rate"]
        low_sel, high_sel = str(rates.idxmin()), str(rates.idxmax())
        if rates.max() == 0:
            notes.append("no compared group is selected at the threshold; ratio undefined")
        else:
            # fairlearn's demographic_parity_ratio, restricted to the compared groups.
            ratio = float(rates.min() / rates.max())
        cuts = [("selection", "selection_rate", "")]
        if config.capacity_k is not None:
            cuts.append(
                ("capacity", "capacity_selection_rate", f" at capacity {config.capacity_k}")
            )
            capacity = compared["capacity_selection_rate"]
            if capacity.max() > 0:
                capacity_ratio = float(capacity.min() / capacity.max())
        for cut, rate_column, where in cuts:
            found = _rule_findings(compared, cut, rate_column, where, attribute, config)
            if config.criterion == "calibration":
                # Selection rates are reported, not gated, under the calibration criterion.
                notes += [f"{text} (reported, not gated)" for text in found[DISPARITY]]
            else:
                violations += found[DISPARITY]
            inconclusive += found[INCONCLUSIVE]
    if config.criterion == "calibration":
        violations += _calibration_violations(compared, attribute, config)
    tprs = compared["tpr"].dropna()
    tpr_diff, low_tpr, high_tpr = math.nan, None, None
    if len(tprs) >= 2:
        low_tpr, high_tpr = str(tprs.idxmin()), str(tprs.idxmax())
        tpr_diff = float(tprs.max() - tprs.min())
        limit = config.max_tpr_difference
        if limit is not None and tpr_diff > limit:
            violations.append(
                f"{attribute}: TPR difference {tpr_diff:.2f} ({low_tpr} {tprs.min():.3f} vs "
                f"{high_tpr} {tprs.max():.3f}) > {limit:g}"
            )
    return AttributeSummary(
        attribute=attribute,
        gated=gated,
        n_groups=len(table),
        n_groups_in_gate=len(compared),
        selection_rate_ratio=ratio,
        capacity_selection_rate_ratio=capacity_ratio,
        lowest_selection_group=low_sel,
        highest_selection_group=high_sel,
        tpr_difference=tpr_diff,
        lowest_tpr_group=low_tpr,
        highest_tpr_group=high_tpr,
        violations=tuple(violations),
        inconclusive=tuple(inconclusive),
        notes=tuple(notes),
    )


def _rule_findings(
    compared: pd.DataFrame,
    cut: str,
    rate_column: str,
    where: str,
    attribute: str,
    config: FairnessConfig,
) -> dict[str, list[str]]:
    """One sentence per group of status disparity or inconclusive at one cut."""
    reference = compared.index[compared[f"{cut}_status"] == REFERENCE]
    findings: dict[str, list[str]] = {DISPARITY: [], INCONCLUSIVE: []}
    if reference.empty:
        return findings
    ref = str(reference[0])
    flagged = compared[compared[f"{cut}_status"].isin(list(findings))]
    ref_rate = float(compared[rate_column].loc[ref])
    for label, row in zip(flagged.index, flagged.to_dict("records"), strict=True):
        group: str = str(label)
        text = (
            f"{attribute}{where}: selection-rate ratio {float(row[f'{cut}_ratio']):.2f} ({group} "
            f"{float(row[rate_column]):.3f} vs {ref} {ref_rate:.3f}) "
            f"< {config.min_selection_rate_ratio:g}"
        )
        if config.significance_level is not None:
            upper = row[f"{cut}_ratio_upper"]
            text += (
                f", upper bound {upper:.2f} (one-sided, alpha {config.significance_level:g} "
                f"over {len(compared) - 1} comparison{'s' if len(compared) > 2 else ''})"
            )
            if row[f"{cut}_status"] == INCONCLUSIVE:
                text += f" >= {config.min_selection_rate_ratio:g}: inconclusive, too few rows"
        findings[str(row[f"{cut}_status"])].append(text)
    return findings


def _calibration_violations(
    compared: pd.DataFrame, attribute: str, config: FairnessConfig
) -> list[str]:
    """Groups whose mean predicted probability misses their observed rate by more than the
    limit, and significantly (the observed rate's binomial standard error under the predicted
    one)."""
    gap = compared["mean_predicted"] - compared["observed_rate"]
    predicted = compared["mean_predicted"].clip(1e-6, 1 - 1e-6)
    z: np.ndarray = (gap / np.sqrt(predicted * (1 - predicted) / compared["n"])).to_numpy(
        dtype=float
    )
    p_values = 2 * norm.sf(np.abs(z))
    violations = []
    for group in compared.index[gap.abs().to_numpy() > config.max_calibration_gap]:
        p_value = float(p_values[compared.index.get_loc(group)])
        if config.significance_level is not None and p_value >= config.significance_level:
            continue
        violations.append(
            f"{attribute}: group {group!s} predicted {compared.at[group, 'mean_predicted']:.3f} "
            f"vs observed {compared.at[group, 'observed_rate']:.3f} (gap "
            f"{float(gap[group]):+.3f}, limit {config.max_calibration_gap:g}, p = {p_value:.3g})"
        )
    return violations


def _is_numeric(series: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series)


def _as_groups(series: pd.Series) -> pd.Series:
    # Missing is a group of its own, not dropped (missingness can itself be a proxy).
    return series.reset_index(drop=True).astype("string").fillna(UNKNOWN).astype(object)


def _association(
    feature: pd.Series,
    protected: pd.Series,
    feature_codes: np.ndarray | None,
    protected_codes: np.ndarray | None,
) -> tuple[str, float, int]:
    # *_codes: the group code of every row of a categorical column (None for a numeric one).
    if feature_codes is None and protected_codes is None:
        both = pd.concat([feature, protected], axis=1).dropna()
        a, b = both.iloc[:, 0], both.iloc[:, 1]
        if a.nunique() < 2 or b.nunique() < 2:
            return "spearman", math.nan, len(both)
        return "spearman", abs(float(spearmanr(a, b).statistic)), len(both)
    if feature_codes is None or protected_codes is None:
        values, groups = (
            (feature, protected_codes) if feature_codes is None else (protected, feature_codes)
        )
        assert groups is not None  # both None is the Spearman case above
        keep = values.notna().to_numpy()
        return (
            "correlation_ratio",
            _correlation_ratio(values.to_numpy(float)[keep], groups[keep]),
            int(keep.sum()),
        )
    n_feature, n_protected = feature_codes.max() + 1, protected_codes.max() + 1
    if min(n_feature, n_protected) < 2:
        return "cramers_v", math.nan, len(feature)
    table = np.bincount(
        feature_codes * n_protected + protected_codes, minlength=n_feature * n_protected
    ).reshape(n_feature, n_protected)
    return "cramers_v", float(association(table, method="cramer")), len(feature)


def _correlation_ratio(values: np.ndarray, codes: np.ndarray) -> float:
    # eta = sqrt(between-group sum of squares / total sum of squares); scipy has no direct
    # function (f_oneway gives F, not the effect size), so it is computed from group means.
    centred = values - values.mean() if len(values) else values
    total = float(np.sum(centred**2))
    if total == 0.0:
        return math.nan
    sums, counts = np.bincount(codes, weights=centred), np.bincount(codes)
    present = counts > 0
    between = float((sums[present] ** 2 / counts[present]).sum())
    return math.sqrt(between / total)


def _metric_name(attribute: str) -> str:
    # MLflow metric names allow letters, digits, "_", "-", ".", " " and "/".
    return re.sub(r"[^\w\-. /]", "_", attribute)


def _json_value(value: Any) -> Any:
    if isinstance(value, tuple):
        return list(value)
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    return value
