"""The dbt project built for real on small hand-written raw fixtures with dirty rows.

The fixtures (tests/data/fixtures/*.csv) hold one person under three records (e-mail case and
spaces, three phone spellings, three country spellings), a fourth record without e-mail matched
by phone, a future-dated customer, event and order, a negative completed order, an exact duplicate
event, an unknown event type, a subscription ending before it starts and one of an unknown record.
Expected values below are computed by hand from those files.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb

from ml.core.privacy import pii_salt
from ml.data.features import CHURN_FEATURES, KEY_COLUMNS, LABEL_COLUMN

Query = Callable[[str], list[tuple]]
# The conftest fixtures `dbt_build_fixtures`, `load_raw` and `dbt` hand out DbtBuild results and
# the loader/runner functions; tests never import conftest (pytest owns that module).
Build = Any

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_build_runs_every_model_unit_test_and_data_test(
    dbt_build_fixtures: tuple[Path, Build],
) -> None:
    _, build = dbt_build_fixtures
    assert build.returncode == 0, build.output[-5000:]
    assert build.failures() == []
    kinds = {r["unique_id"].split(".")[0] for r in build.results}
    assert {"model", "seed", "test", "unit_test"} <= kinds
    unit_tests = [r for r in build.results if r["unique_id"].startswith("unit_test.")]
    assert len(unit_tests) >= 5
    assert all(r["status"] == "pass" for r in unit_tests)


def test_schemas_are_exactly_staging_intermediate_marts(query: Query) -> None:
    schemas = {
        row[0]
        for row in query(
            "select distinct table_schema from information_schema.tables "
            "where table_catalog = current_database()"
        )
    }
    # state: what the last complete build saw, for incremental runs (macros/incremental.sql)
    assert schemas == {"raw", "staging", "intermediate", "marts", "state"}


def test_identity_resolution_maps_every_record_to_its_person(query: Query) -> None:
    mapping = dict(query("select customer_record_id, customer_id from marts.customer_identity_map"))
    assert mapping == {
        # same e-mail in three spellings
        "R001": "C-R001",
        "R002": "C-R001",
        "R003": "C-R001",
        # no e-mail, phone "004930 1234567" equals R001's "+49 30 1234567"
        "R004": "C-R001",
        "R005": "C-R005",
        "R006": "C-R006",
        "R007": "C-R007",
        # R008 is future-dated, so it is rejected, not mapped
        "R009": "C-R009",
        "R010": "C-R010",
    }


def test_emails_phones_and_countries_are_standardised(query: Query, warehouse: Path) -> None:
    salt = pii_salt(warehouse.parent)

    def hashed(value: str | None) -> str | None:
        # The dbt macro keyed_hash and ml.core.privacy must agree: tombstones depend on it.
        return None if value is None else hashlib.sha256((salt + value).encode()).hexdigest()

    rows = {
        r[0]: r[1:]
        for r in query(
            "select customer_record_id, email_hash, phone_hash, country_code, gender, "
            "acquisition_channel from staging.stg_crm__customers"
        )
    }
    anna = (hashed("anna.schmidt@example.com"), hashed("+49301234567"), "DE")
    assert rows["R001"][:3] == anna  # Germany, "+49 30 1234567"
    assert rows["R002"][:3] == anna  # DE, "030-1234567"
    assert rows["R003"][:3] == anna  # Deutschland, "(030) 1234567"
    assert rows["R004"][:3] == (None, hashed("+49301234567"), None)  # "004930 1234567"
    assert rows["R005"][:3] == (hashed("ben@example.org"), hashed("+431715550001"), "AT")
    assert rows["R009"][:3] == (hashed("dave@example.com"), hashed("+12125550100"), "US")
    assert rows["R007"][:3] == (None, None, None)  # Narnia is no country
    assert rows["R010"][:3] == (None, None, "GB")  # "not-an-email" is not an e-mail
    assert rows["R001"][3:] == ("female", "organic")  # "F", "Organic "
    assert rows["R002"][3:] == ("female", "paid_search")  # "female", "Paid Search"


def test_no_personal_value_leaves_the_raw_schema(query: Query) -> None:
    """Names, e-mails and phones of the raw file appear in no staging, intermediate or mart table."""
    personal = sorted(
        {
            str(value).strip()
            for row in query("select full_name, email, phone from raw.customers")
            for value in row
            if value is not None and str(value).strip()
        }
    )
    assert len(personal) > 10
    values = ", ".join("('" + v.replace("'", "''") + "')" for v in personal)
    text_columns = query(
        "select table_schema, table_name, column_name from information_schema.columns "
        "where table_schema <> 'raw' and data_type = 'VARCHAR'"
    )
    assert text_columns
    for schema, table, column in text_columns:
        leaked = query(
            f'select distinct "{column}" from "{schema}"."{table}" '
            f'where trim("{column}") in (select v from (values {values}) as personal(v))'
        )
        assert leaked == [], f"{schema}.{table}.{column} holds personal values"


def test_customer_attributes_come_from_the_latest_record_that_has_them(query: Query) -> None:
    columns = [r[0] for r in query("select column_name from (describe marts.customers)")]
    assert not {"full_name", "email", "phone", "customer_record_id"} & set(columns)
    (anna,) = query(
        "select country_code, acquisition_channel, birth_year, gender, record_count, "
        "signed_up_at, first_subscription_at, churned_at "
        "from marts.customers where customer_id = 'C-R001'"
    )
    # R004 (latest) has no country or channel, R003 has DE only, R002 has the rest.
    assert anna == (
        "DE",
        "paid_search",
        1985,
        "female",
        4,
        dt.datetime(2025, 1, 2, 9),
        dt.datetime(2025, 1, 5),
        None,
    )
    churned = dict(query("select customer_id, churned_at from marts.customers"))
    assert churned["C-R005"] == dt.datetime(2025, 5, 20)
    assert churned["C-R010"] == dt.datetime(2025, 8, 20)
    assert churned["C-R006"] is None


def test_rejected_rows_are_listed_with_their_reason(query: Query) -> None:
    rejected = set(
        query("select table_name, record_key, rejection_reason from intermediate.int_rejected_rows")
    )
    assert rejected == {
        ("customers", "R008", "future_dated"),
        ("events", "E007", "exact_duplicate"),
        ("events", "E013", "future_dated"),
        ("events", "E016", "unknown_event_type"),
        ("orders", "O004", "negative_completed_amount"),
        ("orders", "O005", "future_dated"),
        ("subscriptions", "S005", "ends_before_start"),
        ("subscriptions", "S007", "unknown_customer_record"),
        ("support_tickets", "T005", "resolved_before_opened"),
        ("consents", "K004", "unknown_channel"),
        ("campaigns", "X002", "exact_duplicate"),
        ("campaigns", "X003", "unknown_arm"),
        ("campaigns", "X004", "future_dated"),
        ("campaigns", "X005", "unknown_customer_record"),
        ("contacts", "M003", "unknown_channel"),
        ("contacts", "M004", "future_dated"),
        ("contacts", "M005", "unknown_customer_record"),
    }
    # The exact duplicate keeps one copy; the other dropped rows are gone from the marts.
    assert query("select count(*) from marts.events where event_id = 'E007'") == [(1,)]
    assert query("select count(*) from marts.events where event_id in ('E013', 'E016')") == [(0,)]
    assert query("select count(*) from marts.orders where order_id in ('O004', 'O005')") == [(0,)]
    # " LOGIN " is a login after standardisation.
    assert query("select event_type from marts.events where event_id = 'E015'") == [("login",)]


def test_as_of_grid_runs_from_warmup_to_month_after_snapshot(query: Query) -> None:
    grid = query(
        "select as_of_date, snapshot_date, label_available "
        "from intermediate.int_as_of_dates order by as_of_date"
    )
    # First start 2025-01-05 + 3 months -> 2025-05-01; last valid event 2025-10-15 -> 2025-11-01.
    assert [g[0] for g in grid] == [dt.date(2025, m, 1) for m in range(5, 12)]
    assert {g[1] for g in grid} == {dt.date(2025, 10, 15)}
    # 90-day window observed up to 2025-10-16: only as-of dates up to 2025-07-01.
    assert [g[2] for g in grid] == [True, True, True, False, False, False, False]


def test_feature_columns_are_the_ml_contract(query: Query) -> None:
    columns = [r[0] for r in query("select column_name from (describe marts.customer_features)")]
    assert tuple(columns) == KEY_COLUMNS + CHURN_FEATURES
    label_columns = [r[0] for r in query("select column_name from (describe marts.churn_labels)")]
    assert label_columns[:3] == [*KEY_COLUMNS, LABEL_COLUMN]


# Where Python names a mart: ``marts.<name>`` in SQL and docstrings, ``AssetKey(["marts", "<name>"])``.
_MART_REFERENCE = re.compile(r'\bmarts\.([a-z_]+)|\["marts",\s*"([a-z_]+)"\]')
# The contract types (names both adapters accept) and the DuckDB type each gives.
CONTRACT_TYPES = {
    "text": "VARCHAR",
    "integer": "INTEGER",
    "bigint": "BIGINT",
    "double precision": "DOUBLE",
    "boolean": "BOOLEAN",
    "date": "DATE",
    "timestamp": "TIMESTAMP",
}


def _marts_read_by_python() -> set[str]:
    names = set()
    for folder in ("ml", "orchestration", "expectations"):
        for path in (REPO_ROOT / folder).rglob("*.py"):
            for match in _MART_REFERENCE.finditer(path.read_text(encoding="utf-8")):
                names.add(match.group(1) or match.group(2))
    return names


def test_every_mart_python_reads_has_an_enforced_contract(warehouse: Path, query: Query) -> None:
    read = _marts_read_by_python()
    # The scan finds the readers it is meant to find (a broken pattern would pass vacuously).
    assert {"customer_features", "churn_labels", "customer_identity_map", "orders"} <= read
    manifest = json.loads((warehouse.parent / "target" / "manifest.json").read_text())
    marts = {
        node["name"]: node
        for node in manifest["nodes"].values()
        if node["resource_type"] == "model" and node["schema"] == "marts"
    }
    for name in sorted(read):
        node = marts[name]
        assert node["config"]["contract"]["enforced"], f"marts.{name} has no enforced contract"
        declared = [(c["name"], c["data_type"]) for c in node["columns"].values()]
        built = [
            r[:2] for r in query(f"select column_name, column_type from (describe marts.{name})")
        ]
        # Every column in table order with a type both adapters accept, the type DuckDB built.
        assert [(c, CONTRACT_TYPES.get(str(t))) for c, t in declared] == built, name


def test_features_of_merged_customer_match_hand_computation(query: Query) -> None:
    columns = ", ".join(CHURN_FEATURES)
    (row,) = query(
        f"select {columns} from marts.customer_features "
        "where customer_id = 'C-R001' and as_of_date = date '2025-06-01'"
    )
    features = dict(zip(CHURN_FEATURES, row, strict=True))
    assert features == {
        "plan": "premium",  # S002 started 2025-04-10 replaced S001
        "contract_type": "month-to-month",
        "acquisition_channel": "paid_search",
        "country_code": "DE",
        "tenure_days": 147,  # 2025-01-05 -> 2025-06-01
        "monthly_price": 30.0,
        "price_change_90d": 10.0,  # S001 (20.0) was active on 2025-03-03
        "plan_changes_365d": 1,  # S001 ended by plan_change on 2025-04-10
        "downgrades_90d": 0,  # that change was an upgrade (20.0 -> 30.0)
        "months_to_renewal": None,  # month-to-month
        "logins_30d": 2,  # E001 (05-31 23:00), E002 (05-02 00:00); E004 at as_of is excluded
        "logins_31_60d": 1,  # E003 (05-01); E010 (04-01) is older than 60 days
        "login_trend": 1.5,
        "days_since_last_login": 1,
        "feature_uses_30d": 2,
        "email_opens_30d": 1,  # E007 once, its exact duplicate dropped
        "email_clicks_30d": 1,
        "pricing_page_visits_30d": 0,  # E009 is 52 days old
        "tickets_30d": 3,  # T001, T003, T004
        "tickets_90d": 4,  # + T002
        "open_tickets": 2,  # T003 never resolved, T004 resolved after as_of
        "avg_satisfaction_90d": 3.0,  # T001 (4) and T002 (2)
        "orders_90d": 2,  # O001, O003; O002 is a refund; O006 is at as_of
        "order_value_90d": 130.0,  # 50 - 20 + 100
        "days_since_last_order": 22,  # O001 on 2025-05-10
    }


def test_population_is_customers_with_a_running_subscription(query: Query) -> None:
    rows = query("select customer_id, as_of_date from marts.customer_features")
    dates: dict[str, list[dt.date]] = {}
    for customer_id, as_of_date in rows:
        dates.setdefault(customer_id, []).append(as_of_date)
    months = {c: sorted(d.month for d in ds) for c, ds in dates.items()}
    assert months == {
        "C-R001": [5, 6, 7, 8, 9, 10, 11],
        "C-R005": [5],  # cancelled 2025-05-20
        "C-R006": [5, 6, 7, 8, 9, 10, 11],
        "C-R007": [6, 7, 8, 9, 10, 11],  # started 2025-05-15
        "C-R009": [5, 6, 7, 8, 9, 10, 11],
        "C-R010": [5, 6, 7, 8],  # cancelled 2025-08-20
    }
    label_keys = query("select customer_id, as_of_date from marts.churn_labels")
    assert sorted(label_keys) == sorted(rows)


def test_churn_labels_use_the_90_days_after_as_of(query: Query) -> None:
    labels = {
        (c, d.month): (y, a)
        for c, d, y, a in query(
            "select customer_id, as_of_date, churned, label_available from marts.churn_labels"
        )
    }
    assert labels[("C-R005", 5)] == (True, True)  # cancelled 19 days later
    assert labels[("C-R010", 5)] == (False, True)  # 2025-08-20 is 111 days later
    assert labels[("C-R010", 6)] == (True, True)
    assert labels[("C-R010", 8)] == (True, False)  # churn seen, window not yet closed
    assert labels[("C-R001", 6)] == (False, True)
    assert sum(y for y, _ in labels.values()) == 4


LEAKAGE_AS_OF = dt.date(2025, 6, 1)

# Data dated on or after 2025-06-01 only: new events, tickets and orders, a ticket resolved
# differently, subscriptions that now end (and so churn) after that date.
LATE_CHANGES = (
    "insert into raw.events values "
    "('L001', 'R001', 'login', '2025-06-01 00:00:00'), "
    "('L002', 'R002', 'login', '2025-06-15 08:00:00'), "
    "('L003', 'R006', 'pricing_page_visit', '2025-06-01 00:00:00'), "
    "('L004', 'R009', 'feature_use', '2025-07-20 10:00:00')",
    "insert into raw.support_tickets values "
    "('L101', 'R001', '2025-06-01 00:00:00', 'billing', 'high', null, null), "
    "('L102', 'R006', '2025-06-20 00:00:00', 'technical', 'low', '2025-06-21 00:00:00', 1)",
    "update raw.support_tickets set resolved_at = '2025-06-01 00:00:00', satisfaction_score = 5 "
    "where ticket_id = 'T003'",
    "update raw.support_tickets set resolved_at = null where ticket_id = 'T004'",
    "insert into raw.orders values "
    "('L201', 'R002', '2025-06-01 00:00:00', 500.0, 'service', 'completed'), "
    "('L202', 'R009', '2025-06-30 00:00:00', 75.0, 'service', 'completed')",
    "update raw.subscriptions set ended_at = '2025-06-15 00:00:00', end_reason = 'cancelled' "
    "where subscription_id = 'S004'",
    "update raw.subscriptions set ended_at = '2025-06-01 00:00:00', end_reason = 'cancelled' "
    "where subscription_id = 'S006'",
    "update raw.subscriptions set ended_at = '2025-09-01 00:00:00', end_reason = 'cancelled' "
    "where subscription_id = 'S009'",
)


def _features(con: duckdb.DuckDBPyConnection, as_of_filter: str) -> list[tuple]:
    return con.execute(
        f"select * from marts.customer_features where {as_of_filter} order by customer_id, as_of_date"
    ).fetchall()


def test_data_on_or_after_as_of_date_changes_no_feature(
    warehouse: Path,
    tmp_path: Path,
    load_raw: Callable[[duckdb.DuckDBPyConnection], None],
    dbt: Callable[..., Build],
) -> None:
    changed_warehouse = tmp_path / "warehouse.duckdb"
    with duckdb.connect(str(changed_warehouse)) as con:
        load_raw(con)
        for statement in LATE_CHANGES:
            con.execute(statement)
    build = dbt("build", changed_warehouse, tmp_path)
    assert build.returncode == 0 and not build.failures(), build.output[-5000:]

    upto = f"as_of_date <= date '{LEAKAGE_AS_OF}'"
    after = f"as_of_date > date '{LEAKAGE_AS_OF}'"
    with (
        duckdb.connect(str(warehouse), read_only=True) as before_con,
        duckdb.connect(str(changed_warehouse), read_only=True) as after_con,
    ):
        assert _features(after_con, upto) == _features(before_con, upto)
        # The changes are real: later rows and the labels at the as-of date do move.
        assert _features(after_con, after) != _features(before_con, after)
        label_sql = (
            "select customer_id, churned from marts.churn_labels "
            f"where as_of_date = date '{LEAKAGE_AS_OF}' order by customer_id"
        )
        assert after_con.execute(label_sql).fetchall() != before_con.execute(label_sql).fetchall()


def test_campaign_sends_resolve_customers_and_their_feature_date(query: Query) -> None:
    rows = query(
        "select send_id, customer_id, arm, is_treated, outcome, as_of_date, campaign_type "
        "from marts.campaign_sends order by send_id"
    )
    assert rows == [
        ("X001", "C-R001", "treatment", True, 1, dt.date(2025, 3, 1), "retention_offer"),
        ("X002", "C-R005", "control", False, 0, dt.date(2025, 3, 1), "retention_offer"),
        ("X006", "C-R009", "treatment", True, None, dt.date(2025, 6, 1), "retention_offer"),
    ]


def test_product_candidates_leave_out_categories_bought_before(query: Query) -> None:
    bought_before = query(
        """
        select count(*) from marts.product_purchase_labels p
        join marts.orders o
          on o.customer_id = p.customer_id and o.product_category = p.product_category
         and o.status = 'completed' and o.amount > 0 and o.ordered_at < p.as_of_date
        """
    )
    assert bought_before == [(0,)]
    categories = {
        r[0] for r in query("select distinct product_category from marts.product_purchase_labels")
    }
    ordered = {
        r[0]
        for r in query(
            "select distinct product_category from marts.orders "
            "where status = 'completed' and amount > 0"
        )
    }
    assert categories == ordered


def test_contacts_resolve_customers_and_standardise(query: Query) -> None:
    assert query(
        "select contact_id, customer_id, channel, purpose from marts.contacts order by 1"
    ) == [
        ("M001", "C-R001", "email", "newsletter"),
        ("M002", "C-R005", "phone", "service_call"),
    ]


def test_consent_in_force_is_the_latest_choice(query: Query) -> None:
    # R001 and R002 are one person: the withdrawal of 2025-05-01 is newer than the grant.
    assert query(
        "select customer_id, channel, granted from marts.consent_in_force order by 1, 2"
    ) == [
        ("C-R001", "email", False),
        ("C-R005", "sms", True),
    ]
