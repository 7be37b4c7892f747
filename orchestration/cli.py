"""``crm-signals``: the command line of CRM Signals.

    crm-signals run [--source DIR] [--mapping FILE] [--job retraining_job|scoring_job]
    crm-signals check-source DIR [--mapping FILE]
    crm-signals evaluate DIR [--mapping FILE] [--folds 5] [--output DIR]
    crm-signals export-changes --format salesforce|hubspot --out DIR [--since ID] [--fields FILE]
    crm-signals serve [--host 127.0.0.1] [--port 8000] [--workers 1] [--new-key NAME]

``run`` runs a job of the pipeline (``make run`` is ``crm-signals run``); ``check-source`` loads
a folder into a scratch database and says what each table and model would get; ``evaluate``
says how good the models are on the folder's data. Without ``--mapping``, a folder's own
``mapping.yaml`` is used when it has one. ``export-changes`` writes the change feed
(``serving.score_changes``) as Salesforce Bulk API 2.0 upsert or HubSpot import CSV files
(docs/change-feed.md); ``serve`` runs the real-time scoring service (``make serve``;
docs/serving-api.md).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from ml.core.settings import Settings
from ml.data.mapping import MappingError


def _mapping(folder: Path, given: Path | None) -> Path | None:
    if given is not None:
        return given
    default = folder / "mapping.yaml"
    return default if default.is_file() else None


def _folder(text: str) -> Path:
    path = Path(text).expanduser()
    if not path.is_dir():
        raise argparse.ArgumentTypeError(f"{text} is not a folder")
    return path


def _run(args: argparse.Namespace) -> int:
    # The settings read the environment; the job's assets read the settings.
    if args.source is not None:
        os.environ["CRM_SOURCE"] = str(args.source.resolve())
    if args.mapping is not None:
        os.environ["CRM_MAPPING"] = str(args.mapping.resolve())
    if args.full_refresh:
        os.environ["CRM_FULL_REFRESH"] = "true"
    from orchestration import run  # Dagster loads only for the command that needs it

    extra = ["--summary-json", str(args.summary_json)] if args.summary_json else []
    return run.main([args.job, *extra])


def _check_source(args: argparse.Namespace) -> int:
    from ml.models.source_check import check_source

    mapping = _mapping(args.folder, args.mapping)
    print(f"{args.folder} (mapping: {mapping or 'none: contract column names'})")
    try:
        check = check_source(args.folder, mapping)
    except MappingError as error:
        print(f"the mapping cannot be used: {error}", file=sys.stderr)
        return 2
    print(check.text())
    return 0 if check.usable else 1


def _evaluate(args: argparse.Namespace) -> int:
    from ml.models.quality_report import evaluate, report_text, write_report

    mapping = _mapping(args.folder, args.mapping)
    settings = Settings()
    try:
        report = evaluate(args.folder, mapping, args.folds, settings.threads)
    except MappingError as error:
        print(f"the mapping cannot be used: {error}", file=sys.stderr)
        return 2
    print(report_text(report))
    output = args.output or settings.reports_dir / "evaluation" / args.folder.resolve().name
    json_path, html_path = write_report(report, output)
    print(f"\nreport: {html_path}\n        {json_path}")
    return 0 if report.evaluations else 1


def _export_changes(args: argparse.Namespace) -> int:
    from ml.core.warehouse import connect
    from ml.serving.crm_export import CrmFieldsError, export_changes, load_crm_fields

    settings = Settings()
    try:
        fields = load_crm_fields(args.fields) if args.fields else load_crm_fields()
    except CrmFieldsError as error:
        print(f"the field mapping cannot be used: {error}", file=sys.stderr)
        return 2
    if not settings.warehouse_path.is_file():
        print(f"no warehouse at {settings.warehouse_path}: run the pipeline first", file=sys.stderr)
        return 1
    with connect(settings.warehouse_path, read_only=True, threads=settings.threads) as con:
        try:
            export = export_changes(con, args.format, args.out, fields, since=args.since)
        except ValueError as error:
            print(str(error), file=sys.stderr)
            return 1
    if not export.publishes:
        print(f"no publish after {args.since}: header-only files")
    for publish_id, published_at in export.publishes:
        print(f"publish {publish_id}  published_at {published_at.isoformat()}Z")
    for file in export.files:
        print(f"{file.path}  {file.entity_type}  {file.rows} rows  {file.bytes} bytes")
    for job in export.jobs:
        print(f"{job}  (body of the Bulk API 2.0 job-create request)")
    return 0


def _serve(args: argparse.Namespace) -> int:
    from ml.serving.api.security import (
        ApiKeys,
        KeyConfigError,
        check_can_listen,
        hash_key,
        new_key,
    )

    if args.new_key is not None:
        key = new_key()
        print(f"API key for {args.new_key} (give it to the caller; it is not stored): {key}")
        print(f"add to CRM_API_KEY_HASHES or CRM_API_KEYS_FILE: {args.new_key}:{hash_key(key)}")
        return 0
    try:
        check_can_listen(args.host, ApiKeys.from_settings(Settings()))
    except KeyConfigError as error:
        print(f"crm-signals serve: {error}", file=sys.stderr)
        return 2
    import uvicorn  # only this command needs the server
    from uvicorn.config import LOGGING_CONFIG

    # The service's own loggers (one line per request, model loads) through uvicorn's handler.
    log_config = {
        **LOGGING_CONFIG,
        "loggers": {
            **LOGGING_CONFIG["loggers"],
            **{
                name: {"handlers": ["default"], "level": "INFO", "propagate": False}
                for name in ("crm_signals", "ml.serving")
            },
        },
    }
    uvicorn.run(
        "ml.serving.api.app:app_from_environment",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        # uvicorn's access log prints every path, and paths carry customer ids: the service
        # logs each request itself, by route template (ml.serving.api.app.Guard).
        access_log=False,
        log_config=log_config,
        log_level="info",
    )
    return 0


def parser() -> argparse.ArgumentParser:
    main_parser = argparse.ArgumentParser(
        prog="crm-signals", description=__doc__.split("\n")[0] if __doc__ else None
    )
    commands = main_parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="run the pipeline (make run)")
    run.add_argument("--source", type=_folder, help="folder of CRM exports (CRM_SOURCE)")
    run.add_argument("--mapping", type=Path, help="the folder's mapping.yaml (CRM_MAPPING)")
    run.add_argument("--job", default="retraining_job", help="retraining_job or scoring_job")
    run.add_argument("--summary-json", type=Path, help="also write the run summary here")
    run.add_argument(
        "--full-refresh",
        action="store_true",
        help="reload every source file, not only new ones (CRM_FULL_REFRESH)",
    )
    run.set_defaults(handler=_run)

    check = commands.add_parser(
        "check-source", help="load a folder into a scratch database; say what each model gets"
    )
    check.add_argument("folder", type=_folder)
    check.add_argument("--mapping", type=Path)
    check.set_defaults(handler=_check_source)

    evaluate = commands.add_parser(
        "evaluate", help="cross-validate the models on a folder's data against a baseline"
    )
    evaluate.add_argument("folder", type=_folder)
    evaluate.add_argument("--mapping", type=Path)
    evaluate.add_argument("--folds", type=int, default=5)
    evaluate.add_argument(
        "--output", type=Path, help="report folder (default CRM_HOME/reports/evaluation/<folder>)"
    )
    evaluate.set_defaults(handler=_evaluate)

    export = commands.add_parser(
        "export-changes",
        help="write the change feed as Salesforce upsert or HubSpot import CSV files",
    )
    export.add_argument("--format", required=True, choices=["salesforce", "hubspot"])
    export.add_argument("--out", required=True, type=Path, help="folder for the files")
    export.add_argument(
        "--since",
        help="export every publish after this publish id or published_at time (UTC) "
        "(default: only the newest publish)",
    )
    export.add_argument(
        "--fields", type=Path, help="field mapping YAML (default ml/serving/crm_fields.yml)"
    )
    export.set_defaults(handler=_export_changes)

    serve = commands.add_parser(
        "serve", help="the real-time scoring service (make serve; docs/serving-api.md)"
    )
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--workers", type=int, default=1, help="server processes")
    serve.add_argument(
        "--new-key", metavar="NAME", help="print a new API key and its hash line, and exit"
    )
    serve.set_defaults(handler=_serve)
    return main_parser


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    return int(args.handler(args))


if __name__ == "__main__":
    sys.exit(main())
