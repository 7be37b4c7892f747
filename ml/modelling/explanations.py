"""SHAP contributions of a CatBoost booster, how they are computed, and how two ways agree.

CatBoost computes SHAP values three ways (``shap_calc_type`` of ``get_feature_importance``):
``Regular`` (TreeSHAP, the default), ``Approximate`` (each tree's change of value along the
decision path, cheaper per tree) and ``Exact``. :data:`ShapMode` names them in lower case, as
the ``CRM_SHAP_MODE`` setting does; :func:`driver_agreement` measures whether two of them name
the same top drivers, which is all an explanation shows (benchmarks/shap_speed.py).

SHAP values of a row must not depend on the other rows it is explained with: the scoring service
explains one customer or lead per request and must say what the batch run says. CatBoost computes
them from each leaf's training weight, but when a model has a leaf that no training row reached
and that still holds a value (monotone constraints leave such leaves), it recomputes every leaf's
weight from the rows it is given (catboost#1956), so the same row gets other contributions in
another batch (up to 0.01 log-odds measured on a toy model). :func:`shap_contributions` therefore
explains with a copy of the booster whose empty leaves weigh a negligible
:data:`EMPTY_LEAF_WEIGHT` instead of zero: CatBoost then keeps the training weights, the
contributions are those against the training rows whatever the batch, and predictions are
unchanged (leaf values are not touched).
"""

from __future__ import annotations

import json
import tempfile
import weakref
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from catboost import CatBoost, Pool

ShapMode = Literal["regular", "approximate", "exact"]
SHAP_MODES: tuple[ShapMode, ...] = ("regular", "approximate", "exact")
_CATBOOST_NAME: dict[ShapMode, str] = {
    "regular": "Regular",
    "approximate": "Approximate",
    "exact": "Exact",
}


EMPTY_LEAF_WEIGHT = 1e-9
"""Training weight given to leaves no training row reached (see the module docstring)."""
# id(booster) -> its explainer; CatBoost models are not hashable, so an entry is removed by a
# finalizer when its booster is collected.
_EXPLAINERS: dict[int, CatBoost] = {}


def batch_independent(booster: CatBoost) -> CatBoost:
    """The booster to compute SHAP values with: ``booster`` itself when every leaf has a
    training weight, else a copy whose empty leaves weigh :data:`EMPTY_LEAF_WEIGHT`.

    The copy is made once per booster (a JSON round trip of the model) and kept while the
    booster lives.
    """
    cached = _EXPLAINERS.get(id(booster))
    if cached is not None:
        return cached
    weights = np.asarray(booster.get_leaf_weights(), dtype=float)
    explainer = booster
    if len(weights) and not (weights > 0).all():
        with tempfile.TemporaryDirectory(prefix="crm_shap_") as folder:
            path = Path(folder) / "model.json"
            booster.save_model(str(path), format="json")
            model = json.loads(path.read_text())
            for tree in model["oblivious_trees"]:
                tree["leaf_weights"] = [
                    w if w > 0 else EMPTY_LEAF_WEIGHT for w in tree["leaf_weights"]
                ]
            path.write_text(json.dumps(model))
            explainer = type(booster)()
            explainer.load_model(str(path), format="json")
    _EXPLAINERS[id(booster)] = explainer
    weakref.finalize(booster, _EXPLAINERS.pop, id(booster), None)
    return explainer


def shap_contributions(booster: CatBoost, pool: Pool, mode: ShapMode = "regular") -> np.ndarray:
    """SHAP contributions per row and feature, in the booster's raw output (log-odds).

    Args:
        booster: A fitted CatBoost model.
        pool: The rows to explain.
        mode: How CatBoost computes them (:data:`ShapMode`).

    Returns:
        Array of shape (rows, features), columns in model order, the bias column dropped.

    Raises:
        ValueError: If ``mode`` is not one of :data:`SHAP_MODES`.

    A row's contributions do not depend on the other rows of ``pool`` (:func:`batch_independent`).
    """
    if mode not in _CATBOOST_NAME:
        raise ValueError(f"shap mode must be one of {list(SHAP_MODES)}, got {mode!r}")
    shap = batch_independent(booster).get_feature_importance(
        pool, type="ShapValues", shap_calc_type=_CATBOOST_NAME[mode]
    )
    return np.asarray(shap, dtype=float)[:, :-1]


def top_driver_order(shap: np.ndarray, k: int) -> np.ndarray:
    """Column positions of the ``k`` largest |contributions| per row, largest first.

    A stable sort keeps model order on ties, so the ranking is reproducible. Every explanation of
    the suite ranks its drivers with this function.
    """
    k = min(k, shap.shape[1])
    return np.argsort(-np.abs(shap), axis=1, kind="stable")[:, :k]


@dataclass(frozen=True)
class DriverAgreement:
    """How far two SHAP matrices of the same rows name the same top drivers.

    Attributes:
        rows: Rows compared.
        k: Drivers per row compared.
        top1: Share of rows whose largest driver is the same feature.
        same_set: Share of rows whose top ``k`` are the same features, in any order.
        same_order: Share of rows whose top ``k`` are the same features in the same order.
        max_abs_difference: Largest absolute difference of one contribution (log-odds).
    """

    rows: int
    k: int
    top1: float
    same_set: float
    same_order: float
    max_abs_difference: float

    def as_dict(self) -> dict[str, float | int]:
        """The fields as a JSON-ready dictionary."""
        return asdict(self)


def driver_agreement(reference: np.ndarray, other: np.ndarray, k: int = 3) -> DriverAgreement:
    """Agreement of the top ``k`` drivers of ``other`` with those of ``reference``, row by row.

    Args:
        reference: SHAP matrix (rows, features), e.g. the regular values.
        other: SHAP matrix of the same rows and features, e.g. the approximate values.
        k: Drivers per row (the explanations show 3).

    Returns:
        The shares of rows that agree and the largest difference of a contribution.

    Raises:
        ValueError: If the shapes differ or there are no rows.
    """
    if reference.shape != other.shape:
        raise ValueError(f"shapes differ: {reference.shape} and {other.shape}")
    if reference.shape[0] == 0:
        raise ValueError("no rows to compare")
    first, second = top_driver_order(reference, k), top_driver_order(other, k)
    return DriverAgreement(
        rows=int(reference.shape[0]),
        k=int(first.shape[1]),
        top1=float((first[:, 0] == second[:, 0]).mean()),
        same_set=float((np.sort(first, axis=1) == np.sort(second, axis=1)).all(axis=1).mean()),
        same_order=float((first == second).all(axis=1).mean()),
        max_abs_difference=float(np.abs(reference - other).max()),
    )
