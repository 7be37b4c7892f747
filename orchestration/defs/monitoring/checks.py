"""The monitoring alerts as asset checks: one per rule, with the observed value and threshold.

Each monitoring asset judges its rules in ``ml.modelling.alerts`` and writes every verdict to its
metadata (``alert/<rule>/...``); a check reports its rule's verdict. None blocks: a model that
does worse is still better than no scores, and the retraining sensor acts on the same figures
(docs/operations.md says how to read and act on each).
"""

import dagster as dg

from ml.modelling.alerts import PERFORMANCE_RULES, STABILITY_RULES
from ml.models.lead_scoring.monitoring import STABILITY_RULES as LEAD_STABILITY_RULES
from orchestration.lib import keys

_DESCRIPTIONS = {
    "estimated_auc": "ROC AUC estimated without labels (CBPE) at least the version's held-out "
    "AUC minus CRM_RETRAIN_ESTIMATED_AUC_MARGIN.",
    "realized_auc": "Realized ROC AUC of the newest run whose labels landed at least the "
    "version's held-out AUC minus CRM_RETRAIN_REALIZED_AUC_MARGIN.",
    "realized_calibration": "Realized positive rate of the newest labelled run within 1.5 "
    "half-widths of the estimate's 95% interval (the probabilities still mean what they say).",
    "score_psi": "PSI of the scores against the previous run below CRM_STABILITY_PSI_THRESHOLD.",
    "band_changed_share": "Share of customers whose risk band changed since the previous run "
    "below CRM_STABILITY_BAND_CHANGED_THRESHOLD.",
    "action_changed_share": "Share of customers whose next best action changed since the "
    "previous run below CRM_STABILITY_ACTION_CHANGED_THRESHOLD.",
}
_LEAD_DESCRIPTIONS = {
    **_DESCRIPTIONS,
    "score_psi": "PSI of the lead conversion probabilities against the previous run below "
    "CRM_STABILITY_PSI_THRESHOLD.",
    "band_changed_share": "Share of the leads scored in both runs whose grade changed since "
    "the previous run below CRM_STABILITY_BAND_CHANGED_THRESHOLD.",
}


def _verdict(
    context: dg.AssetCheckExecutionContext, asset: dg.AssetKey, rule: str
) -> dg.AssetCheckResult:
    event = context.instance.get_latest_materialization_event(asset)
    metadata = event.asset_materialization.metadata if event and event.asset_materialization else {}
    passed = metadata.get(f"alert/{rule}/passed")
    if passed is None:
        reason = metadata.get("reason") or metadata.get("compared")
        said = getattr(reason, "value", None) or "no figures this run"
        return dg.AssetCheckResult(passed=True, metadata={"skipped": True, "reason": str(said)})
    return dg.AssetCheckResult(
        passed=bool(passed.value),
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            "observed": metadata[f"alert/{rule}/observed"],
            "threshold": metadata[f"alert/{rule}/threshold"],
            "message": metadata[f"alert/{rule}/message"],
        },
    )


def _check(
    asset: dg.AssetKey, prefix: str, rule: str, descriptions: dict[str, str] = _DESCRIPTIONS
) -> dg.AssetChecksDefinition:
    @dg.asset_check(asset=asset, name=f"{prefix}_{rule}", description=descriptions[rule])
    def check(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
        return _verdict(context, asset, rule)

    return check


@dg.definitions
def checks() -> dg.Definitions:
    return dg.Definitions(
        asset_checks=[
            *(_check(keys.CHURN_PERFORMANCE, "churn", rule) for rule in PERFORMANCE_RULES),
            *(_check(keys.LEAD_PERFORMANCE, "lead_scoring", rule) for rule in PERFORMANCE_RULES),
            *(_check(keys.CHURN_STABILITY, "churn", rule) for rule in STABILITY_RULES),
            *(
                _check(keys.LEAD_STABILITY, "lead_scoring", rule, _LEAD_DESCRIPTIONS)
                for rule in LEAD_STABILITY_RULES
            ),
        ]
    )
