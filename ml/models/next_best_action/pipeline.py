"""The next best action's life cycle: no model to train; decide per customer, policy last.

One action per customer by expected incremental value net of cost, or no action
(``ml.models.next_best_action.model``). The contact policy is the last step before publishing
(``ml.models.next_best_action.contact_policy``): a do-not-contact request, a channel without
consent in force, or a channel whose frequency cap is reached blocks an action, and the customer
gets the next best allowed action or none. Every action worth its cost that the policy blocked
is an audit row with its reason.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import numpy as np
import pandas as pd

from ml.data.sources import Needs
from ml.modelling.fairness import (
    PROTECTED_ATTRIBUTES,
    FairnessConfig,
    FairnessReport,
    fairness_report,
    protected_groups,
)
from ml.models.next_best_action.contact_policy import FrequencyCap, audit_rows, decide_contacts
from ml.models.next_best_action.data import DecisionInputs
from ml.models.next_best_action.model import (
    NO_ACTION,
    ActionSettings,
    choose_actions,
    expected_gains,
)

NEEDS = Needs(
    "next_best_action",
    tables=("customers", "subscriptions"),
    uses=("consents", "contacts", "campaigns", "orders"),
)
"""The source tables the model needs rows in (``ml.data.sources``)."""


def score(
    inputs: DecisionInputs, settings: ActionSettings, caps: Sequence[FrequencyCap]
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The rows of ``serving.next_best_actions`` and of ``serving.contact_policy_audit``."""
    scores = inputs.scores
    decision = decide_contacts(
        scores["customer_id"], inputs.consent_in_force, inputs.recent_contacts, tuple(caps)
    )
    actions = choose_actions(scores, settings, decision.allowed)
    audit = audit_rows(expected_gains(scores, settings), decision, actions, settings.min_gain)
    return actions, audit


def audit_actions(
    actions: pd.DataFrame, customers: pd.DataFrame, config: FairnessConfig | None = None
) -> FairnessReport:
    """Who receives an action (anything but no action), by gender and age band.

    There is no model to promote and no outcome yet, so the report is a record of the decision,
    not a promotion gate: ``gate_passed`` says whether the tested four-fifths rule holds for
    receiving any action; the TPR and calibration columns are empty or meaningless (no labels).

    Args:
        actions: ``score``'s actions: ``customer_id``, ``as_of_date``, ``action``.
        customers: ``customer_id``, ``gender``, ``birth_year`` of ``marts.customers``.
        config: Settings; its ``capacity_k`` is ignored (the policy has no capacity cut).
    """
    config = config or FairnessConfig()
    as_of_year = pd.Timestamp(actions["as_of_date"].max()).year
    groups = protected_groups(customers, as_of_year, config)
    sensitive = actions[["customer_id"]].merge(
        groups, on="customer_id", how="left", validate="one_to_one"
    )[list(PROTECTED_ATTRIBUTES)]
    acted = (actions["action"] != NO_ACTION).to_numpy(dtype=float)
    return fairness_report(
        np.zeros(len(actions), dtype=int),
        acted,
        0.5,
        sensitive,
        replace(config, capacity_k=None),
    )
