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

import pandas as pd

from ml.data.sources import Needs
from ml.models.next_best_action.contact_policy import FrequencyCap, audit_rows, decide_contacts
from ml.models.next_best_action.data import DecisionInputs
from ml.models.next_best_action.model import ActionSettings, choose_actions, expected_gains

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
