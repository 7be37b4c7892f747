"""dbt-duckdb plugin that gives every dbt connection the PII salt (``ml.core.privacy``).

Listed under ``plugins`` in ``dbt_project/profiles.yml``. The salt is bound as a parameter to the
DuckDB session variable ``pii_salt``, so compiled SQL, ``target/`` and dbt's logs only ever hold
``getvariable('pii_salt')``. The state folder is the warehouse file's folder (``CRM_HOME``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dbt.adapters.duckdb.plugins import BasePlugin

from ml.core.privacy import set_salt_variable
from ml.core.settings import Settings


class Plugin(BasePlugin):
    _salt: str | None = None

    def update_connection_config(self, creds: Any, config: dict[str, Any]) -> None:
        home = Path(str(creds.path)).resolve().parent
        self._salt = Settings(home=home).salt()

    def configure_connection(self, conn: Any) -> None:
        self._set(conn)

    def configure_cursor(self, cursor: Any) -> None:
        # Each dbt thread works on a cursor, which is a new DuckDB session: variables do not carry.
        self._set(cursor)

    def _set(self, con: Any) -> None:
        if self._salt is None:
            raise RuntimeError("the PII salt plugin was not given the warehouse path")
        set_salt_variable(con, self._salt)
