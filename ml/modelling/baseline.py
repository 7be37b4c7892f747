"""The simple baseline every model is judged against: one-hot logistic regression.

Categories (and yes/no columns) one-hot with missing as a category; numbers median-imputed and
scaled. A model that does not beat this on the same folds is not worth its complexity.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from ml.modelling.boosting import MISSING_CATEGORY


def one_hot_logistic_regression(categorical: Sequence[str], numeric: Sequence[str]) -> Pipeline:
    """The baseline pipeline; fit it on :func:`lr_inputs` of the same columns."""
    encoder = ColumnTransformer(
        [
            ("categories", OneHotEncoder(handle_unknown="ignore"), list(categorical)),
            (
                "numbers",
                make_pipeline(SimpleImputer(strategy="median"), StandardScaler()),
                list(numeric),
            ),
        ]
    )
    return make_pipeline(encoder, LogisticRegression(max_iter=2000))


def lr_inputs(
    frame: pd.DataFrame, categorical: Sequence[str], numeric: Sequence[str]
) -> pd.DataFrame:
    """The baseline's input: categories as strings (missing as a category), numbers as floats."""
    columns: dict[str, pd.Series] = {
        c: frame[c].astype("object").where(frame[c].notna(), MISSING_CATEGORY).astype(str)
        for c in categorical
    }
    columns |= {c: pd.to_numeric(frame[c]).astype("float64") for c in numeric}
    return pd.DataFrame(columns, index=frame.index)
