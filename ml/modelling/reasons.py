"""Which factors a reason cites: one set of rules for every model that explains its scores.

A reason must tell the truth about the score it explains. The rules, in terms of SHAP
contributions (log-odds of the booster's raw score; ``ml.modelling.explanations``):

* **Distance.** A row's contributions add up to its raw log-odds minus the model's base value
  (CatBoost's expected value, about the training base rate in log-odds), so their sum is how far,
  and which way, the score sits from the base rate. A calibration map is monotone, so the sign
  carries over to the calibrated probability.
* **Side.** ``high`` when the distance is at least :attr:`ReasonRules.middle` log-odds, ``low``
  when it is at most ``-middle``, ``middle`` in between.
* **Concepts.** Features that say one thing (contract type and months to renewal; logins this
  month, last month and their trend) form one :class:`Concept`; its contribution is the sum of
  its features' (SHAP is additive, so this is exactly the concept's share of the distance) and it
  is said once, in one phrase that reads all its features. A feature in no concept is its own.
* **Direction.** A high score cites the concepts that raise it, a low score those that lower
  it, a middle score both, largest |contribution| first, at most :attr:`ReasonRules.max_factors`.
* **Negligible.** A concept is never cited when its |contribution| is below
  :attr:`ReasonRules.min_contribution` log-odds or below :attr:`ReasonRules.min_share` of the
  row's total |contribution| (summed over concepts). A row with nothing left to cite reads
  :data:`NO_STRONG_SIGNALS`.

Everything is vectorised over rows: one pass per concept (a few dozen), never per row.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ml.core.settings import Settings

NO_STRONG_SIGNALS = "no strong signals either way"
SIDES: tuple[str, ...] = ("high", "middle", "low")


@dataclass(frozen=True)
class ReasonRules:
    """What a reason may cite.

    Attributes:
        max_factors: Most concepts cited per row.
        middle: Half-width of the middle band around the base value, in log-odds. 0.25 is a
            change of the odds by about a quarter (a 5% base rate: 4% to 6.3%).
        min_contribution: Absolute floor of a cited concept's |contribution|, in log-odds. 0.05
            moves the odds by 5%: below it a factor does not change what anyone would do.
        min_share: Floor of a cited concept's |contribution| as a share of the row's total
            |contribution|; 0.1 keeps one-tenth players out of a reason driven by others.
    """

    max_factors: int = 3
    middle: float = 0.25
    min_contribution: float = 0.05
    min_share: float = 0.1

    def __post_init__(self) -> None:
        if self.max_factors < 1:
            raise ValueError(f"max_factors must be >= 1, got {self.max_factors}")
        if self.middle < 0 or self.min_contribution < 0 or not 0 <= self.min_share < 1:
            raise ValueError(
                "middle and min_contribution must be >= 0 and min_share in [0, 1), got "
                f"{self.middle}, {self.min_contribution}, {self.min_share}"
            )


DEFAULT_RULES = ReasonRules()


def reason_rules(settings: Settings) -> ReasonRules:
    """The reason rules operators set (``CRM_REASON_MAX_FACTORS``, ``CRM_REASON_MIDDLE``,
    ``CRM_REASON_MIN_CONTRIBUTION``, ``CRM_REASON_MIN_SHARE``)."""
    return ReasonRules(
        max_factors=settings.reason_max_factors,
        middle=settings.reason_middle,
        min_contribution=settings.reason_min_contribution,
        min_share=settings.reason_min_share,
    )


@dataclass(frozen=True)
class Concept:
    """Features that say one thing, said in one phrase.

    Attributes:
        name: How the concept is named in the served factors (``"contract"``).
        features: Its features, in the order its phrase reads them.
    """

    name: str
    features: tuple[str, ...]


@dataclass(frozen=True)
class ReasonWords:
    """How the two directions read, e.g. ``raises risk`` and ``holds risk down``."""

    raises: str = "raises the score"
    lowers: str = "holds the score down"


SCORE_WORDS = ReasonWords()


def concepts_of(
    feature_names: Sequence[str], concepts: Sequence[Concept] = ()
) -> tuple[Concept, ...]:
    """Every feature in exactly one concept: the declared ones (only their features the model
    has), then each remaining feature alone, in model order.

    Raises:
        ValueError: A feature is in two declared concepts.
    """
    present = set(feature_names)
    seen: set[str] = set()
    out: list[Concept] = []
    for concept in concepts:  # a few declared concepts, never rows
        features = tuple(f for f in concept.features if f in present)
        if seen & set(features):
            raise ValueError(f"features {sorted(seen & set(features))} are in two concepts")
        seen |= set(features)
        if features:
            out.append(Concept(concept.name, features))
    out += [Concept(f, (f,)) for f in feature_names if f not in seen]
    return tuple(out)


@dataclass(frozen=True)
class CitedFactors:
    """The concepts a reason cites, in long format, and what every row's reason is about.

    Attributes:
        concepts: The concepts, indexed by ``concept``.
        distance: Per row, the sum of its contributions: log-odds from the base value.
        side: Per row, ``high``, ``middle`` or ``low``.
        total: Per row, the sum of |concept contribution| (what ``min_share`` is a share of).
        rows: Per cited factor, the row's position.
        ranks: Per cited factor, 1 = largest |contribution| among the row's cited factors.
        concept: Per cited factor, the position in ``concepts``.
        contribution: Per cited factor, the concept's contribution (log-odds).
    """

    concepts: tuple[Concept, ...]
    distance: np.ndarray
    side: np.ndarray
    total: np.ndarray
    rows: np.ndarray
    ranks: np.ndarray
    concept: np.ndarray
    contribution: np.ndarray


def cite_factors(
    shap: np.ndarray,
    feature_names: Sequence[str],
    concepts: Sequence[Concept] = (),
    rules: ReasonRules = DEFAULT_RULES,
) -> CitedFactors:
    """Apply the reason rules (module docstring) to a SHAP matrix.

    Args:
        shap: Contributions, shape (rows, features), columns in ``feature_names`` order, the
            bias column dropped (``shap_contributions``).
        feature_names: The model's features, in column order.
        concepts: Features that say one thing (a feature in none is its own concept).
        rules: Thresholds.

    Returns:
        The cited factors and, per row, its distance, side and total.
    """
    shap = np.asarray(shap, dtype=float)
    if shap.ndim != 2 or shap.shape[1] != len(feature_names):
        raise ValueError(
            f"shap must be (rows, {len(feature_names)} features), got shape {shap.shape}"
        )
    grouped = concepts_of(feature_names, concepts)
    position = {f: i for i, f in enumerate(feature_names)}
    by_concept = (
        np.column_stack([shap[:, [position[f] for f in c.features]].sum(axis=1) for c in grouped])
        if shap.shape[0]
        else np.zeros((0, len(grouped)))
    )
    distance = shap.sum(axis=1)
    total = np.abs(by_concept).sum(axis=1)
    side = np.select(
        [distance >= rules.middle, distance <= -rules.middle], ["high", "low"], "middle"
    ).astype(object)
    wanted_sign = np.select([side == "high", side == "low"], [1.0, -1.0], 0.0)[:, None]
    agrees = (wanted_sign == 0) | (np.sign(by_concept) == wanted_sign)
    floor = np.maximum(rules.min_contribution, rules.min_share * total)[:, None]
    eligible = agrees & (np.abs(by_concept) >= floor) & (by_concept != 0)
    # Largest |contribution| first among the eligible; a stable sort keeps concept order on ties.
    strength = np.where(eligible, np.abs(by_concept), -1.0)
    k = min(rules.max_factors, len(grouped))
    order = np.argsort(-strength, axis=1, kind="stable")[:, :k]
    taken = np.take_along_axis(eligible, order, axis=1)
    rows = np.repeat(np.arange(shap.shape[0]), k).reshape(-1, k)
    ranks = np.cumsum(taken, axis=1)
    return CitedFactors(
        concepts=grouped,
        distance=distance,
        side=side,
        total=total,
        rows=rows[taken],
        ranks=ranks[taken],
        concept=order[taken],
        contribution=np.take_along_axis(by_concept, order, axis=1)[taken],
    )


@dataclass(frozen=True)
class Reasons:
    """One reason per row and the factors it cites as JSON (same order as the rows).

    Attributes:
        text: The reason, e.g. ``"raises risk: 4 support tickets in the last 30 days"``.
        factors: JSON ``{"distance", "side", "total", "factors": [{"concept", "features",
            "direction", "contribution"}]}``, numbers in log-odds rounded to 4 decimals.
    """

    text: np.ndarray
    factors: np.ndarray


def _number(x: np.ndarray) -> np.ndarray:
    # JSON numbers rounded to 4 decimals; str of a float64 is valid JSON (never NaN here).
    return np.round(np.asarray(x, dtype=float), 4).astype(str).astype(object)


def _by_rank(cited: CitedFactors, values: np.ndarray, k: int) -> np.ndarray:
    """(rows, k) matrix of a per-factor value at (row, rank), None where a row cites fewer."""
    matrix = np.full((len(cited.distance), k), None, dtype=object)
    matrix[cited.rows, cited.ranks - 1] = values
    return matrix


def _joined(matrix: np.ndarray, separator: str) -> pd.Series:
    """Each row's non-null entries joined in rank order (one pass per rank, never per row)."""
    out = pd.Series(np.full(len(matrix), None, dtype=object))
    for rank in range(matrix.shape[1]):  # at most max_factors ranks
        part = pd.Series(matrix[:, rank], dtype=object)
        out = out.where(part.isna(), (out + separator + part).fillna(part))
    return out


def write_reasons(cited: CitedFactors, phrases: np.ndarray, words: ReasonWords) -> Reasons:
    """Join the cited factors' phrases into one reason per row and serialise the factors.

    Args:
        cited: Output of :func:`cite_factors`.
        phrases: One phrase per cited factor (aligned with ``cited.rows``).
        words: How the two directions read.

    Returns:
        Per row: the phrases grouped by direction (the direction of the strongest factor first),
        each group led by its words (``"raises risk: A; B; holds risk down: C"``), or
        :data:`NO_STRONG_SIGNALS`; and the JSON of the factors.
    """
    n = len(cited.distance)
    k = int(cited.ranks.max()) if len(cited.ranks) else 0
    phrases = np.asarray(phrases, dtype=object)
    up = cited.contribution > 0
    nothing = np.full(len(phrases), None, dtype=object)
    raising = _joined(_by_rank(cited, np.where(up, phrases, nothing), k), "; ")
    lowering = _joined(_by_rank(cited, np.where(up, nothing, phrases), k), "; ")
    raising = words.raises + ": " + raising
    lowering = words.lowers + ": " + lowering
    first = _by_rank(cited, up, k)[:, 0] if k else np.full(n, None, dtype=object)
    raising_first = np.where(pd.isna(first), True, first).astype(bool)
    both = pd.Series(
        np.where(raising_first, raising + "; " + lowering, lowering + "; " + raising),
        dtype=object,
    )
    text = both.where(raising.notna() & lowering.notna(), raising.fillna(lowering))
    text = text.fillna(NO_STRONG_SIGNALS)

    # The factors JSON, built with vectorised string operations (a few concepts are dumped once).
    names = np.asarray([json.dumps(c.name) for c in cited.concepts], dtype=object)
    members = np.asarray([json.dumps(list(c.features)) for c in cited.concepts], dtype=object)
    direction = np.where(up, '"raises"', '"lowers"').astype(object)
    items = (
        '{"concept":'
        + names[cited.concept]
        + ',"features":'
        + members[cited.concept]
        + ',"direction":'
        + direction
        + ',"contribution":'
        + _number(cited.contribution)
        + "}"
    )
    listed = _joined(_by_rank(cited, items, k), ",").fillna("")
    factors = (
        '{"distance":'
        + pd.Series(_number(cited.distance), dtype=object)
        + ',"side":"'
        + pd.Series(cited.side, dtype=object)
        + '","total":'
        + pd.Series(_number(cited.total), dtype=object)
        + ',"factors":['
        + listed
        + "]}"
    )
    return Reasons(text.to_numpy(dtype=object), factors.to_numpy(dtype=object))


PhraseOf = Callable[[Concept, pd.DataFrame], pd.Series]


def concept_phrases(cited: CitedFactors, prepared: pd.DataFrame, phrase: PhraseOf) -> np.ndarray:
    """One phrase per cited factor, one call per concept (never per row).

    Args:
        cited: Output of :func:`cite_factors`.
        prepared: The model's input features of the rows, by row position.
        phrase: (concept, its features' values at its cited rows) -> text per row.

    Returns:
        An object array aligned with ``cited.rows``.
    """
    out = np.full(len(cited.rows), None, dtype=object)
    for index in np.unique(cited.concept):  # one pass per concept
        concept = cited.concepts[index]
        mask = cited.concept == index
        values = prepared.iloc[cited.rows[mask]][list(concept.features)].reset_index(drop=True)
        out[mask] = phrase(concept, values).to_numpy(dtype=object)
    return out
