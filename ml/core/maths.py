"""Small numeric helpers shared by the generator and the models."""

from __future__ import annotations

import numpy as np


def sigmoid(x: np.ndarray) -> np.ndarray:
    """The logistic function ``1 / (1 + exp(-x))``, elementwise.

    Written out rather than ``scipy.special.expit``: expit differs from this formula in the last
    bit for about 2% of values (measured on 5M normal draws), and the synthetic world and the
    stored calibrations were made with this formula, so the same inputs give the same bits.
    """
    return 1.0 / (1.0 + np.exp(-x))
