"""Score on request with the batch pipeline's own functions: leads, customers, next best action.

Nothing here re-implements a model step. A lead payload goes through the export's mapping and the
contract checks of ``ml.data.flat_tables`` and is scored by ``ml.models.lead_scoring.model``; a
customer is scored by ``ml.models.churn.pipeline.score`` from the warehouse snapshot, explained
against what is typical for the whole snapshot (as a batch run does); the next best action is
``ml.models.next_best_action.pipeline.score`` with the contact policy, on the customer's rows of
the published inputs. The SHAP drivers of one row do not depend on the rows it is explained with
(``ml.modelling.explanations.batch_independent``), so an answer equals the batch run's.
"""

from __future__ import annotations

import json
import math
import re
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import duckdb
import numpy as np
import pandas as pd

from ml.data.flat_tables import ATTRIBUTE_PREFIX, check_flat_records
from ml.data.mapping import MappingError, TableMapping, snake_case
from ml.modelling.explanations import ShapMode
from ml.modelling.reasons import DEFAULT_RULES, ReasonRules
from ml.models.churn import pipeline as churn
from ml.models.churn.model import ChurnModel
from ml.models.churn.scoring import RiskBands, feature_fingerprints, unchanged_scores
from ml.models.lead_scoring.model import LeadModel, score_leads
from ml.models.next_best_action import pipeline as next_best_action
from ml.models.next_best_action.contact_policy import FrequencyCap
from ml.models.next_best_action.data import DecisionInputs
from ml.models.next_best_action.model import ActionSettings
from ml.serving.api.state import Champion, WarehouseSnapshot

Scalar = str | int | float | bool | None
_ATTRIBUTE_TYPES = {"number": "DOUBLE", "boolean": "BOOLEAN", "category": "VARCHAR"}


class PayloadError(ValueError):
    """A request's content breaks a rule; ``field`` names where (``leads.0.Country``)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class NotFoundError(LookupError):
    """No score for this id: unknown, not in the newest snapshot, or erased."""


def _text(value: Scalar) -> str | None:
    """A JSON value as a CSV export holds it (the mapping reads text)."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


@dataclass(frozen=True)
class ScoredLeads:
    """Scored leads in request order, and the records the contract checks rejected."""

    scores: pd.DataFrame
    rejected: pd.DataFrame


class LeadScorer:
    """Leads in the export's own column names through its mapping and checks, then the model."""

    def __init__(self, mapping: TableMapping, rules: ReasonRules = DEFAULT_RULES) -> None:
        self.mapping = mapping
        self.rules = rules
        # The checks run in DuckDB temp tables of a private in-memory database, one request at a
        # time (a connection is not shared between threads).
        self._con = duckdb.connect()
        self._con.execute("SET TimeZone = 'UTC'")
        self._lock = threading.Lock()

    def known(self, model: LeadModel, name: str) -> bool:
        """Whether a payload may carry export column ``name``: the mapping names or drops it, or
        it is the export name of an attribute the model uses (``attr_<snake_case name>``)."""
        return (
            name in self.mapping.named_columns
            or name in self.mapping.ignored
            or ATTRIBUTE_PREFIX + snake_case(name) in model.kinds
        )

    def score(self, champion: Champion, records: Sequence[Mapping[str, Scalar]]) -> ScoredLeads:
        """Score lead records (the export's column names -> values).

        Raises:
            PayloadError: A record names a column the export mapping and the model do not know.
        """
        model: LeadModel = champion.model
        named = tuple(self.mapping.named_columns)
        for i, record in enumerate(records):
            for name in record:
                if not self.known(model, name):
                    raise PayloadError(
                        f"leads.{i}.{name}",
                        "unknown field: neither a column of the lead export's mapping nor one "
                        "the lead model uses",
                    )
        columns = list(dict.fromkeys([*named, *(n for r in records for n in r)]))
        frame = pd.DataFrame(
            {c: [_text(r.get(c)) for r in records] for c in columns}, dtype="string"
        )
        attribute_types = {
            f: _ATTRIBUTE_TYPES[k] for f, k in model.kinds.items() if f.startswith(ATTRIBUTE_PREFIX)
        }
        try:
            with self._lock:
                checked = check_flat_records(self._con, self.mapping, frame, attribute_types)
        except MappingError as error:
            # The mapping's message starts with the mapping file's path: not for callers.
            message = str(error).split(f"{self.mapping.table.name}: ", 1)[-1]
            column = re.search(r"column '([^']*)'", message)
            raise PayloadError(f"leads.{column.group(1) if column else ''}", message) from None
        # An attribute the model uses and the payload leaves out is not filled in, as an empty
        # cell of the export is.
        rows = checked.rows.reindex(
            columns=[*checked.rows.columns, *(a for a in attribute_types if a not in checked.rows)]
        )
        scores = score_leads(model, rows, model_version=champion.version, rules=self.rules)
        order = rows[["record", "lead_id"]].assign(lead_id=lambda f: f["lead_id"].astype(str))
        scores = order.merge(scores, on="lead_id", how="left").sort_values("record")
        scores.insert(1, "model_name", champion.name)
        return ScoredLeads(scores.reset_index(drop=True), checked.rejected)


def _override_frame(
    model: ChurnModel, rows: pd.DataFrame, overrides: Mapping[str, Scalar]
) -> pd.DataFrame:
    features = set(model.feature_names)
    cats = set(model.cat_features)
    changed = rows.copy()
    for name, value in overrides.items():
        where = f"overrides.{name}"
        if name not in features:
            raise PayloadError(where, "not a feature of the churn model")
        if name in cats:
            if value is not None and not isinstance(value, str):
                raise PayloadError(where, "a category: give a string or null")
            changed[name] = value
        else:
            if isinstance(value, bool) or not (
                value is None or (isinstance(value, int | float) and math.isfinite(value))
            ):
                raise PayloadError(where, "a number: give a finite number or null")
            changed[name] = np.nan if value is None else float(value)
    return changed


class PublishedScores:
    """The published rows a champion would score the same now, per snapshot, kept in memory.

    A daily batch run keeps a customer's published row when the same model version scored the
    same feature values for the same as-of date (``unchanged_scores``); the service answers with
    that row too instead of scoring and explaining again. Worked out once for the whole snapshot
    (one vectorised fingerprint of every customer's features) when the snapshot or the champion
    changes; a what-if, a new champion, changed features or another way of explaining (reason
    ``rules`` or ``shap_mode``, in the fingerprint) are scored live.
    """

    def __init__(self, rules: ReasonRules = DEFAULT_RULES, shap_mode: ShapMode = "regular") -> None:
        self.rules = rules
        self.shap_mode = shap_mode
        self._lock = threading.Lock()
        self._key: tuple[WarehouseSnapshot, str] | None = None
        self._rows = pd.DataFrame()

    def of(self, champion: Champion, snapshot: WarehouseSnapshot) -> pd.DataFrame:
        """The reusable published rows of ``snapshot`` for ``champion``, indexed by id."""
        with self._lock:
            if self._key != (snapshot, champion.version):
                features = snapshot.features.reset_index(drop=True)
                model: ChurnModel = champion.model
                fingerprints = feature_fingerprints(
                    features[list(model.feature_names)], self.rules, self.shap_mode
                )
                previous = snapshot.published.reset_index(drop=True)
                keep = unchanged_scores(features, fingerprints, previous, champion.version)
                kept = snapshot.published.loc[
                    snapshot.published.index.isin(features.loc[keep, "customer_id"].astype(str))
                ]
                self._key, self._rows = (snapshot, champion.version), kept
            return self._rows


def score_customers(
    champion: Champion,
    snapshot: WarehouseSnapshot,
    customer_ids: Sequence[str],
    overrides: Mapping[str, Scalar] | None = None,
    shap_mode: str = "regular",
    published: PublishedScores | None = None,
    rules: ReasonRules = DEFAULT_RULES,
) -> pd.DataFrame:
    """Score customers of the snapshot by id, as the batch run scores them.

    ``overrides`` (feature -> value) replaces feature values first, for what-if questions.
    Without overrides and given ``published``, a customer whose published row the champion
    would score the same gets that row (:class:`PublishedScores`); the others are scored now,
    their reasons by ``rules`` (``CRM_REASON_*``, the rules ``published`` was built with).

    Raises:
        NotFoundError: An id is unknown, not in the newest snapshot, or erased.
        PayloadError: An override names no feature or has the wrong type.
    """
    index = snapshot.features.index
    missing = [i for i in customer_ids if i in snapshot.erased or i not in index]
    if missing:
        raise NotFoundError(missing[0])
    ids = pd.Index(list(customer_ids))
    reusable = published.of(champion, snapshot) if published is not None and not overrides else None
    live = ids if reusable is None else ids[~ids.isin(reusable.index)]
    if reusable is not None and live.empty:
        return reusable.loc[ids].reset_index(drop=True)
    rows = snapshot.features.loc[live].reset_index(drop=True)
    if overrides:
        rows = _override_frame(champion.model, rows, overrides)
    scores = churn.score(
        champion.model,
        champion.version,
        rows,
        datetime.now(UTC),
        RiskBands(),
        typical=snapshot.typical,
        shap_mode=shap_mode,  # type: ignore[arg-type]
        rules=rules,
    )
    if reusable is None or len(live) == len(ids):
        return scores
    both = pd.concat([reusable.loc[ids.difference(live)], scores.set_index(live)])
    return both.loc[ids].reset_index(drop=True)


def decide_action(
    customer_scores: pd.DataFrame,
    snapshot: WarehouseSnapshot,
    settings: ActionSettings,
    caps: Sequence[FrequencyCap],
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The next best action of one scored customer, with the contact policy applied.

    The customer's other model outputs (uplift, value, next product) are the published ones;
    the churn probability is the one just scored. Consent, do-not-contact and the contacts in
    the caps' periods are the warehouse's newest.

    Returns:
        ``(action, blocked)``: the row of ``serving.next_best_actions`` and the rows of
        ``serving.contact_policy_audit`` (actions the policy blocked, with the reason).

    Raises:
        NotFoundError: The customer has no published scores to decide from.
    """
    decisions = snapshot.decisions
    customer_id = str(customer_scores["customer_id"].iloc[0])
    if decisions is None:
        raise NotFoundError(customer_id)
    inputs = decisions.scores.loc[decisions.scores["customer_id"].astype(str) == customer_id]
    if inputs.empty:
        raise NotFoundError(customer_id)
    inputs = inputs.assign(
        churn_probability=float(customer_scores["churn_probability"].iloc[0])
    ).reset_index(drop=True)
    consent = decisions.consent_in_force
    contacts = decisions.recent_contacts
    one = DecisionInputs(
        inputs,
        consent.loc[consent["customer_id"].astype(str) == customer_id],
        contacts.loc[contacts["customer_id"].astype(str) == customer_id],
    )
    return next_best_action.score(one, settings, caps)


def drivers_of(text: Any) -> list[dict[str, Any]]:
    """The JSON drivers of a scored row as a list."""
    return list(json.loads(text)) if isinstance(text, str) else []
