"""Next best action per customer, the consent check applied last before publishing."""

from dataclasses import asdict, fields

import dagster as dg
from pydantic import Field

from ml.core.warehouse import connect, export_parquet, publish_table
from ml.data.datasets import read_action_inputs, read_consent_in_force, read_recent_contacts
from ml.models.next_best_action.contact_policy import (
    audit_rows,
    caps_from_settings,
    decide_contacts,
)
from ml.models.next_best_action.model import ActionSettings, choose_actions, expected_gains
from orchestration.defs.churn.assets import customer_scores
from orchestration.defs.markdown import markdown_table
from orchestration.defs.next_product.assets import next_product_offers
from orchestration.defs.uplift.assets import customer_uplift
from orchestration.defs.value.assets import customer_value
from orchestration.resources import CrmSettings

CONSENT_IN_FORCE = dg.AssetKey(["marts", "consent_in_force"])
CONTACTS = dg.AssetKey(["marts", "contacts"])
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


@dg.asset(
    key=["serving", "next_best_actions"],
    group_name="serving",
    kinds={"duckdb", "parquet"},
    deps=[
        customer_scores,
        customer_uplift,
        customer_value,
        next_product_offers,
        CONSENT_IN_FORCE,
        CONTACTS,
    ],
)
def next_best_actions(
    context: dg.AssetExecutionContext, config: NextBestActionSettings, crm: CrmSettings
) -> dg.MaterializeResult:
    """One action per customer by expected incremental value net of cost, or no action.

    The contact policy is the last step before publishing (ml/models/next_best_action/contact_policy.py): a
    do-not-contact request, a channel without consent in force, or a channel whose frequency cap
    (CRM_CONTACT_CAPS) is reached blocks an action, and the customer gets the next best allowed
    action or none. Every action worth its cost that the policy blocked is written with its
    reason to serving.contact_policy_audit.
    """
    settings = crm.get()
    action_settings = config.to_action_settings()
    caps = caps_from_settings(settings.contact_caps)
    with connect(settings.warehouse_path, threads=settings.threads) as con:
        inputs = read_action_inputs(con)
        as_of = inputs["as_of_date"].iloc[0]
        decision = decide_contacts(
            inputs["customer_id"],
            read_consent_in_force(con),
            read_recent_contacts(con, as_of, [cap.period_days for cap in caps]),
            caps,
        )
        actions = choose_actions(inputs, action_settings, decision.allowed)
        audit = audit_rows(
            expected_gains(inputs, action_settings), decision, actions, action_settings.min_gain
        )
        as_of = [actions["as_of_date"].iloc[0]]
        for table, rows in (("next_best_actions", actions), ("contact_policy_audit", audit)):
            publish_table(
                con, rows, "serving", table, replace_where="as_of_date = ?", replace_params=as_of
            )
        path = export_parquet(con, "serving", "next_best_actions", settings.exports_dir)
        export_parquet(con, "serving", "contact_policy_audit", settings.exports_dir)
    counts = actions["action"].value_counts().to_dict()
    suppressed = audit["reason"].str.split(":").str[0].value_counts().to_dict()
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": len(actions),
            "as_of_date": str(as_of),
            "actions": dg.MetadataValue.json({str(k): int(v) for k, v in counts.items()}),
            "expected_gain_eur": float(actions["expected_gain_eur"].sum()),
            "suppressed_by_policy": dg.MetadataValue.json(
                {str(k): int(v) for k, v in suppressed.items()}
            ),
            "audit_rows": len(audit),
            "settings": dg.MetadataValue.json(asdict(action_settings)),
            "top_actions": dg.MetadataValue.md(
                markdown_table(
                    actions.nlargest(5, "expected_gain_eur")[
                        ["customer_id", "action", "expected_gain_eur", "reason"]
                    ]
                )
            ),
            "path": dg.MetadataValue.path(str(path)),
        }
    )
