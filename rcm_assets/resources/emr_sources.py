"""Hospital EMR databases, read with connectorx.

A database's connection URI comes from the environment variable named for it in
metadata/databases.csv (so passwords live only in the environment, or in Azure Key Vault when
the variable holds `kv:<secret-name>`); without it, the embedded SQLite file
`$RCM_HOME/sources/<database>.db` is used. URIs are redacted in every message.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit, urlunsplit

import connectorx
import polars as pl
import psycopg2
import pymysql
from dagster import ConfigurableResource
from pydantic import Field

from rcm_assets.errors import SourceError
from rcm_assets.metadata import DatabaseSpec
from rcm_assets.resources.secrets import resolve_secret
from rcm_assets.resources.source_sql import columns_query, drop_sentinel
from rcm_assets.settings import rcm_home

DIALECTS = {
    "sqlite": "sqlite",
    "postgres": "postgres",
    "postgresql": "postgres",
    "mssql": "tsql",
    "mysql": "mysql",
}

DEFAULT_PORTS = {"tsql": 1433, "mysql": 3306}
DEFAULT_BATCH_ROWS = 200_000
BATCH_ROWS_ENV = "RCM_EXTRACT_BATCH_ROWS"
CONNECT_TIMEOUT_SECONDS = 10


def redact_uri(uri: str) -> str:
    """The URI with its password replaced by `***`, safe for logs and messages."""
    parts = urlsplit(uri)
    if parts.password is None:
        return uri
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def scrub(message: str, uri: str) -> str:
    """`message` with `uri` and its password replaced by their redacted forms."""
    password = urlsplit(uri).password
    message = message.replace(uri, redact_uri(uri))
    return message.replace(password, "***") if password else message


@dataclass(frozen=True)
class SourceDatabase:
    """One reachable source database, named for messages by its datasource."""

    database: str
    datasource: str
    uri: str
    batch_rows: int = DEFAULT_BATCH_ROWS
    future_watermark_hours: float = 24.0  # DatabaseSpec.future_watermark_hours

    @property
    def dialect(self) -> str:
        scheme = urlsplit(self.uri).scheme
        if "+" in scheme:
            # SQLAlchemy-style `mysql+pymysql://`: connectorx picks its own driver and rejects it.
            base = scheme.split("+")[0]
            raise SourceError(
                f"datasource {self.datasource}: database {self.database} has URI scheme "
                f"{scheme!r} with a driver suffix; connectorx reads sources and chooses the "
                f"driver itself, so use {base}:// instead"
            )
        if scheme not in DIALECTS:
            raise SourceError(
                f"datasource {self.datasource}: database {self.database} has an unsupported URI "
                f"scheme {scheme!r}; use one of {', '.join(sorted(DIALECTS))}"
            )
        return DIALECTS[scheme]

    @property
    def safe_uri(self) -> str:
        return redact_uri(self.uri)

    def ping(self) -> None:
        """Fail fast and clearly when the database cannot be reached.

        connectorx's connection pool retries for 30 s and then reports only a timeout, so
        reachability (and, for PostgreSQL and MySQL/MariaDB, authentication) is checked first
        with a short timeout.
        """
        parts = urlsplit(self.uri)
        if self.dialect == "sqlite":
            if not Path(parts.path).is_file():
                raise SourceError(
                    f"datasource {self.datasource}: database {self.database} not found at "
                    f"{parts.path} (run `rcm generate`, or set its URI environment variable)"
                )
            return
        try:
            if self.dialect == "postgres":
                psycopg2.connect(self.uri, connect_timeout=CONNECT_TIMEOUT_SECONDS).close()
            elif self.dialect == "mysql":
                mysql_connect(self.uri, connect_timeout=CONNECT_TIMEOUT_SECONDS).close()
            else:
                socket.create_connection(
                    (parts.hostname, parts.port or DEFAULT_PORTS[self.dialect]),
                    timeout=CONNECT_TIMEOUT_SECONDS,
                ).close()
        except (OSError, psycopg2.Error, pymysql.Error) as error:
            raise SourceError(
                f"datasource {self.datasource}: cannot connect to database {self.database} "
                f"({self.safe_uri}): {self._scrub(str(error)).strip()}"
            ) from None

    def read(self, sql: str, what: str) -> pl.DataFrame:
        """Run a query; any failure becomes a SourceError naming datasource and `what`."""
        try:
            return drop_sentinel(connectorx.read_sql(self.uri, sql, return_type="polars"))
        except BaseException as error:  # connectorx raises Rust panics as BaseException
            raise self._read_error(error, what) from None

    def stream(self, sql: str, what: str) -> Iterator[pl.DataFrame]:
        """Run a query and yield its rows `batch_rows` at a time, never the whole result."""
        try:
            reader = connectorx.read_sql(
                self.uri, sql, return_type="arrow_stream", batch_size=self.batch_rows
            )
            for batch in reader:
                yield drop_sentinel(pl.from_arrow(batch))
        except BaseException as error:
            raise self._read_error(error, what) from None

    def _read_error(self, error: BaseException, what: str) -> BaseException:
        if isinstance(error, KeyboardInterrupt | SystemExit | GeneratorExit):
            return error
        return SourceError(
            f"datasource {self.datasource}: reading {what} from database {self.database} "
            f"({self.safe_uri}) failed: {self._scrub(str(error))}"
        )

    def columns(self, schema: str | None, table: str) -> list[str]:
        self.ping()
        qualified = f"{schema}.{table}" if schema else table  # as load_config names it
        listing = self.read(columns_query(self.dialect, schema, table), f"the columns of {table}")
        names = listing.get_column(listing.columns[0]).to_list() if listing.height else []
        if not names:
            raise SourceError(
                f"datasource {self.datasource}: table {qualified} not found in database "
                f"{self.database} ({self.safe_uri})"
            )
        return names

    def _scrub(self, message: str) -> str:
        return scrub(message, self.uri)


def mysql_connect(uri: str, **options: object) -> pymysql.connections.Connection:
    """A pymysql connection for a connectorx-style `mysql://user:pass@host:port/database` URI."""
    parts = urlsplit(uri)
    return pymysql.connect(
        host=parts.hostname or "127.0.0.1",
        port=parts.port or DEFAULT_PORTS["mysql"],
        user=unquote(parts.username or ""),
        password=unquote(parts.password or ""),
        database=unquote(parts.path.lstrip("/")) or None,
        **options,
    )


class EmrSourcesResource(ConfigurableResource):
    """Resolves each EMR database's connection at run time, never at definitions load."""

    sources_dir: str = Field(
        default_factory=lambda: str(rcm_home() / "sources"),
        description="Folder of the embedded SQLite databases used when no URI variable is set.",
    )
    batch_rows: int = Field(
        default_factory=lambda: int(os.environ.get(BATCH_ROWS_ENV) or DEFAULT_BATCH_ROWS),
        description="Rows an extract reads at a time; memory follows this, not the table size "
        f"(default ${BATCH_ROWS_ENV}, else {DEFAULT_BATCH_ROWS:,}).",
        gt=0,
    )

    def open(self, spec: DatabaseSpec, datasource: str) -> SourceDatabase:
        configured = os.environ.get(spec.uri_env_var)
        uri = resolve_secret(configured) if configured else self.default_uri(spec.database)
        return SourceDatabase(
            database=spec.database,
            datasource=datasource,
            uri=uri,
            batch_rows=self.batch_rows,
            future_watermark_hours=spec.future_watermark_hours,
        )

    def default_uri(self, database: str) -> str:
        return f"sqlite://{Path(self.sources_dir).resolve() / f'{database}.db'}"
