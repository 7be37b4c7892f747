"""Next best action per customer, the contact policy applied last before publishing."""

from collections.abc import Iterator
from dataclasses import asdict, fields

import dagster as dg
from pydantic import Field

from ml.core.warehouse import connect
from ml.data.features import read_audit_customers
from ml.modelling.fairness import FairnessConfig
from ml.models.next_best_action import pipeline as next_best_action
from ml.models.next_best_action.contact_policy import caps_from_settings
from ml.models.next_best_action.data import read_decision_inputs
from ml.models.next_best_action.model import ActionSettings
from ml.serving.tables import publish, serving_table
from orchestration.lib import keys
from orchestration.lib.metadata import counts, published_metadata
from orchestration.lib.sources import skip_without_inputs
from orchestration.resources import CrmSettings

ACTIONS = serving_table("next_best_actions")
AUDIT = serving_table("contact_policy_audit")
_DEFAULTS = ActionSettings()


class NextBestActionSettings(dg.Config):
    """Costs (EUR) and assumptions of the actions; see ml/models/next_best_action/model.py."""

    cost_retention_call: float = Field(default=_DEFAULTS.cost_retention_call)
    cost_retention_offer: float = Field(default=_DEFAULTS.cost_retention_offer)
    cost_cross_sell_offer: float = Field(default=_DEFAULTS.cost_cross_sell_offer)
    cost_nurture_email: float = Field(default=_DEFAULTS.cost_nurture_email)
    call_save_rate: float = Field(
        default=_DEFAULTS.call_save_rate,
        description="Share of would-be churners a call keeps (an assumption until tested).",
    )
    nurture_save_rate: float = Field(default=_DEFAULTS.nurture_save_rate)
    offer_incrementality: float = Field(
        default=_DEFAULTS.offer_incrementality,
        description="Share of predicted purchases that a cross-sell offer causes.",
    )
    margin: float = Field(default=_DEFAULTS.margin, description="Gross margin on order value.")
    min_gain: float = Field(
        default=_DEFAULTS.min_gain, description="Smallest expected gain (EUR) worth a contact."
    )

    def to_action_settings(self) -> ActionSettings:
        return ActionSettings(**{f.name: getattr(self, f.name) for f in fields(ActionSettings)})


@dg.multi_asset(
    specs=[
        dg.AssetSpec(
            keys.serving(table.name),
            group_name="next_best_action",
            kinds={"duckdb", "parquet"},
            deps=[
                keys.serving("customer_scores"),
                keys.serving("customer_uplift"),
                keys.serving("customer_value"),
                keys.serving("next_product_offers"),
                keys.mart("consent_in_force"),
                keys.mart("contacts"),
            ],
            description=f"serving.{table.name}: {table.grain}.",
        )
        for table in (ACTIONS, AUDIT)
    ],
    name="next_best_actions",
)
def next_best_actions(
    config: NextBestActionSettings, crm: CrmSettings
) -> Iterator[dg.MaterializeResult]:
    """One action per customer by expected incremental value net of cost, or no action.

    The contact policy is the last step before publishing: a do-not-contact request, a channel
    without consent in force, or a channel whose frequency cap (CRM_CONTACT_CAPS) is reached
    blocks an action, and the customer gets the next best allowed action or none. Every action
    worth its cost that the policy blocked goes to serving.contact_policy_audit with its reason.
    """
    settings = crm.get()
    if (skip := skip_without_inputs(settings, next_best_action.NEEDS)) is not None:
        for name in (ACTIONS.name, AUDIT.name):
            yield dg.MaterializeResult(asset_key=keys.serving(name), metadata=skip.metadata)
        return
    action_settings = config.to_action_settings()
    caps = caps_from_settings(settings.contact_caps)
    with connect(settings.warehouse_path, threads=settings.threads) as con:
        inputs = read_decision_inputs(con, [cap.period_days for cap in caps])
        actions, audit = next_best_action.score(inputs, action_settings, caps)
        fairness = next_best_action.audit_actions(
            actions,
            read_audit_customers(con),
            FairnessConfig(min_selection_rate_ratio=settings.fairness_min_selection_rate_ratio),
        )
        as_of = actions["as_of_date"].iloc[0]
        published = [
            publish(con, ACTIONS, actions, settings.exports_dir),
            publish(con, AUDIT, audit, settings.exports_dir, as_of_date=as_of),
        ]
    yield dg.MaterializeResult(
        asset_key=keys.serving(ACTIONS.name),
        metadata=published_metadata(
            published[0],
            actions,
            expected_gain_eur=float(actions["expected_gain_eur"].sum()),
            settings=dg.MetadataValue.json(asdict(action_settings)),
            fairness_gate="passed" if fairness.gate_passed else "FAILED (reported, not blocking)",
            fairness=dg.MetadataValue.md(fairness.table_markdown()),
        ),
    )
    yield dg.MaterializeResult(
        asset_key=keys.serving(AUDIT.name),
        metadata=published_metadata(
            published[1], audit, blocked_by=counts(audit["reason"].str.split(":").str[0])
        ),
    )
