"""Churn scoring as one Dagster run whose bucket steps run on Celery workers.

The partitioned asset scoring/churn_buckets fans out as one run per bucket; this job fans out
inside one run: a step per bucket (a dynamic output), each a Celery task that any worker
listening on the queue may take, then one step publishes the buckets as
serving/customer_scores. The bucket and publish steps are the asset's own functions, so both
paths give the same table. Broker, result backend and the settings that make a killed worker's
bucket run again are in ``docs/deploy/celery.yaml``, given to the workers and to the run
(docs/deploy/README.md, "Celery workers").
"""

import os
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass

import dagster as dg
from dagster_celery import celery_executor

from ml.data.features import CustomerBucket
from ml.models.churn import pipeline as churn
from ml.serving.partitioning import bucket_keys
from orchestration.defs.churn.assets import BUCKET_RETRY, publish_buckets, score_bucket
from orchestration.lib import keys
from orchestration.lib.sources import missing_inputs
from orchestration.resources import CrmSettings

# Test-only: seconds a bucket step waits before scoring, so a test can kill its worker while
# the step runs (tests/distributed/test_celery_scoring.py). It changes no result.
BUCKET_DELAY_VARIABLE = "CRM_TEST_BUCKET_DELAY_SECONDS"


@dataclass(frozen=True)
class ScoredBucket:
    """A bucket scored into its file, and the process that scored it (which worker ran it)."""

    bucket: int
    host: str
    pid: int


@dg.op(out=dg.DynamicOut(int))
def churn_bucket_keys(crm: CrmSettings) -> Iterator[dg.DynamicOutput[int]]:
    """One output per customer bucket, so each bucket is a step of its own."""
    if (reason := missing_inputs(crm.get(), churn.NEEDS)) is not None:
        raise dg.Failure(f"churn bucket scoring needs the CRM's event tables: {reason}")
    for key in bucket_keys():
        yield dg.DynamicOutput(int(key), mapping_key=key)


@dg.op(retry_policy=BUCKET_RETRY)
def churn_bucket_scores(
    context: dg.OpExecutionContext, crm: CrmSettings, bucket: int
) -> ScoredBucket:
    """Churn scores of one customer bucket into its Parquet file (read-only on the warehouse)."""
    time.sleep(float(os.environ.get(BUCKET_DELAY_VARIABLE, "0")))
    metadata = score_bucket(crm.get(), CustomerBucket(bucket))
    scored = ScoredBucket(bucket=bucket, host=socket.gethostname(), pid=os.getpid())
    context.add_output_metadata({**metadata, "host": scored.host, "pid": scored.pid})
    return scored


@dg.op
def publish_churn_bucket_scores(
    context: dg.OpExecutionContext, crm: CrmSettings, scored: list[ScoredBucket]
) -> None:
    """Publish the buckets as serving/customer_scores, once they form one complete scoring."""
    metadata = publish_buckets(crm.get())
    workers = sorted({f"{s.host}:{s.pid}" for s in scored})
    context.log_event(
        dg.AssetMaterialization(
            asset_key=keys.serving("customer_scores"),
            metadata={**metadata, "bucket_workers": ", ".join(workers)},
        )
    )


@dg.job(
    executor_def=celery_executor,
    # It publishes serving.customer_scores: the one-writer run queue of docs/deploy/dagster.yaml.
    tags={"crm/duckdb": "write"},
)
def churn_celery_scoring_job() -> None:
    """Churn scores of every bucket, a step per bucket on Celery workers, then published
    together (docs/deploy/README.md, "Celery workers")."""
    publish_churn_bucket_scores(churn_bucket_keys().map(churn_bucket_scores).collect())
