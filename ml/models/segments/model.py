"""Behavioural customer segments: RFM plus engagement, clustered, ordered and named.

Every customer is placed in a five-axis behaviour space built from ``marts.customer_features``:

* recency: days since the last login or order, whichever is more recent;
* frequency: logins in the last 60 days plus orders in the last 90 days;
* monetary: 90-day value, ``monthly_price * 3 + order_value_90d``;
* engagement: feature uses plus e-mail clicks in the last 30 days;
* tenure: days since the first subscription.

Counts, money and days are skewed, so each axis is ``log1p``-transformed and then robust-scaled
(median and inter-quartile range): one whale or one very old account cannot stretch an axis for
everyone else. A customer with no login and no order on record gets ``NEVER_ACTIVE_DAYS`` as
recency; older activity is capped at the same value, because beyond two years the exact age of
the last visit no longer changes what a marketer does.

Stability. KMeans numbers its clusters arbitrarily and its k-means++ start depends on row order.
So the fit sorts rows by ``customer_id`` first (the input order cannot matter), uses a fixed
``n_init`` and ``random_state``, and then orders the clusters by their centre (highest value
first, then engagement, recency, tenure): segment 1 is always the most valuable group, whatever
number KMeans gave it. Assignment is the nearest centre, so it is independent of row order too.

Names. Each centre is placed on five marketer axes (activity, tenure, value, engagement, churn
risk) as a percentile of the population: a centre above ``HIGH_POSITION`` of customers on an axis
earns that axis' "high" phrase, below ``LOW_POSITION`` its "low" phrase. The two strongest phrases
make the name ("High-value, highly engaged", "Dormant, at risk"). Strength is the distance from the
middle times a weight: a group that is 20% of customers cannot sit above 90% of them on any axis,
so a top group ties on every axis and the weight decides, favouring what a marketer acts on (value,
risk) over what follows from it ("very active", "low churn risk"). "Dormant" always wins a place,
because win-back is the first thing done with such a group, and it makes "low engagement"
redundant. Names are made unique by adding further phrases and, as a last resort, a number.

The fitted :class:`SegmentModel` holds only aggregates (scaling, centres, names, positions): no
customer id or row, so its ``to_dict`` output can be logged to MLflow as JSON.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sklearn.cluster import KMeans
from sklearn.metrics import silhouette_score

# Column -> DuckDB type of serving.customer_segments.
CUSTOMER_SEGMENTS_SCHEMA: dict[str, str] = {
    "customer_id": "VARCHAR",
    "as_of_date": "DATE",
    "segment_id": "INTEGER",
    "segment_name": "VARCHAR",
}
CUSTOMER_SEGMENTS_COLUMNS: tuple[str, ...] = tuple(CUSTOMER_SEGMENTS_SCHEMA)

PROFILE_COLUMNS: tuple[str, ...] = (
    "segment_id",
    "segment_name",
    "customers",
    "share",
    "avg_monthly_value",
    "avg_order_value_90d",
    "avg_logins_30d",
    "avg_churn_probability",
    "description",
)

# The behaviour axes, in the column order of the scaled matrix and of the centres.
DIMENSIONS: tuple[str, ...] = ("recency", "frequency", "monetary", "engagement", "tenure")
_RECENCY, _FREQUENCY, _MONETARY, _ENGAGEMENT, _TENURE = range(len(DIMENSIONS))

RECENCY_COLUMNS: tuple[str, ...] = ("days_since_last_login", "days_since_last_order")
COUNT_COLUMNS: tuple[str, ...] = (
    "tenure_days",
    "monthly_price",
    "logins_30d",
    "logins_31_60d",
    "feature_uses_30d",
    "email_clicks_30d",
    "orders_90d",
    "order_value_90d",
)
BEHAVIOUR_COLUMNS: tuple[str, ...] = COUNT_COLUMNS + RECENCY_COLUMNS
CHURN_COLUMN = "churn_probability"

# No login and no order on record counts as two years ago; older activity is capped there too.
NEVER_ACTIVE_DAYS = 730.0

# A centre above this share of customers on an axis is "high" on it, below LOW_POSITION "low".
HIGH_POSITION = 0.7
LOW_POSITION = 0.3
_POSITION_DECIMALS = 9

# The axes names are built from, in the order the words appear in a name, with their phrases.
NAME_AXES: tuple[str, ...] = ("activity", "tenure", "value", "engagement", "churn_risk")
# axis -> ((high phrase, weight), (low phrase, weight)); the weight ranks phrases of equal strength.
_PHRASES: dict[str, tuple[tuple[str, float], tuple[str, float]]] = {
    "activity": (("very active", 0.7), ("dormant", 1.0)),
    "tenure": (("loyal", 0.8), ("new", 0.9)),
    "value": (("high-value", 1.0), ("low spend", 0.8)),
    "engagement": (("highly engaged", 0.9), ("low engagement", 0.9)),
    "churn_risk": (("at risk", 1.0), ("low churn risk", 0.7)),
}
# axis -> (lower, higher): tells apart two segments with the same phrases.
_COMPARATIVES: dict[str, tuple[str, str]] = {
    "activity": ("less active", "more active"),
    "tenure": ("shorter tenure", "longer tenure"),
    "value": ("lower spend", "higher spend"),
    "engagement": ("less engaged", "more engaged"),
    "churn_risk": ("lower risk", "higher risk"),
}
_ALWAYS_NAMED = "dormant"
_IMPLIED_BY_ALWAYS_NAMED = "low engagement"
_UNREMARKABLE = "Mainstream"
_WORDS_PER_NAME = 2


@dataclass(frozen=True)
class SegmentConfig:
    """Settings of the segmentation.

    Attributes:
        n_segments: Number of segments. ``None`` picks it from ``candidate_segments`` by the
            silhouette score on a sample (slower: one KMeans fit per candidate).
        seed: Random seed of KMeans, of the fit sample and of the silhouette sample.
        n_init: KMeans restarts; fixed so reruns do the same work and find the same centres.
        candidate_segments: Segment counts tried when ``n_segments`` is ``None``.
        silhouette_sample_size: Rows the silhouette score is computed on (it is quadratic).
        max_fit_rows: KMeans is fitted on at most this many rows (a seeded sample of the
            customers sorted by id); every customer is still assigned.
    """

    # Five groups is what a marketing team can act on and remember; more fragments the story.
    n_segments: int | None = 5
    seed: int = 42
    n_init: int = 10
    candidate_segments: tuple[int, ...] = (3, 4, 5, 6, 7)
    silhouette_sample_size: int = 5_000
    max_fit_rows: int = 200_000

    def __post_init__(self) -> None:
        if self.n_segments is not None and self.n_segments < 2:
            raise ValueError(f"n_segments must be >= 2 or None, got {self.n_segments}")
        if self.n_segments is None and (
            not self.candidate_segments or min(self.candidate_segments) < 2
        ):
            raise ValueError(
                f"candidate_segments must be non-empty and >= 2, got {self.candidate_segments}"
            )
        if self.n_init < 1:
            raise ValueError(f"n_init must be >= 1, got {self.n_init}")
        if self.silhouette_sample_size < 2:
            raise ValueError(
                f"silhouette_sample_size must be >= 2, got {self.silhouette_sample_size}"
            )
        if self.max_fit_rows < 2:
            raise ValueError(f"max_fit_rows must be >= 2, got {self.max_fit_rows}")

    def to_dict(self) -> dict[str, Any]:
        """The settings as JSON-ready values (also usable as flat MLflow parameters)."""
        return {
            "n_segments": self.n_segments,
            "seed": self.seed,
            "n_init": self.n_init,
            "candidate_segments": list(self.candidate_segments),
            "silhouette_sample_size": self.silhouette_sample_size,
            "max_fit_rows": self.max_fit_rows,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SegmentConfig:
        """Inverse of :meth:`to_dict`."""
        return cls(**{**data, "candidate_segments": tuple(data["candidate_segments"])})


@dataclass(frozen=True)
class SegmentModel:
    """A fitted segmentation: scaling, ordered centres and names; aggregates only, no rows.

    Attributes:
        config: The settings it was fitted with.
        location: Per-axis median of the ``log1p`` behaviour (order of ``DIMENSIONS``).
        scale: Per-axis inter-quartile range (or a fallback when it is 0).
        centres: Scaled centres, one per segment, in segment-id order.
        segment_ids: The ids, ``1..k``; 1 is the highest-value segment.
        segment_names: Plain-word names, unique, in segment-id order.
        positions: Per segment, the share of customers below its centre on each of
            ``NAME_AXES``; the evidence behind its name.
        fitted_rows: Rows KMeans was fitted on.
        silhouette: Silhouette score of the chosen k when k was chosen, else ``None``.
    """

    config: SegmentConfig
    location: tuple[float, ...]
    scale: tuple[float, ...]
    centres: tuple[tuple[float, ...], ...]
    segment_ids: tuple[int, ...]
    segment_names: tuple[str, ...]
    positions: tuple[tuple[float, ...], ...]
    fitted_rows: int
    silhouette: float | None = None
    dimensions: tuple[str, ...] = field(default=DIMENSIONS)

    @property
    def n_segments(self) -> int:
        """Number of segments."""
        return len(self.segment_ids)

    def names_by_id(self) -> dict[int, str]:
        """Segment id -> name."""
        return dict(zip(self.segment_ids, self.segment_names, strict=True))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready description of the model (for MLflow); :meth:`from_dict` restores it."""
        return {
            "config": self.config.to_dict(),
            "dimensions": list(self.dimensions),
            "location": list(self.location),
            "scale": list(self.scale),
            "centres": [list(c) for c in self.centres],
            "segment_ids": list(self.segment_ids),
            "segment_names": list(self.segment_names),
            "name_axes": list(NAME_AXES),
            "positions": [list(p) for p in self.positions],
            "fitted_rows": self.fitted_rows,
            "silhouette": self.silhouette,
            "never_active_days": NEVER_ACTIVE_DAYS,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SegmentModel:
        """Rebuild a model from :meth:`to_dict` output.

        Raises:
            ValueError: If the dictionary was written for other behaviour axes.
        """
        if tuple(data["dimensions"]) != DIMENSIONS:
            raise ValueError(
                f"segment model axes {data['dimensions']} differ from this code's {DIMENSIONS}"
            )
        return cls(
            config=SegmentConfig.from_dict(data["config"]),
            location=tuple(float(v) for v in data["location"]),
            scale=tuple(float(v) for v in data["scale"]),
            centres=tuple(tuple(float(v) for v in c) for c in data["centres"]),
            segment_ids=tuple(int(v) for v in data["segment_ids"]),
            segment_names=tuple(str(v) for v in data["segment_names"]),
            positions=tuple(tuple(float(v) for v in p) for p in data["positions"]),
            fitted_rows=int(data["fitted_rows"]),
            silhouette=None if data["silhouette"] is None else float(data["silhouette"]),
        )


# ---------------------------------------------------------------------------------------------
# Input checks and the behaviour matrix


def _check_frame(frame: pd.DataFrame, required: tuple[str, ...], what: str) -> None:
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise ValueError(f"{what} lacks columns {missing}")
    if frame.empty:
        raise ValueError(f"{what} is empty: no customers to segment")
    null_ids = int(frame["customer_id"].isna().sum())
    if null_ids:
        raise ValueError(f"{what} has {null_ids} rows with a null customer_id")
    duplicates = int(frame["customer_id"].duplicated().sum())
    if duplicates:
        raise ValueError(
            f"{what} has {duplicates} duplicate customer_id rows; pass one row per customer "
            "(the newest as_of_date)"
        )
    # Only the recency columns may be null (no login / no order on record); marts tests the rest.
    for column in (c for c in required if c in COUNT_COLUMNS or c == CHURN_COLUMN):
        nulls = int(pd.isna(frame[column]).sum())
        if nulls:
            raise ValueError(f"{what} column {column} has {nulls} null values")


def _floats(frame: pd.DataFrame, column: str) -> np.ndarray:
    # Nullable integer columns (as DuckDB returns them) become float with NaN for <NA>.
    return pd.to_numeric(frame[column], errors="coerce").to_numpy(dtype="float64", na_value=np.nan)


def _churn(frame: pd.DataFrame, what: str) -> np.ndarray:
    churn = _floats(frame, CHURN_COLUMN)
    outside = int(((churn < 0) | (churn > 1)).sum())
    if outside:
        raise ValueError(f"{what} has {outside} rows with churn_probability outside [0, 1]")
    return churn


def behaviour_matrix(frame: pd.DataFrame) -> np.ndarray:
    """The unscaled behaviour axes (``log1p`` of ``DIMENSIONS``), one row per input row.

    Args:
        frame: Rows with ``BEHAVIOUR_COLUMNS``; the recency columns may be null.

    Returns:
        A float array of shape ``(len(frame), len(DIMENSIONS))``.
    """
    login = _floats(frame, "days_since_last_login")
    order = _floats(frame, "days_since_last_order")
    # fmin ignores a single NaN: the most recent of the two activities; NaN only if neither.
    recency = np.fmin(login, order)
    recency = np.clip(np.where(np.isnan(recency), NEVER_ACTIVE_DAYS, recency), 0, NEVER_ACTIVE_DAYS)
    frequency = _floats(frame, "logins_30d") + _floats(frame, "logins_31_60d")
    frequency = frequency + _floats(frame, "orders_90d")
    monetary = _floats(frame, "monthly_price") * 3 + _floats(frame, "order_value_90d")
    engagement = _floats(frame, "feature_uses_30d") + _floats(frame, "email_clicks_30d")
    tenure = _floats(frame, "tenure_days")
    raw = np.column_stack([recency, frequency, monetary, engagement, tenure])
    # Negative counts or refunds would make log1p undefined; they mean "none" here.
    return np.log1p(np.clip(raw, 0, None))


def _robust_scaling(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    location = np.median(matrix, axis=0)
    q1, q3 = np.percentile(matrix, [25, 75], axis=0)
    scale = q3 - q1
    # A constant middle half (e.g. most customers with 0 orders) has IQR 0: fall back to the
    # standard deviation, and to 1 for a truly constant axis, so nothing divides by zero.
    std = matrix.std(axis=0)
    scale = np.where(scale > 0, scale, np.where(std > 0, std, 1.0))
    return location, scale


def _scaled(model: SegmentModel, frame: pd.DataFrame) -> np.ndarray:
    return (behaviour_matrix(frame) - np.asarray(model.location)) / np.asarray(model.scale)


def _nearest(points: np.ndarray, centres: np.ndarray) -> np.ndarray:
    # |x - c|^2 = |x|^2 - 2 x.c + |c|^2: an (n, k) matrix, never (n, k, d). Ties go to the lower
    # index, i.e. the higher-value segment, the same way every run.
    distance = (
        (points**2).sum(axis=1, keepdims=True) - 2 * points @ centres.T + (centres**2).sum(axis=1)
    )
    return np.asarray(distance.argmin(axis=1))


# ---------------------------------------------------------------------------------------------
# Fitting


def _kmeans(points: np.ndarray, k: int, config: SegmentConfig) -> KMeans:
    return KMeans(n_clusters=k, n_init=config.n_init, random_state=config.seed).fit(points)


def _choose_k(
    points: np.ndarray, candidates: list[int], config: SegmentConfig
) -> tuple[int, float]:
    scores = []
    for k in candidates:  # a handful of candidate counts, not rows
        labels = _kmeans(points, k, config).labels_
        scores.append(
            float(
                silhouette_score(
                    points,
                    labels,
                    sample_size=min(config.silhouette_sample_size, len(points)),
                    random_state=config.seed,
                )
            )
        )
    best = int(np.argmax(scores))  # first maximum: the smaller k wins a tie
    return candidates[best], scores[best]


def _order_centres(centres: np.ndarray) -> np.ndarray:
    # np.lexsort sorts by the last key first: value desc, engagement desc, recency asc, tenure desc.
    return np.lexsort(
        (
            -centres[:, _TENURE],
            centres[:, _RECENCY],
            -centres[:, _ENGAGEMENT],
            -centres[:, _MONETARY],
        )
    )


def _share_below(population: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Mid-rank position of ``values`` in ``population``: share below plus half the ties."""
    ordered = np.sort(population)
    below = np.searchsorted(ordered, values, side="left")
    at_or_below = np.searchsorted(ordered, values, side="right")
    return (below + at_or_below) / (2.0 * len(ordered))


def _positions(points: np.ndarray, churn: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
    """Per segment, the population position of its mean on each of ``NAME_AXES``."""
    # Activity is frequency minus recency in scaled units: frequent and recent is "very active".
    axes = np.column_stack(
        [
            points[:, _FREQUENCY] - points[:, _RECENCY],
            points[:, _TENURE],
            points[:, _MONETARY],
            points[:, _ENGAGEMENT],
            churn,
        ]
    )
    counts = np.bincount(labels, minlength=k).astype("float64")
    sums = np.stack(
        [np.bincount(labels, weights=axes[:, j], minlength=k) for j in range(axes.shape[1])], 1
    )
    # Rounded, so a segment whose members all share one value (e.g. no engagement at all) sits
    # in the middle of that tie, not on either side of it by float summation noise.
    means = np.round(sums / np.maximum(counts, 1)[:, None], _POSITION_DECIMALS)
    axes = np.round(axes, _POSITION_DECIMALS)
    return np.column_stack([_share_below(axes[:, j], means[:, j]) for j in range(axes.shape[1])])


def _descriptors(position: np.ndarray) -> list[tuple[int, str]]:
    """The axes a segment stands out on as (axis index, phrase), strongest first."""
    found: list[tuple[float, int, str]] = []
    for j, axis in enumerate(NAME_AXES):  # five axes per segment
        (high, high_weight), (low, low_weight) = _PHRASES[axis]
        p = float(position[j])
        if p >= HIGH_POSITION:
            found.append(((p - 0.5) * high_weight, j, high))
        elif p <= LOW_POSITION:
            found.append(((0.5 - p) * low_weight, j, low))
    phrases = {phrase for _, _, phrase in found}
    if _ALWAYS_NAMED in phrases:
        found = [d for d in found if d[2] != _IMPLIED_BY_ALWAYS_NAMED]
    # Ties in strength go to the earlier axis, so the order never rests on float noise alone.
    found.sort(key=lambda item: (item[2] != _ALWAYS_NAMED, -round(item[0], 9), item[1]))
    return [(j, phrase) for _, j, phrase in found]


def _render(descriptors: list[tuple[int, str]], words: int) -> str:
    chosen = sorted(descriptors[:words])  # reading order follows NAME_AXES
    if not chosen:
        return _UNREMARKABLE
    text = ", ".join(phrase for _, phrase in chosen)
    return text[0].upper() + text[1:]


def _numbered(names: list[str]) -> list[str]:
    seen: dict[str, int] = {}
    unique = []
    for name in names:
        seen[name] = seen.get(name, 0) + 1
        unique.append(name if seen[name] == 1 else f"{name} {seen[name]}")
    return unique


def _separate(
    members: list[int], descriptors: list[list[tuple[int, str]]], positions: np.ndarray
) -> list[str]:
    """Distinct names for segments that share one, in the order of ``members``."""
    base = _render(descriptors[members[0]], _WORDS_PER_NAME)
    for words in range(_WORDS_PER_NAME + 1, len(NAME_AXES) + 1):
        names = [_render(descriptors[i], words) for i in members]
        if len(set(names)) == len(names):
            return names
    if len(members) == 2:
        # Same phrases: say how the two differ on the axis that separates them most.
        axis = int(np.abs(positions[members[0]] - positions[members[1]]).argmax())
        lower, higher = _COMPARATIVES[NAME_AXES[axis]]
        first_higher = positions[members[0], axis] > positions[members[1], axis]
        contrast = (higher, lower) if first_higher else (lower, higher)
        return [f"{base} ({word})" for word in contrast]
    return _numbered([base] * len(members))


def segment_names(positions: np.ndarray) -> list[str]:
    """Unique plain-word names for segments placed at ``positions`` (rows follow NAME_AXES).

    The two strongest phrases make a name. Segments that share a name get further phrases; two
    that still share one are told apart by the axis they differ on most ("Dormant, at risk
    (longer tenure)"); more than two are numbered in segment order.

    Args:
        positions: Shape ``(k, len(NAME_AXES))``, the population share below each centre.

    Returns:
        One name per row of ``positions``.
    """
    descriptors = [_descriptors(p) for p in positions]
    names = [_render(d, _WORDS_PER_NAME) for d in descriptors]
    groups = pd.Series(range(len(names))).groupby(pd.Series(names), sort=False)
    for members in groups.groups.values():  # one group per distinct name, k at most
        if len(members) > 1:
            order = sorted(int(i) for i in members)
            for i, name in zip(order, _separate(order, descriptors, positions), strict=True):
                names[i] = name
    # A separated name could, in principle, equal another segment's plain name.
    return _numbered(names)


def fit_segments(frame: pd.DataFrame, config: SegmentConfig | None = None) -> SegmentModel:
    """Fit behavioural segments on one row per customer.

    Args:
        frame: One row per customer (newest as-of date): ``customer_id``, ``BEHAVIOUR_COLUMNS``
            and ``churn_probability``. Row order does not matter.
        config: Settings; defaults to :class:`SegmentConfig`.

    Returns:
        The fitted, ordered and named segments.

    Raises:
        ValueError: If columns are missing, the frame is empty, a customer appears twice, a
            column other than the recency columns has nulls, a churn probability is outside
            [0, 1], or there are fewer distinct customers' behaviours than segments.
    """
    config = config or SegmentConfig()
    what = "segment training frame"
    _check_frame(frame, ("customer_id", *BEHAVIOUR_COLUMNS, CHURN_COLUMN), what)
    wanted = config.n_segments or min(config.candidate_segments)
    if len(frame) < wanted:
        raise ValueError(f"{what} has {len(frame)} rows, fewer than the {wanted} segments asked")

    # Canonical order first: KMeans' start (and the fit sample) must not see the input order.
    ordered = frame.iloc[np.argsort(frame["customer_id"].astype(str).to_numpy(), kind="stable")]
    matrix = behaviour_matrix(ordered)
    churn = _churn(ordered, what)
    location, scale = _robust_scaling(matrix)
    points = (matrix - location) / scale

    distinct = len(np.unique(points, axis=0))
    if distinct < wanted:
        raise ValueError(
            f"{what} has only {distinct} distinct customer behaviours, fewer than the "
            f"{wanted} segments asked"
        )
    fit_points = points
    if len(points) > config.max_fit_rows:
        rng = np.random.default_rng(config.seed)
        fit_points = points[np.sort(rng.choice(len(points), config.max_fit_rows, replace=False))]

    silhouette: float | None = None
    if config.n_segments is None:
        candidates = sorted(k for k in set(config.candidate_segments) if k <= distinct)
        k, silhouette = _choose_k(fit_points, candidates, config)
    else:
        k = config.n_segments

    centres = _kmeans(fit_points, k, config).cluster_centers_
    centres = centres[_order_centres(centres)]
    labels = _nearest(points, centres)
    positions = _positions(points, churn, labels, k)
    return SegmentModel(
        config=config,
        location=tuple(float(v) for v in location),
        scale=tuple(float(v) for v in scale),
        centres=tuple(tuple(float(v) for v in c) for c in centres),
        segment_ids=tuple(range(1, k + 1)),
        segment_names=tuple(segment_names(positions)),
        positions=tuple(tuple(float(v) for v in p) for p in positions),
        fitted_rows=len(fit_points),
        silhouette=silhouette,
    )


# ---------------------------------------------------------------------------------------------
# Assignment and profiles


def _as_dates(values: pd.Series) -> np.ndarray:
    # datetime.date objects so DuckDB stores DATE, as in serving.customer_scores.
    return np.asarray(pd.to_datetime(values).dt.date.to_numpy(dtype=object))


def assign_segments(model: SegmentModel, frame: pd.DataFrame) -> pd.DataFrame:
    """Rows of ``serving.customer_segments``: the nearest segment of every customer.

    Args:
        model: A fitted segmentation.
        frame: One row per customer: ``customer_id``, ``as_of_date`` and ``BEHAVIOUR_COLUMNS``.

    Returns:
        ``customer_id``, ``as_of_date``, ``segment_id`` (int), ``segment_name``, in input order.

    Raises:
        ValueError: If columns are missing, the frame is empty, a customer appears twice or a
            non-recency column has nulls.
    """
    _check_frame(frame, ("customer_id", "as_of_date", *BEHAVIOUR_COLUMNS), "segment input frame")
    index = _nearest(_scaled(model, frame), np.asarray(model.centres))
    ids = np.asarray(model.segment_ids, dtype="int64")[index]
    names = np.asarray(model.segment_names, dtype=object)[index]
    return pd.DataFrame(
        {
            "customer_id": frame["customer_id"].astype(str).to_numpy(dtype=object),
            "as_of_date": _as_dates(frame["as_of_date"]),
            "segment_id": ids,
            "segment_name": names,
        }
    )[list(CUSTOMER_SEGMENTS_COLUMNS)]


def _fixed(values: pd.Series, decimals: int) -> pd.Series:
    # Vectorised fixed-point text (no per-row format calls); NaN for an empty segment -> "n/a".
    scaled = (values.abs() * 10**decimals).round()
    whole = (scaled // 10**decimals).astype("Int64").astype(str)
    text = whole
    if decimals:
        fraction = (scaled % 10**decimals).astype("Int64").astype(str).str.zfill(decimals)
        text = whole + "." + fraction
    sign = pd.Series(np.where(values < 0, "-", ""), index=values.index)
    return (sign + text).where(values.notna(), "n/a")


def profile(model: SegmentModel, assigned: pd.DataFrame, frame: pd.DataFrame) -> pd.DataFrame:
    """One row per segment: size, value, activity and churn risk, with a one-line description.

    Args:
        model: The segmentation that produced ``assigned``.
        assigned: Output of :func:`assign_segments`.
        frame: The customers' features and ``churn_probability`` (one row per customer; joined on
            ``customer_id``).

    Returns:
        ``PROFILE_COLUMNS``, one row per segment of the model in id order (a segment nobody was
        assigned to has 0 customers and empty averages). ``avg_monthly_value`` is
        ``monthly_price + order_value_90d / 3``: subscription plus orders per month.

    Raises:
        ValueError: If columns are missing, either frame is empty or has duplicate customers, or
            an assigned customer has no feature row.
    """
    _check_frame(assigned, ("customer_id", "segment_id"), "segment assignment")
    needed = ("customer_id", "monthly_price", "order_value_90d", "logins_30d", CHURN_COLUMN)
    _check_frame(frame, needed, "segment profile frame")
    _churn(frame, "segment profile frame")
    features = frame[list(needed)].assign(customer_id=frame["customer_id"].astype(str))
    joined = assigned[["customer_id", "segment_id"]].astype({"customer_id": str})
    joined = joined.merge(features, on="customer_id", how="left", validate="one_to_one")
    unmatched = int(joined["monthly_price"].isna().sum())
    if unmatched:
        raise ValueError(f"{unmatched} assigned customers have no row in the segment profile frame")
    unknown = int((~joined["segment_id"].isin(model.segment_ids)).sum())
    if unknown:
        raise ValueError(f"{unknown} assigned rows have a segment_id the model does not know")

    joined["monthly_value"] = joined["monthly_price"] + joined["order_value_90d"] / 3
    stats = (
        joined.groupby("segment_id")
        .agg(
            customers=("customer_id", "size"),
            avg_monthly_value=("monthly_value", "mean"),
            avg_order_value_90d=("order_value_90d", "mean"),
            avg_logins_30d=("logins_30d", "mean"),
            avg_churn_probability=(CHURN_COLUMN, "mean"),
        )
        .reindex(list(model.segment_ids))
    )
    stats["customers"] = stats["customers"].fillna(0).astype("int64")
    stats["share"] = stats["customers"] / len(joined)
    stats["segment_name"] = pd.Series(model.names_by_id())
    stats = stats.rename_axis("segment_id").reset_index()

    overall_value = float(joined["monthly_value"].mean())
    overall_churn = float(joined[CHURN_COLUMN].mean())
    relative = stats["avg_monthly_value"] / overall_value if overall_value > 0 else np.nan
    stats["description"] = (
        stats["segment_name"]
        + ": "
        + stats["customers"].astype(str)
        + " customers ("
        + _fixed(stats["share"] * 100, 1)
        + "%), "
        + _fixed(stats["avg_monthly_value"], 2)
        + " per month ("
        + _fixed(pd.Series(relative, index=stats.index), 1)
        + "x average), "
        + _fixed(stats["avg_logins_30d"], 1)
        + " logins in 30 days, churn risk "
        + _fixed(stats["avg_churn_probability"] * 100, 1)
        + "% (average "
        + _fixed(pd.Series(overall_churn * 100, index=stats.index), 1)
        + "%)"
    )
    return stats[list(PROFILE_COLUMNS)]
