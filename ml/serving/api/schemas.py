"""Request and answer schemas of the scoring service (strict: unknown fields are refused)."""

from __future__ import annotations

from datetime import date
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Scalar = str | int | float | bool | None


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Driver(BaseModel):
    """One of the top drivers: a feature, its value, and its SHAP contribution in log-odds
    (positive raises the probability)."""

    feature: str
    value: Any
    contribution: float


class LeadDriver(Driver):
    """A lead's driver, with which way it pushes."""

    direction: Literal["raises", "lowers"]


class LeadScore(BaseModel):
    """A scored lead, as a row of ``serving.lead_scores``."""

    lead_id: str
    conversion_probability: float = Field(description="Calibrated probability of converting.")
    score: int = Field(description="round(100 x conversion_probability), 0-100.")
    grade: Literal["A", "B", "C", "D"]
    top_drivers: list[LeadDriver]
    reason: str = Field(description="The reason in words.")
    model_name: str
    model_version: str


class RejectedLead(BaseModel):
    """A lead record of a batch that broke the export contract, and why."""

    index: int = Field(description="Position of the record in the request's leads.")
    reason: str


class LeadBatchRequest(_Strict):
    leads: list[dict[str, Scalar]] = Field(
        min_length=1, description="Lead records, columns named as in the CRM export."
    )


class LeadBatchAnswer(BaseModel):
    scores: list[LeadScore]
    rejected: list[RejectedLead]


class CustomerScore(BaseModel):
    """A scored customer, as a row of ``serving.customer_scores``."""

    customer_id: str
    as_of_date: date
    churn_probability: float = Field(description="Calibrated probability of churning.")
    churn_risk_band: Literal["high", "medium", "low"]
    churn_top_drivers: list[Driver]
    churn_reason: str = Field(description="The reason in words.")
    model_name: str
    model_version: str
    overrides: dict[str, Scalar] = Field(
        default_factory=dict, description="Feature values replaced for this answer (what-if)."
    )


class WhatIfRequest(_Strict):
    overrides: dict[str, Scalar] = Field(
        min_length=1, description="Feature name -> value to score with instead of the newest."
    )


class CustomerBatchRequest(_Strict):
    customer_ids: list[str] = Field(min_length=1)


class CustomerBatchAnswer(BaseModel):
    scores: list[CustomerScore]


class BlockedAction(BaseModel):
    """An action worth its cost that the contact policy did not allow, and why."""

    action: str
    channel: str
    expected_gain_eur: float
    reason: str


class NextBestAction(BaseModel):
    """The next best action of a customer, as a row of ``serving.next_best_actions``."""

    customer_id: str
    as_of_date: date
    action: str
    channel: str | None
    expected_gain_eur: float
    action_cost_eur: float
    value_at_risk_eur: float
    product_category: str | None
    reason: str
    blocked: list[BlockedAction] = Field(
        description="Better actions the contact policy blocked (do-not-contact, consent, caps)."
    )
    churn_probability: float
    model_name: str
    model_version: str


class FieldError(BaseModel):
    field: str
    message: str


class ErrorAnswer(BaseModel):
    detail: str
    errors: list[FieldError] = Field(default_factory=list)
