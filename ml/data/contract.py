"""The raw data contract: the tables a CRM export must provide, as data.

This module is the one place that names raw tables and columns. The generator writes it, ingest
enforces it, docs/data-contract.md explains it, and the dbt sources read what ingest loaded.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

DuckType = Literal["VARCHAR", "INTEGER", "BIGINT", "DOUBLE", "BOOLEAN", "DATE", "TIMESTAMP"]


@dataclass(frozen=True)
class Column:
    """One column of a raw table.

    Attributes:
        name: Column name in the file.
        type: DuckDB type the value must cast to.
        required: The column must be present and its values non-null.
        description: What the value means.
        pii: Personal data; dropped in staging once identity resolution is done.
        protected: Protected attribute; kept only for fairness audits, never a feature.
    """

    name: str
    type: DuckType
    required: bool
    description: str
    pii: bool = False
    protected: bool = False


@dataclass(frozen=True)
class Table:
    """One raw table: a file ``<name>.csv`` or ``<name>.parquet`` in the source folder."""

    name: str
    key: str
    description: str
    columns: tuple[Column, ...]
    optional: bool = False
    """A CRM may not have this table at all: a file with a header and no rows is valid."""
    may_be_empty: bool = False
    """A file with a header and no rows is valid (the CRM has no such data). Otherwise an empty
    file means a broken export, and ingest refuses it rather than replace the last good load."""
    flat: bool = False
    """A flat export (leads, a customer snapshot): every kept column that is not a contract
    column becomes a typed attribute ``attr_<name>`` (protected ones ``protected_<name>``)."""
    flag_column: str | None = None
    """The yes/no outcome a flat export may give as a flag instead of a date."""
    outcome_columns: tuple[str, ...] = ()
    """The outcome dates the flag is derived from when they are mapped."""
    start_column: str | None = None
    """The date an outcome cannot precede (a lead converts after it is created)."""
    erasable: bool = False
    """A flat table whose key is the CRM's customer record id: erasure requests and tombstones
    apply to it (``ml.data.erasure``)."""

    @property
    def allows_no_rows(self) -> bool:
        """Whether a file without data rows is a valid (empty) table."""
        return self.optional or self.may_be_empty

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    @property
    def required_columns(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns if c.required)


RAW_TABLES: dict[str, Table] = {
    t.name: t
    for t in (
        Table(
            name="customers",
            key="customer_record_id",
            description="One row per customer record in the source CRM. One person may have "
            "several records (duplicates); identity resolution merges them.",
            columns=(
                Column("customer_record_id", "VARCHAR", True, "Record id in the source CRM."),
                Column("full_name", "VARCHAR", False, "Person's name.", pii=True),
                Column("email", "VARCHAR", False, "E-mail address, as typed.", pii=True),
                Column("phone", "VARCHAR", False, "Phone number, any format.", pii=True),
                Column("country", "VARCHAR", False, "Country name or code, any spelling."),
                Column("birth_year", "INTEGER", False, "Year of birth.", protected=True),
                Column("gender", "VARCHAR", False, "Gender as recorded.", protected=True),
                Column("acquisition_channel", "VARCHAR", False, "How the customer came."),
                Column("signed_up_at", "TIMESTAMP", True, "When the record was created."),
            ),
        ),
        Table(
            name="subscriptions",
            key="subscription_id",
            description="One row per subscription period. A plan or price change ends one "
            "period and starts the next; a cancellation ends the last one.",
            columns=(
                Column("subscription_id", "VARCHAR", True, "Subscription period id."),
                Column("customer_record_id", "VARCHAR", True, "Customer record."),
                Column("plan", "VARCHAR", True, "Plan name (basic, standard, premium)."),
                Column(
                    "contract_type",
                    "VARCHAR",
                    True,
                    "month-to-month, one-year or two-year.",
                ),
                Column("monthly_price", "DOUBLE", True, "Price per month in EUR."),
                Column("started_at", "TIMESTAMP", True, "Start of the period."),
                Column("ended_at", "TIMESTAMP", False, "End of the period; empty while active."),
                Column(
                    "end_reason",
                    "VARCHAR",
                    False,
                    "Why it ended: cancelled, plan_change or price_change; empty while active.",
                ),
            ),
        ),
        Table(
            name="orders",
            may_be_empty=True,
            key="order_id",
            description="One row per order (add-ons, services, one-off purchases).",
            columns=(
                Column("order_id", "VARCHAR", True, "Order id."),
                Column("customer_record_id", "VARCHAR", True, "Customer record."),
                Column("ordered_at", "TIMESTAMP", True, "When the order was placed."),
                Column(
                    "amount",
                    "DOUBLE",
                    False,
                    "Order value in EUR (refunds are negative); empty in a transaction log "
                    "without amounts.",
                ),
                Column("product_category", "VARCHAR", False, "Product category."),
                Column("status", "VARCHAR", False, "completed or refunded."),
            ),
        ),
        Table(
            name="events",
            key="event_id",
            description="One row per activity event.",
            columns=(
                Column("event_id", "VARCHAR", True, "Event id."),
                Column("customer_record_id", "VARCHAR", True, "Customer record."),
                Column(
                    "event_type",
                    "VARCHAR",
                    True,
                    "login, email_open, email_click, pricing_page_visit or feature_use.",
                ),
                Column("occurred_at", "TIMESTAMP", True, "When it happened."),
            ),
        ),
        Table(
            name="support_tickets",
            may_be_empty=True,
            key="ticket_id",
            description="One row per support ticket.",
            columns=(
                Column("ticket_id", "VARCHAR", True, "Ticket id."),
                Column("customer_record_id", "VARCHAR", True, "Customer record."),
                Column("opened_at", "TIMESTAMP", True, "When the ticket was opened."),
                Column("category", "VARCHAR", False, "billing, technical, account or other."),
                Column("priority", "VARCHAR", False, "low, normal or high."),
                Column("resolved_at", "TIMESTAMP", False, "When it was resolved; empty if open."),
                Column("satisfaction_score", "INTEGER", False, "Customer rating 1-5."),
            ),
        ),
        Table(
            name="consents",
            may_be_empty=True,
            key="consent_id",
            description="One row per consent change of a customer record for a channel.",
            columns=(
                Column("consent_id", "VARCHAR", True, "Consent record id."),
                Column("customer_record_id", "VARCHAR", True, "Customer record."),
                Column(
                    "channel",
                    "VARCHAR",
                    True,
                    "email, phone or sms; all for a do-not-contact request (withdrawn) or its end.",
                ),
                Column("status", "VARCHAR", True, "granted or withdrawn."),
                Column("recorded_at", "TIMESTAMP", True, "When the choice was recorded."),
            ),
        ),
        Table(
            name="campaigns",
            key="send_id",
            description="One row per customer record in a randomised campaign test: the treated "
            "arm was contacted, the control arm was held out. Uplift models learn from it.",
            optional=True,
            columns=(
                Column("send_id", "VARCHAR", True, "Id of this customer's place in the test."),
                Column("customer_record_id", "VARCHAR", True, "Customer record."),
                Column("campaign_id", "VARCHAR", True, "Campaign (one wave of one test)."),
                Column(
                    "campaign_type",
                    "VARCHAR",
                    True,
                    "What the treatment is: retention_offer.",
                ),
                Column("sent_at", "TIMESTAMP", True, "When the treated arm was contacted."),
                Column("arm", "VARCHAR", True, "treatment or control."),
                Column(
                    "outcome",
                    "INTEGER",
                    False,
                    "1 if the campaign's goal was met (retention_offer: still subscribed 90 "
                    "days after sent_at), 0 if not; empty while not yet known.",
                ),
            ),
        ),
        Table(
            name="contacts",
            key="contact_id",
            description="One row per outbound contact of a customer record (the contact log): "
            "campaign e-mails, calls, text messages. Frequency caps count it.",
            optional=True,
            columns=(
                Column("contact_id", "VARCHAR", True, "Contact id."),
                Column("customer_record_id", "VARCHAR", True, "Customer record contacted."),
                Column("channel", "VARCHAR", True, "email, phone or sms."),
                Column("contacted_at", "TIMESTAMP", True, "When the contact was made."),
                Column("purpose", "VARCHAR", False, "Why: newsletter, retention_offer, ..."),
            ),
        ),
        Table(
            name="erasure_requests",
            key="request_id",
            description="One row per request to erase a person (right to be forgotten). The "
            "erasure step removes every record of that person from every store and keeps only "
            "a salted hash of the record ids, so a re-imported row of theirs is dropped.",
            optional=True,
            columns=(
                Column("request_id", "VARCHAR", True, "Request id (the audit log refers to it)."),
                Column(
                    "customer_record_id",
                    "VARCHAR",
                    True,
                    "A record of the person; all records resolved to the same person go.",
                ),
                Column("requested_at", "TIMESTAMP", True, "When the person asked."),
            ),
        ),
    )
}

LEADS_TABLE = Table(
    name="leads",
    key="lead_id",
    description="One row per lead (a prospect, not yet a customer). Unlike the tables above it "
    "is loaded through a YAML column mapping (docs/lead-scoring.md): export columns are renamed "
    "to these names, and every other kept column becomes a typed attribute ``attr_<name>``.",
    optional=True,
    flat=True,
    flag_column="converted",
    outcome_columns=("converted_at",),
    start_column="created_at",
    columns=(
        Column("lead_id", "VARCHAR", True, "Lead id in the source CRM."),
        Column("created_at", "TIMESTAMP", False, "When the lead was created."),
        Column("source", "VARCHAR", False, "Where the lead came from."),
        Column("country", "VARCHAR", False, "Country name or code."),
        Column("company_size", "VARCHAR", False, "Company size band."),
        Column("role", "VARCHAR", False, "Job title or role."),
        Column("email_opens", "INTEGER", False, "Marketing e-mails opened."),
        Column("page_views", "INTEGER", False, "Web pages viewed."),
        Column("website_visits", "INTEGER", False, "Website sessions."),
        Column("time_on_site_minutes", "DOUBLE", False, "Total time on the website."),
        Column(
            "converted_at", "TIMESTAMP", False, "When the lead became a customer; empty if not."
        ),
        Column(
            "converted",
            "BOOLEAN",
            False,
            "Outcome flag for exports without a conversion date; else converted_at is not empty.",
        ),
    ),
)
"""The lead contract (after the column mapping); see ``ml.models.lead_scoring.model``."""

CUSTOMER_SNAPSHOT_TABLE = Table(
    name="customer_snapshot",
    key="customer_id",
    description="One row per customer of a flat customer export: the customer's attributes and "
    "whether they have left (churn from a flat table, docs/bring-your-own-data.md). Loaded "
    "through a mapping like leads: every other kept column becomes a typed attribute "
    "``attr_<name>``.",
    optional=True,
    flat=True,
    flag_column="churned",
    outcome_columns=("churned_at",),
    erasable=True,
    columns=(
        Column("customer_id", "VARCHAR", True, "Customer id in the source CRM."),
        Column(
            "observed_at",
            "TIMESTAMP",
            False,
            "When the attributes were observed (the export's date); empty: when it was loaded.",
        ),
        Column("churned_at", "TIMESTAMP", False, "When the customer left; empty if still one."),
        Column(
            "churned",
            "BOOLEAN",
            False,
            "Whether the customer has left, for exports without a date; else churned_at is not "
            "empty.",
        ),
    ),
)
"""Churn from a flat table (snapshot mode); see ``ml.models.churn_snapshot``."""

FLAT_TABLES: dict[str, Table] = {t.name: t for t in (LEADS_TABLE, CUSTOMER_SNAPSHOT_TABLE)}
SOURCE_TABLES: dict[str, Table] = {**RAW_TABLES, **FLAT_TABLES}
"""Every table a source folder may hold, by name (the sections a ``mapping.yaml`` may have)."""

PII_COLUMNS: frozenset[str] = frozenset(
    c.name for t in RAW_TABLES.values() for c in t.columns if c.pii
)
PROTECTED_COLUMNS: frozenset[str] = frozenset(
    c.name for t in RAW_TABLES.values() for c in t.columns if c.protected
)
