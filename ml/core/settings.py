"""The one typed settings object of CRM Signals, read from ``CRM_*`` environment variables.

It is read once by the entry point (Dagster resources, the CLI, tests) and passed down; nothing in
``ml/`` reads the environment on its own and nothing happens at import time.
"""

from __future__ import annotations

import os
from datetime import date
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from ml.core.postgres import PostgresTarget
from ml.core.privacy import pii_salt

SYNTHETIC = "synthetic"
_REPOSITORY = Path(__file__).resolve().parents[2]


class PathEscapeError(ValueError):
    """A file name built from a table name, a setting or data leads outside its folder."""


def path_within(folder: Path, *parts: str) -> Path:
    """Return ``folder / parts`` as an absolute path, refusing one that leaves ``folder``.

    Use it wherever a file name is built from something that is not a literal: a table or
    model name, a setting, a run id. ``'../x'``, an absolute part or ``'a/../../x'`` would
    otherwise write (or delete) outside the state folder. The check is on the normalised path,
    not on symlinks: a folder the operator links elsewhere on purpose keeps working.

    Args:
        folder: The folder the result must stay in (for example ``Settings.home``).
        parts: Path parts below it.

    Raises:
        PathEscapeError: The result is ``folder`` itself or lies outside it.
    """
    root = Path(os.path.abspath(folder))
    candidate = Path(os.path.abspath(root.joinpath(*parts)))
    if candidate == root or not candidate.is_relative_to(root):
        raise PathEscapeError(
            f"{'/'.join(str(p) for p in parts)!r} leads outside {root} (to {candidate}); "
            "a name or setting must not contain '..' or an absolute path"
        )
    return candidate


class Settings(BaseSettings):
    """Project settings. Every field can be set with ``CRM_<FIELD>`` (for example ``CRM_HOME``)."""

    model_config = SettingsConfigDict(env_prefix="CRM_", frozen=True, extra="ignore")

    home: Path = Field(
        default=Path("var"),
        description="State folder: warehouse, MLflow, reports, exports, Dagster home, quarantine.",
    )
    source: str = Field(
        default=SYNTHETIC,
        description="'synthetic' for the embedded generator, or a folder of CSV/Parquet files "
        "that follow docs/data-contract.md.",
    )
    synthetic_customers: int = Field(default=20_000, ge=100, description="Synthetic persons.")
    synthetic_seed: int = Field(default=42, description="Seed of the synthetic generator.")
    synthetic_event_share: float = Field(
        default=1.0,
        gt=0,
        le=1,
        description="Share of the simulated activity events the generator writes (1.0: all, "
        "about 188 per person; the scale benchmark uses about 50 per person).",
    )
    synthetic_covariate_shift: float = Field(
        default=0.0,
        ge=0,
        le=1,
        description="Share of the last nine months' sign-ups the generator moves to a monthly "
        "basic plan with lower engagement (a planted covariate shift; 0: none).",
    )
    synthetic_start_date: date = Field(default=date(2024, 10, 1))
    synthetic_end_date: date = Field(default=date(2026, 9, 30))
    threads: int = Field(default=2, ge=1, description="Threads for DuckDB and CatBoost.")
    duckdb_memory_limit: str = Field(default="6GB", description="DuckDB memory_limit.")
    shap_mode: Literal["regular", "approximate", "exact"] = Field(
        default="regular",
        description="How CatBoost computes the SHAP values of the churn drivers: 'regular' "
        "(TreeSHAP), 'approximate' or 'exact' (benchmarks/RESULTS.md, 'Approximate SHAP').",
    )
    full_refresh: bool = Field(
        default=False,
        description="Reload every source file into raw, whatever the manifest of loaded files "
        "says (ingest otherwise reads only new files; docs/operations.md). "
        "`crm-signals run --full-refresh` sets it.",
    )
    mapping: Path | None = Field(
        default=None,
        description="The source folder's mapping: how each export becomes a contract table "
        "(docs/bring-your-own-data.md). Default: <source>/mapping.yaml when it exists (without "
        "one, files carry the contract's names); for the synthetic CRM, "
        "examples/synthetic/mapping.yaml.",
    )
    capacity_top_k: int = Field(
        default=500,
        ge=1,
        description="Customers the team can act on per cycle; precision and lift are reported "
        "at this capacity.",
    )
    lead_capacity_top_k: int = Field(
        default=500,
        ge=1,
        description="Open leads sales can work per cycle: the lead model's estimated and "
        "realized precision are reported among this many highest scores (its own setting: "
        "sales capacity is not the retention team's).",
    )
    training_max_rows: int = Field(
        default=1_500_000,
        ge=0,
        description="Most labelled rows churn training reads (its training, calibration and "
        "validation as-of dates). Above it, training reads a sample of whole customers, the "
        "same on every run (ml.models.churn.data.SAMPLE_RULE), recorded in MLflow and the "
        "asset's metadata. 0: no cap, every row. Past about 1M rows more rows buy no accuracy "
        "(1M customers, 4.1M training rows: validation AUC 0.8016 from 0.4M of them, 0.8019 "
        "from 1.2M, 0.8021 from all) and cost CatBoost about 70 s per million rows on 2 cores "
        "(docs/deploy/README.md, 'Apache Spark').",
    )
    fairness_min_selection_rate_ratio: float = Field(
        default=0.8,
        gt=0,
        le=1,
        description="Fairness gate: the lowest selection rate of a protected group divided by "
        "the highest must reach this (0.8 is the four-fifths rule), or the model stays a "
        "challenger.",
    )
    contact_caps: dict[str, tuple[int, int]] = Field(
        default={"email": (2, 30), "phone": (1, 30), "sms": (2, 30)},
        description="Frequency caps per channel: (most contacts, in this many days), as JSON, "
        'e.g. CRM_CONTACT_CAPS=\'{"email": [2, 30], "phone": [1, 30]}\'.',
    )
    pii_salt: SecretStr | None = Field(
        default=None,
        description="Secret salt of the hashes that replace e-mails, phones and erased record "
        "ids (at least 16 characters). Default: generated once into <home>/secrets/pii_salt.",
    )
    postgres_url: SecretStr | None = Field(
        default=None,
        description="PostgreSQL to publish the serving tables to, as a libpq URL "
        "(postgresql://user:password@host:5432/db). Unset: nothing is published to PostgreSQL.",
    )
    postgres_schema: str = Field(
        default="crm_signals", description="PostgreSQL schema of the published tables."
    )
    mlflow_uri: str | None = Field(
        default=None,
        description="MLflow tracking and registry URI, e.g. http://mlflow:5000 for a shared "
        "server. Default: sqlite:///<home>/mlflow.db.",
    )
    public_data: Path | None = Field(
        default=None, description="Folder of the public data sets (../shared/data)."
    )
    scoring_cron: str = Field(default="0 6 * * *", description="Daily scoring schedule.")
    retraining_cron: str = Field(default="0 4 * * 1", description="Weekly retraining schedule.")
    drift_share_threshold: float = Field(
        default=0.3, gt=0, le=1, description="Share of drifted features that triggers retraining."
    )
    retrain_estimated_auc_margin: float = Field(
        default=0.03,
        gt=0,
        le=1,
        description="Retrain when the ROC AUC estimated without labels falls this far below "
        "the AUC the champion was promoted with.",
    )
    retrain_realized_auc_margin: float = Field(
        default=0.03,
        gt=0,
        le=1,
        description="Retrain when the realized ROC AUC of a run whose labels have landed falls "
        "this far below the AUC the champion was promoted with.",
    )
    stability_psi_threshold: float = Field(
        default=0.2, gt=0, description="Score PSI between two runs that raises an alert."
    )
    stability_band_changed_threshold: float = Field(
        default=0.15,
        gt=0,
        le=1,
        description="Share of customers whose risk band changed between two runs that raises "
        "an alert.",
    )
    stability_action_changed_threshold: float = Field(
        default=0.25,
        gt=0,
        le=1,
        description="Share of customers whose next best action changed between two runs that "
        "raises an alert.",
    )
    # The defaults are ml.modelling.reasons.ReasonRules' (core may not import modelling; a test
    # holds them equal).
    reason_max_factors: int = Field(
        default=3, ge=1, description="Most factors a served reason cites (every model's reasons)."
    )
    reason_middle: float = Field(
        default=0.25,
        ge=0,
        description="Half-width, in log-odds, of the band around the base rate where a score "
        "counts as middle and its reason cites what raises and what lowers it.",
    )
    reason_min_contribution: float = Field(
        default=0.05,
        ge=0,
        description="Smallest |contribution| in log-odds a factor needs to be cited in a reason.",
    )
    reason_min_share: float = Field(
        default=0.1,
        ge=0,
        lt=1,
        description="Smallest share of the row's total |contribution| a factor needs to be cited "
        "in a reason.",
    )
    engine: Literal["duckdb", "spark"] = Field(
        default="duckdb",
        description="Engine of the dbt build: 'duckdb' (one machine) or 'spark' (dbt-spark on a "
        "local PySpark, docs/spark.md): the raw tables ingest wrote go to Spark as Parquet, Spark "
        "builds every layer, and its marts, exported as Parquet, are what training and scoring "
        "read (views of the warehouse's marts schema).",
    )
    retrain_cooldown_hours: float = Field(
        default=24.0, ge=0, description="At most one drift-triggered retraining per this period."
    )
    api_key_hashes: SecretStr | None = Field(
        default=None,
        description="API keys of the scoring service, stored hashed: comma-separated "
        "'<name>:<sha256 hex of the key>' (`crm-signals serve --hash-key` prints one). Unset and "
        "no api_keys_file: the service starts on loopback only, without keys.",
    )
    api_keys_file: Path | None = Field(
        default=None,
        description="A secret file of the service's API key hashes, one '<name>:<sha256 hex>' "
        "per line (read as well as api_key_hashes).",
    )
    serve_rate_limit: int = Field(
        default=3000,
        ge=1,
        description="Requests per minute one API key may make to one service process.",
    )
    serve_max_body_bytes: int = Field(
        default=2_000_000, ge=1_000, description="Largest request body the service reads."
    )
    serve_max_batch: int = Field(
        default=1000, ge=1, description="Most records one batch request of the service scores."
    )
    serve_champion_ttl_seconds: float = Field(
        default=5.0,
        ge=0,
        description="How long the service trusts its answer to 'which version is champion' "
        "before asking the registry again (a new champion is served within this time).",
    )

    @field_validator("home", mode="after")
    @classmethod
    def _absolute_home(cls, value: Path) -> Path:
        # dbt runs in its own working directory, so every path handed down must be absolute.
        return value.expanduser().resolve()

    @property
    def is_synthetic(self) -> bool:
        return self.source == SYNTHETIC

    @property
    def warehouse_path(self) -> Path:
        return self.home / "warehouse.duckdb"

    @property
    def spark_home(self) -> Path:
        """Spark's folder: warehouse, metastore, the raw and marts Parquet it reads and writes."""
        return self.home / "spark"

    @property
    def mlflow_tracking_uri(self) -> str:
        return self.mlflow_uri or f"sqlite:///{self.home / 'mlflow.db'}"

    @property
    def mlflow_artifacts_dir(self) -> Path:
        return self.home / "mlartifacts"

    @property
    def reports_dir(self) -> Path:
        return self.home / "reports"

    @property
    def exports_dir(self) -> Path:
        return self.home / "exports"

    @property
    def quarantine_dir(self) -> Path:
        return self.home / "quarantine"

    @property
    def logs_dir(self) -> Path:
        return self.home / "logs"

    @property
    def dagster_home(self) -> Path:
        return self.home / "dagster"

    @property
    def dbt_target_dir(self) -> Path:
        """dbt's target folder for runs on this state folder: artifacts, logs, parse cache."""
        return self.home / "dbt" / "target"

    @property
    def synthetic_dir(self) -> Path:
        """Where the generator writes the raw contract files the pipeline reads."""
        return self.home / "synthetic" / "raw"

    @property
    def truth_dir(self) -> Path:
        """Where the generator writes the hidden truth; the pipeline never reads it."""
        return self.home / "synthetic" / "truth"

    def state_path(self, *parts: str) -> Path:
        """A path under ``home``; raises :class:`PathEscapeError` if ``parts`` leave it."""
        return path_within(self.home, *parts)

    def salt(self) -> str:
        """The PII salt (``ml.core.privacy``): ``CRM_PII_SALT``, else the generated file."""
        configured = self.pii_salt.get_secret_value() if self.pii_salt else None
        return pii_salt(self.home, configured)

    def postgres_target(self) -> PostgresTarget | None:
        """Where to publish (``ml.serving.publishing``), or None when ``CRM_POSTGRES_URL`` is unset."""
        if self.postgres_url is None:
            return None
        return PostgresTarget(self.postgres_url.get_secret_value(), self.postgres_schema)

    @property
    def bucket_scores_dir(self) -> Path:
        """Churn scores of each customer bucket (``ml.serving.partitioning``), before publishing."""
        return self.home / "scoring" / "churn_buckets"

    @property
    def scratch_dir(self) -> Path:
        """Files in transit (e.g. the CSV of a PostgreSQL publish); inside the home folder."""
        return self.home / "tmp"

    @property
    def erasure_dir(self) -> Path:
        """Tombstones and the erasure audit log: outside the warehouse, which may be rebuilt."""
        return self.home / "erasure"

    @property
    def mapping_path(self) -> Path | None:
        """The mapping to use (see ``mapping``), or None: every file has the contract's names."""
        if self.mapping is not None:
            return self.mapping.expanduser().resolve()
        if self.is_synthetic:
            return _REPOSITORY / "examples" / "synthetic" / "mapping.yaml"
        default = self.source_dir / "mapping.yaml"
        return default if default.is_file() else None

    @property
    def source_dir(self) -> Path:
        """The folder of raw contract files to ingest."""
        return self.synthetic_dir if self.is_synthetic else Path(self.source).expanduser().resolve()
