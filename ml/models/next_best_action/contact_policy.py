"""The contact policy: who may be contacted through which channel, applied last before publishing.

Three rules, in this order (the first that applies is the reason):

1. **Do not contact**: the latest choice on channel ``all`` is a withdrawal: no channel at all.
2. **Consent**: the latest choice on the action's channel is a grant; no record means no consent.
3. **Frequency cap**: fewer than ``max_contacts`` contacts on that channel in the ``period_days``
   before the decision date (the contact log, ``marts.contacts``).

Every action that was worth its cost but is not allowed is written with its reason to the audit
table, so a person can see why a customer was not contacted.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ml.models.next_best_action.model import ACTION_CHANNEL, ACTIONS

AUDIT_COLUMNS: tuple[str, ...] = (
    "customer_id",
    "as_of_date",
    "suppressed_action",
    "channel",
    "expected_gain_eur",
    "reason",
    "final_action",
)


@dataclass(frozen=True)
class FrequencyCap:
    """At most ``max_contacts`` contacts on ``channel`` in any ``period_days`` window."""

    channel: str
    max_contacts: int
    period_days: int

    def __post_init__(self) -> None:
        if self.max_contacts < 0 or self.period_days < 1:
            raise ValueError(f"invalid cap for {self.channel}: {self}")


def caps_from_settings(caps: Mapping[str, tuple[int, int]]) -> tuple[FrequencyCap, ...]:
    """``{"email": (4, 30)}`` (contacts, days) from ``Settings.contact_caps`` as caps."""
    return tuple(FrequencyCap(channel, n, days) for channel, (n, days) in sorted(caps.items()))


@dataclass(frozen=True, eq=False)
class PolicyDecision:
    """What the policy allows and why not.

    Attributes:
        allowed: One boolean column per action of ``ml.models.next_best_action.model.ACTIONS``, aligned with
            the customers given.
        reasons: Same shape; the reason an action is not allowed, or None when it is.
    """

    allowed: pd.DataFrame
    reasons: pd.DataFrame


def _latest_granted(consent_in_force: pd.DataFrame, channel: str, index: pd.Index) -> np.ndarray:
    rows = consent_in_force.loc[consent_in_force["channel"] == channel]
    granted = rows.set_index("customer_id")["granted"].astype("boolean")
    return granted.reindex(index).to_numpy(dtype=object)


def decide_contacts(
    customer_ids: pd.Series,
    consent_in_force: pd.DataFrame,
    recent_contacts: pd.DataFrame,
    caps: tuple[FrequencyCap, ...],
) -> PolicyDecision:
    """Apply do-not-contact, consent and frequency caps to every action of every customer.

    Args:
        customer_ids: The customers to decide for.
        consent_in_force: ``ml.data.datasets.read_consent_in_force``: ``customer_id``, ``channel``
            (email, phone, sms or all) and ``granted`` (the latest recorded choice).
        recent_contacts: ``ml.data.datasets.read_recent_contacts``: ``customer_id``, ``channel``,
            ``period_days`` and ``contacts`` in that period before the decision date.
        caps: Frequency caps; a channel without a cap is not capped.

    Returns:
        The allowed mask and the reasons, aligned with ``customer_ids``.
    """
    index = pd.Index(customer_ids.to_numpy())
    do_not_contact = _latest_granted(consent_in_force, "all", index)
    blocked_all = pd.Series(do_not_contact).eq(False).to_numpy(dtype=bool)
    cap_by_channel = {cap.channel: cap for cap in caps}
    allowed: dict[str, np.ndarray] = {}
    reasons: dict[str, np.ndarray] = {}
    for action, channel in ACTION_CHANNEL.items():  # four actions, never rows
        granted = pd.Series(_latest_granted(consent_in_force, channel, index))
        reason = pd.Series(None, index=granted.index, dtype=object)
        reason = reason.mask(~granted.eq(True), f"no {channel} consent in force")
        cap = cap_by_channel.get(channel)
        if cap is not None:
            used = recent_contacts.loc[
                (recent_contacts["channel"] == channel)
                & (recent_contacts["period_days"] == cap.period_days)
            ]
            count = used.set_index("customer_id")["contacts"].reindex(index).fillna(0)
            count = pd.Series(count.to_numpy(dtype=int), index=granted.index)
            cap_text = (
                "frequency cap: "
                + count.astype(str)
                + f" {channel} contacts in the last {cap.period_days} days "
                f"(cap {cap.max_contacts})"
            )
            reason = reason.mask(reason.isna() & (count >= cap.max_contacts), cap_text)
        # A do-not-contact request is the reason whatever else applies.
        reason = reason.mask(blocked_all, "do-not-contact request in force")
        allowed[action] = reason.isna().to_numpy()
        reasons[action] = reason.to_numpy(dtype=object)
    columns = list(ACTIONS)
    return PolicyDecision(
        allowed=pd.DataFrame(allowed, index=customer_ids.index)[columns],
        reasons=pd.DataFrame(reasons, index=customer_ids.index)[columns],
    )


def audit_rows(
    gains: pd.DataFrame,
    decision: PolicyDecision,
    actions: pd.DataFrame,
    min_gain: float,
) -> pd.DataFrame:
    """One row per action that was worth its cost but was suppressed, with the reason.

    Args:
        gains: ``ml.models.next_best_action.model.expected_gains`` of the same customers.
        decision: The policy decision.
        actions: The published actions (``choose_actions`` with the policy), for the final
            action and the keys.
        min_gain: The smallest gain worth a contact.

    Returns:
        The columns :data:`AUDIT_COLUMNS`.
    """
    worth = gains.ge(min_gain) & ~decision.allowed
    long = worth.stack()
    long = long.loc[long.to_numpy(dtype=bool)]
    rows, names = long.index.get_level_values(0), long.index.get_level_values(1)
    audit = pd.DataFrame(
        {
            "customer_id": actions.loc[rows, "customer_id"].to_numpy(),
            "as_of_date": actions.loc[rows, "as_of_date"].to_numpy(),
            "suppressed_action": np.asarray(names, dtype=object),
            "channel": pd.Series(names).map(ACTION_CHANNEL).to_numpy(dtype=object),
            "expected_gain_eur": np.round(
                gains.to_numpy()[gains.index.get_indexer(rows), gains.columns.get_indexer(names)],
                2,
            ),
            "reason": decision.reasons.to_numpy()[
                decision.reasons.index.get_indexer(rows),
                decision.reasons.columns.get_indexer(names),
            ],
            "final_action": actions.loc[rows, "action"].to_numpy(),
        }
    )
    return audit.loc[:, list(AUDIT_COLUMNS)].reset_index(drop=True)
