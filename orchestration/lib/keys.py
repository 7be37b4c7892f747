"""The asset key scheme, so a reader can guess where anything is made.

* ``source/crm_files``: the raw files (generated or a folder of exports)
* ``raw/<table>``: a contract table loaded into DuckDB (``raw/leads`` for the lead export)
* ``staging/...``, ``intermediate/...``, ``marts/<model>``: the dbt models
* ``governance/<step>``: erasure and the promotion decisions
* ``models/<name>``: a model trained, judged and registered in MLflow as ``<name>``
* ``scoring/<name>_buckets``: scores of one customer bucket (partitioned)
* ``serving/<table>``: a serving table (``ml.serving.tables``) in DuckDB and Parquet
* ``monitoring/<model>_drift``: drift reports
* ``monitoring/<model>_performance``: estimated and realized performance per scoring run
* ``monitoring/<model>_score_stability``: how far the scores moved against the previous run
* ``publish/postgres``: the serving tables in PostgreSQL

Domains depend on each other's assets through these keys, never by importing each other.
"""

import dagster as dg

CRM_FILES = dg.AssetKey(["source", "crm_files"])
ERASURE = dg.AssetKey(["governance", "erasure"])
CUSTOMER_FEATURES = dg.AssetKey(["marts", "customer_features"])
CHURN_DRIFT = dg.AssetKey(["monitoring", "churn_drift"])
CHURN_PERFORMANCE = dg.AssetKey(["monitoring", "churn_performance"])
CHURN_STABILITY = dg.AssetKey(["monitoring", "churn_score_stability"])
LEAD_PERFORMANCE = dg.AssetKey(["monitoring", "lead_scoring_performance"])
LEAD_STABILITY = dg.AssetKey(["monitoring", "lead_scoring_score_stability"])


def raw(table: str) -> dg.AssetKey:
    return dg.AssetKey(["raw", table])


def mart(name: str) -> dg.AssetKey:
    return dg.AssetKey(["marts", name])


def model(name: str) -> dg.AssetKey:
    return dg.AssetKey(["models", name])


def serving(table: str) -> dg.AssetKey:
    return dg.AssetKey(["serving", table])
