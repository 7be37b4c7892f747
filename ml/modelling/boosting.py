"""Feature frames in the form CatBoost expects, shared by every model in ``ml/``."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any

import numpy as np
import pandas as pd

MISSING_CATEGORY = "missing"


def catboost_frame(
    frame: pd.DataFrame,
    feature_names: Sequence[str],
    cat_features: Collection[str],
    bool_features: Collection[str] = (),
    what: str = "model",
) -> pd.DataFrame:
    """Select features in model order and give them the dtypes CatBoost expects.

    Categoricals become strings with :data:`MISSING_CATEGORY` for nulls; booleans become float64
    0/1; everything else becomes float64. Nulls in booleans and numbers become NaN (nullable
    columns from DuckDB included). Work is column by column, never row by row.

    Args:
        frame: Rows to prepare; may hold other columns too.
        feature_names: Feature columns, in the order the model uses them.
        cat_features: Which of ``feature_names`` are categorical.
        bool_features: Which of ``feature_names`` are yes/no values.
        what: Names the model in the error message ("frame lacks {what} features [...]").

    Returns:
        A frame with exactly ``feature_names`` as columns and the index of ``frame``.

    Raises:
        ValueError: If ``frame`` lacks a feature column, or a numeric feature holds values that
            are not numbers.
    """
    missing = [c for c in feature_names if c not in frame.columns]
    if missing:
        raise ValueError(f"frame lacks {what} features {missing}")
    cats, bools = set(cat_features), set(bool_features)
    columns: dict[str, Any] = {}
    for name in feature_names:  # a few dozen columns at most, never rows
        col = frame[name]
        if name in cats:
            columns[name] = col.astype("object").where(col.notna(), MISSING_CATEGORY).astype(str)
        elif name in bools:
            columns[name] = (
                col.astype("boolean").astype("Float64").to_numpy("float64", na_value=np.nan)
            )
        else:
            try:
                columns[name] = pd.to_numeric(col).to_numpy(dtype="float64", na_value=np.nan)
            except (TypeError, ValueError):
                raise ValueError(
                    f"feature {name!r} is not numeric; list it in cat_features"
                ) from None
    return pd.DataFrame(columns, index=frame.index)
