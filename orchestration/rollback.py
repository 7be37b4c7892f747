"""Roll a registered model back (or forward) to a version: the champion alias moves to it.

    make rollback MODEL=churn VERSION=3 REASON="v4 over-predicts after the price change"
    .venv/bin/python -m orchestration.rollback churn 3 --reason "..."

The next scoring run (the daily schedule, or ``scoring_job`` in the UI) scores with that
version. Every model of the suite is registered under its own name: churn, lead_scoring,
next_product, retention_uplift, customer_value.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from ml.core.settings import Settings
from ml.modelling.registry import roll_back
from orchestration.resources import registry


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", help="registered model name, e.g. churn")
    parser.add_argument("version", help="version to make champion")
    parser.add_argument("--reason", default="manual rollback", help="why, for the audit trail")
    args = parser.parse_args(argv)
    try:
        previous = roll_back(registry(Settings()), args.model, args.version, args.reason)
    except LookupError as error:
        print(f"rollback failed: {error}", file=sys.stderr)
        return 1
    print(f"{args.model}: champion is now v{args.version} (was v{previous})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
