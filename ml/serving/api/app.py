"""The scoring service: FastAPI routes over :mod:`ml.serving.api.scoring`.

``create_app`` builds one application from the settings (``CRM_*``); ``crm-signals serve`` runs it
under uvicorn. Routes under ``/v1`` need an API key (``X-API-Key``) when keys are configured, and
count against the caller's rate limit; ``/health``, ``/ready``, ``/metrics`` and the OpenAPI docs
(``/docs``) do not. Request bodies above ``serve_max_body_bytes`` are refused before they are
read. Logs name the route template, status, time, caller and model version: never a payload
value, an id or a key.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Annotated, Any

import pandas as pd
from fastapi import Body, Depends, FastAPI, Header, Path, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from pydantic import BaseModel

from ml.core.settings import Settings
from ml.data.sources import load_mappings
from ml.modelling.reasons import ReasonRules, reason_rules
from ml.modelling.registry import Registry
from ml.models.churn.pipeline import MODEL_NAME as CHURN_MODEL
from ml.models.lead_scoring.pipeline import MODEL_NAME as LEAD_MODEL
from ml.models.next_best_action.contact_policy import FrequencyCap, caps_from_settings
from ml.models.next_best_action.model import ActionSettings
from ml.serving.api import schemas
from ml.serving.api.scoring import (
    LeadScorer,
    NotFoundError,
    PayloadError,
    PublishedScores,
    Scalar,
    decide_action,
    drivers_of,
    score_customers,
)
from ml.serving.api.security import ANONYMOUS, ApiKeys, RateLimiter
from ml.serving.api.state import Champion, Champions, NotReadyError, Snapshots, WarehouseSnapshot

log = logging.getLogger("crm_signals.serving")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class Metrics:
    """Prometheus metrics of one app: requests, latency and errors per endpoint and model version."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        labels = ("endpoint", "method", "status", "model_version")
        self.requests = Counter(
            "crm_serving_requests", "Requests answered.", labels, registry=self.registry
        )
        self.errors = Counter(
            "crm_serving_errors",
            "Requests answered with a 4xx or 5xx.",
            labels,
            registry=self.registry,
        )
        self.latency = Histogram(
            "crm_serving_request_seconds",
            "Time to answer a request.",
            ("endpoint", "method", "model_version"),
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
            registry=self.registry,
        )

    def observe(
        self, endpoint: str, method: str, status: int, version: str, seconds: float
    ) -> None:
        self.requests.labels(endpoint, method, str(status), version).inc()
        if status >= 400:
            self.errors.labels(endpoint, method, str(status), version).inc()
        self.latency.labels(endpoint, method, version).observe(seconds)


class _TooLargeError(Exception):
    pass


def _json(status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(status_code=status, content=body, headers=headers)


class Guard:
    """ASGI middleware: the body size limit, and one log line and metric per request."""

    def __init__(self, app: ASGIApp, max_body: int, metrics: Metrics) -> None:
        self.app = app
        self.max_body = max_body
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500
        response_started = False

        async def sending(message: Message) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                status, response_started = int(message["status"]), True
            await send(message)

        received = 0

        async def receiving() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body:
                    raise _TooLargeError
            return message

        too_large = _json(
            413, {"detail": f"request body larger than {self.max_body} bytes", "errors": []}
        )
        length = dict(scope.get("headers") or []).get(b"content-length")
        try:
            if length is not None and length.isdigit() and int(length) > self.max_body:
                await too_large(scope, receive, sending)
            else:
                await self.app(scope, receiving, sending)
        except _TooLargeError:
            if not response_started:
                await too_large(scope, receive, sending)
        finally:
            route = scope.get("route")
            endpoint = getattr(route, "path", None) or "unmatched"
            version = (scope.get("state") or {}).get("model_version", "none")
            seconds = time.perf_counter() - started
            self.metrics.observe(endpoint, scope["method"], status, version, seconds)
            caller = (scope.get("state") or {}).get("caller", "-")
            log.info(
                "%s %s %d %.1fms caller=%s model=%s",
                scope["method"],
                endpoint,
                status,
                seconds * 1000,
                caller,
                version,
            )


@dataclass(eq=False)
class Service:
    """Everything the routes use, built once per process."""

    settings: Settings
    keys: ApiKeys
    limiter: RateLimiter
    champions: Champions
    snapshots: Snapshots
    leads: LeadScorer
    published: PublishedScores
    caps: tuple[FrequencyCap, ...]
    actions: ActionSettings
    metrics: Metrics
    rules: ReasonRules

    @classmethod
    def from_settings(cls, settings: Settings) -> Service:
        caps = caps_from_settings(settings.contact_caps)
        ttl = settings.serve_champion_ttl_seconds
        rules = reason_rules(settings)
        return cls(
            settings=settings,
            keys=ApiKeys.from_settings(settings),
            limiter=RateLimiter(settings.serve_rate_limit),
            champions=Champions(
                Registry(settings.mlflow_tracking_uri, settings.mlflow_artifacts_dir), ttl
            ),
            snapshots=Snapshots(settings, [c.period_days for c in caps], ttl),
            leads=LeadScorer(load_mappings(settings.mapping_path)["leads"], rules),
            published=PublishedScores(rules, settings.shap_mode),
            caps=caps,
            actions=ActionSettings(),
            metrics=Metrics(),
            rules=rules,
        )


def _answers(frame: pd.DataFrame, schema: type[BaseModel], drivers: str) -> list[dict[Any, Any]]:
    """The rows of a scored frame as answers of ``schema``, the JSON drivers parsed."""
    rows = frame[[f for f in schema.model_fields if f in frame.columns]].to_dict("records")
    for row in rows:  # the answer's rows, at most serve_max_batch
        row[drivers] = drivers_of(row[drivers])
    return rows


def _first_column(reason: str) -> str:
    """The column a contract reason names first (``"email_opens: 'x' cannot be read ..."``)."""
    return reason.split(":", 1)[0] if ":" in reason else "lead"


class _Refused(Exception):
    def __init__(self, status: int, detail: str, headers: dict[str, str]) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.headers = headers


def _caller(request: Request, x_api_key: Annotated[str | None, Header()] = None) -> str:
    """The caller's key name, after the key check and the rate limit."""
    service: Service = request.app.state.service
    name = service.keys.name_of(x_api_key) if service.keys.required else ANONYMOUS
    if name is None:
        raise _Refused(
            401, "missing or unknown API key (header X-API-Key)", {"WWW-Authenticate": "X-API-Key"}
        )
    request.state.caller = name
    wait = service.limiter.allow(name)
    if wait:
        raise _Refused(
            429, "rate limit reached for this API key", {"Retry-After": str(max(1, round(wait)))}
        )
    return name


Caller = Annotated[str, Depends(_caller)]
CustomerId = Annotated[str, Path(min_length=1, max_length=128)]


def create_app(settings: Settings | None = None) -> FastAPI:
    """The scoring service of ``settings`` (default: read from ``CRM_*``)."""
    service = Service.from_settings(settings or Settings())
    app = FastAPI(
        title="CRM Signals scoring service",
        version="1",
        description="Scores on request from the champions of the MLflow registry: leads, "
        "customers (with what-if), the next best action. docs/serving-api.md.",
    )
    app.state.service = service

    @app.exception_handler(_Refused)
    async def refused(_: Request, error: _Refused) -> JSONResponse:
        return _json(error.status, {"detail": error.detail, "errors": []}, error.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, error: RequestValidationError) -> JSONResponse:
        # Name the field and the rule; never echo the value sent.
        errors = [
            {"field": ".".join(str(p) for p in e["loc"][1:]) or "body", "message": e["msg"]}
            for e in error.errors()
        ]
        return _json(422, {"detail": "invalid request", "errors": errors})

    @app.exception_handler(PayloadError)
    async def bad_payload(_: Request, error: PayloadError) -> JSONResponse:
        return _json(
            422,
            {
                "detail": "invalid request",
                "errors": [{"field": error.field, "message": error.message}],
            },
        )

    @app.exception_handler(NotFoundError)
    async def not_found(_: Request, __: NotFoundError) -> JSONResponse:
        return _json(404, {"detail": "customer not found", "errors": []})

    @app.exception_handler(NotReadyError)
    async def not_ready(_: Request, error: NotReadyError) -> JSONResponse:
        return _json(503, {"detail": str(error), "errors": []})

    def leads_answer(request: Request, records: list[dict[str, Scalar]]) -> schemas.LeadBatchAnswer:
        if len(records) > service.settings.serve_max_batch:
            raise PayloadError(
                "leads", f"{len(records)} records; at most {service.settings.serve_max_batch}"
            )
        champion = service.champions.get(LEAD_MODEL)
        request.state.model_version = f"{champion.name}:{champion.version}"
        scored = service.leads.score(champion, records)
        rejected = scored.rejected.rename(columns={"record": "index"}).to_dict("records")
        return schemas.LeadBatchAnswer.model_validate(
            {
                "scores": _answers(scored.scores, schemas.LeadScore, "top_drivers"),
                "rejected": rejected,
            }
        )

    @app.post("/v1/leads/score", response_model=schemas.LeadScore, tags=["leads"])
    async def score_lead(
        request: Request,
        _: Caller,
        lead: Annotated[dict[str, Scalar], Body(description="One lead, export column names.")],
    ) -> schemas.LeadScore:
        """Score one lead given in the CRM export's own column names."""
        answer = leads_answer(request, [lead])
        if answer.rejected:
            reason = answer.rejected[0].reason
            raise PayloadError(f"lead.{_first_column(reason)}", reason)
        return answer.scores[0]

    @app.post("/v1/leads/score/batch", response_model=schemas.LeadBatchAnswer, tags=["leads"])
    async def score_leads_batch(
        request: Request, _: Caller, body: schemas.LeadBatchRequest
    ) -> schemas.LeadBatchAnswer:
        """Score up to ``serve_max_batch`` leads; records that break the contract are listed
        with the reason, the others scored."""
        return leads_answer(request, body.leads)

    def churn_scores(
        request: Request, ids: list[str], overrides: dict[str, Scalar] | None = None
    ) -> tuple[Champion, WarehouseSnapshot, pd.DataFrame]:
        """The churn champion, the snapshot it read and its scores of ``ids``."""
        champion = service.champions.get(CHURN_MODEL)
        request.state.model_version = f"{champion.name}:{champion.version}"
        snapshot = service.snapshots.current()
        scores = score_customers(
            champion,
            snapshot,
            ids,
            overrides,
            shap_mode=service.settings.shap_mode,
            published=service.published,
            rules=service.rules,
        )
        return champion, snapshot, scores

    def customers_answer(
        request: Request, ids: list[str], overrides: dict[str, Scalar] | None = None
    ) -> list[dict[Any, Any]]:
        if len(ids) > service.settings.serve_max_batch:
            raise PayloadError(
                "customer_ids", f"{len(ids)} ids; at most {service.settings.serve_max_batch}"
            )
        _, _, scores = churn_scores(request, ids, overrides)
        answers = _answers(scores, schemas.CustomerScore, "churn_top_drivers")
        return [{**answer, "overrides": dict(overrides or {})} for answer in answers]

    @app.get(
        "/v1/customers/{customer_id}/score",
        response_model=schemas.CustomerScore,
        tags=["customers"],
    )
    async def score_customer(
        request: Request, _: Caller, customer_id: CustomerId
    ) -> schemas.CustomerScore:
        """Churn score of a customer from the newest features."""
        return schemas.CustomerScore.model_validate(customers_answer(request, [customer_id])[0])

    @app.post(
        "/v1/customers/{customer_id}/what-if",
        response_model=schemas.CustomerScore,
        tags=["customers"],
    )
    async def what_if(
        request: Request, _: Caller, customer_id: CustomerId, body: schemas.WhatIfRequest
    ) -> schemas.CustomerScore:
        """Churn score of a customer with some feature values replaced."""
        answer = customers_answer(request, [customer_id], body.overrides)[0]
        return schemas.CustomerScore.model_validate(answer)

    @app.post(
        "/v1/customers/score/batch",
        response_model=schemas.CustomerBatchAnswer,
        tags=["customers"],
    )
    async def score_customers_batch(
        request: Request, _: Caller, body: schemas.CustomerBatchRequest
    ) -> schemas.CustomerBatchAnswer:
        """Churn scores of up to ``serve_max_batch`` customers."""
        ids = list(dict.fromkeys(body.customer_ids))
        return schemas.CustomerBatchAnswer.model_validate(
            {"scores": customers_answer(request, ids)}
        )

    @app.get(
        "/v1/customers/{customer_id}/next-best-action",
        response_model=schemas.NextBestAction,
        tags=["customers"],
    )
    async def next_best_action(
        request: Request, _: Caller, customer_id: CustomerId
    ) -> schemas.NextBestAction:
        """The next best action, with consent, do-not-contact and frequency caps applied now."""
        champion, snapshot, scores = churn_scores(request, [customer_id])
        action, blocked = decide_action(scores, snapshot, service.actions, service.caps)
        row = {
            k: (None if not isinstance(v, str) and pd.isna(v) else v)
            for k, v in action.iloc[0].to_dict().items()
        }
        row["blocked"] = blocked.rename(columns={"suppressed_action": "action"})[
            ["action", "channel", "expected_gain_eur", "reason"]
        ].to_dict("records")
        row |= {
            "churn_probability": float(scores["churn_probability"].iloc[0]),
            "model_name": champion.name,
            "model_version": champion.version,
        }
        return schemas.NextBestAction.model_validate(row)

    @app.get("/health", tags=["operations"])
    async def health() -> dict[str, str]:
        """The process answers."""
        return {"status": "ok"}

    @app.get("/ready", tags=["operations"])
    async def ready() -> JSONResponse:
        """Ready when both champions load and the warehouse snapshot is read."""
        checks: dict[str, str] = {}
        ok = True
        for name in (CHURN_MODEL, LEAD_MODEL):
            try:
                checks[name] = f"version {service.champions.get(name).version}"
            except NotReadyError as error:
                checks[name], ok = str(error), False
        try:
            checks["warehouse"] = f"as of {service.snapshots.current().as_of_date}"
        except NotReadyError as error:
            checks["warehouse"], ok = str(error), False
        return _json(200 if ok else 503, {"ready": ok, "checks": checks})

    @app.get("/metrics", tags=["operations"])
    async def metrics() -> Response:
        """Prometheus metrics."""
        return Response(generate_latest(service.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    app.add_middleware(
        Guard, max_body=service.settings.serve_max_body_bytes, metrics=service.metrics
    )
    return app


def app_from_environment() -> FastAPI:
    """The app of the ``CRM_*`` environment (uvicorn's factory in ``crm-signals serve``)."""
    return create_app()
