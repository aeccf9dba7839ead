"""Thin SQLite / PostgreSQL / MySQL (MariaDB) adapters used by the generator and the mutator.

The adapters load polars frames in bulk (executemany for SQLite and MySQL, COPY for PostgreSQL)
and keep all work of one hospital inside a single transaction, committed by ``commit``.
"""

from __future__ import annotations

import io
import sqlite3
from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import numpy as np
import polars as pl

from .schema import Column, Dialect, create_table_sql, quote_ident

POSTGRES_SCHEMES = frozenset({"postgresql", "postgres"})
MYSQL_SCHEMES = frozenset({"mysql"})
# ANSI_QUOTES: the double-quoted identifiers of the shared SQL; PIPES_AS_CONCAT: `||` joins text.
MYSQL_SQL_MODE = "ANSI"
_MYSQL_INSERT_BATCH = 5_000
PG_SCHEMA = "dbo"
_FETCH_BATCH = 1_000_000
_DATE_FORMAT = "%Y-%m-%d"
_DATETIME_FORMAT = "%Y-%m-%d %H:%M:%S"


def sqlite_path(home: Path, database: str) -> Path:
    """Where the SQLite file of ``database`` lives under the project data folder."""
    return Path(home) / "sources" / f"{database}.db"


def check_target(target: str) -> Dialect:
    """The dialect of a source server URI; a ValueError (one clear line) for anything else."""
    scheme = urlsplit(target).scheme.lower()
    if scheme in POSTGRES_SCHEMES:
        return "postgres"
    if scheme in MYSQL_SCHEMES:
        return "mysql"
    from rcm_assets.resources.emr_sources import redact_uri

    hint = f" (drop the driver suffix: use {scheme.split('+')[0]}://)" if "+" in scheme else ""
    raise ValueError(
        f"Unsupported source target {redact_uri(target)!r}{hint}: expected a PostgreSQL URI "
        "such as 'postgresql://user@host:5432/postgres' (scheme postgresql:// or postgres://), a "
        "MySQL/MariaDB URI such as 'mysql://root@127.0.0.1:3306', "
        "or no target at all for local SQLite files."
    )


def database_uri(target: str, database: str) -> str:
    """``target`` (a PostgreSQL or MySQL server URI) with its database path set to ``database``."""
    check_target(target)
    parts = urlsplit(target)
    path = "/" + quote(database, safe="")
    return urlunsplit((parts.scheme, parts.netloc, path, parts.query, parts.fragment))


class SampleDatabase(ABC):
    """One hospital database; every statement runs in one transaction until ``commit``."""

    dialect: Dialect
    placeholder: str
    integer_type = "BIGINT"  # for CAST(... AS <integer_type>)

    @abstractmethod
    def table(self, name: str) -> str:
        """Quoted, schema-qualified name of a source table."""

    @abstractmethod
    def _cursor(self) -> Any: ...

    @abstractmethod
    def load(self, qualified_name: str, frame: pl.DataFrame) -> None:
        """Append ``frame`` (columns named like the table's) to the table."""

    @abstractmethod
    def fetch_int64(self, sql: str) -> np.ndarray:
        """Run a query returning one non-null integer column, streamed in batches."""

    @abstractmethod
    def commit(self) -> None: ...

    @abstractmethod
    def close(self) -> None: ...

    def create_table(
        self, qualified_name: str, columns: Sequence[Column], *, temporary: bool = False
    ) -> None:
        sql = create_table_sql(self.dialect, qualified_name, columns)
        if temporary:
            sql = sql.replace("CREATE TABLE", "CREATE TEMPORARY TABLE", 1)
        self.execute(sql)

    def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        cur = self._run(sql, params)
        return cur.rowcount

    def fetch_all(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return self._run(sql, params).fetchall()

    def _run(self, sql: str, params: Sequence[Any]) -> Any:
        cur = self._cursor()
        # Without parameters psycopg2 must not %-format the statement.
        if params:
            cur.execute(sql, tuple(params))
        else:
            cur.execute(sql)
        return cur

    def fetch_one(self, sql: str, params: Sequence[Any] = ()) -> Any:
        rows = self.fetch_all(sql, params)
        return rows[0][0] if rows else None

    def __enter__(self) -> SampleDatabase:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _collect_int64(batches: Any) -> np.ndarray:
    parts = [
        np.fromiter((row[0] for row in rows), dtype=np.int64, count=len(rows)) for rows in batches
    ]
    return np.concatenate(parts) if parts else np.empty(0, dtype=np.int64)


class SQLiteDatabase(SampleDatabase):
    dialect: Dialect = "sqlite"
    placeholder = "?"

    def __init__(self, path: Path, *, fast: bool) -> None:
        self._conn = sqlite3.connect(path, isolation_level=None)
        if fast:
            # The file is rebuilt from scratch on failure, so durability buys nothing here.
            self._conn.execute("PRAGMA journal_mode=OFF")
            self._conn.execute("PRAGMA synchronous=OFF")
        self._conn.execute("BEGIN")

    def table(self, name: str) -> str:
        return quote_ident(name)

    def _cursor(self) -> sqlite3.Cursor:
        return self._conn.cursor()

    def load(self, qualified_name: str, frame: pl.DataFrame) -> None:
        frame = _temporal_as_text(frame)
        cols = ", ".join(quote_ident(c) for c in frame.columns)
        marks = ", ".join("?" for _ in frame.columns)
        sql = f"INSERT INTO {qualified_name} ({cols}) VALUES ({marks})"
        self._conn.executemany(sql, frame.iter_rows())

    def fetch_int64(self, sql: str) -> np.ndarray:
        cur = self._conn.execute(sql)
        return _collect_int64(iter(lambda: cur.fetchmany(_FETCH_BATCH), []))

    def commit(self) -> None:
        self._conn.execute("COMMIT")
        self._conn.execute("BEGIN")

    def close(self) -> None:
        if self._conn.in_transaction:
            self._conn.execute("ROLLBACK")
        self._conn.close()


def _temporal_as_text(frame: pl.DataFrame) -> pl.DataFrame:
    """SQLite has no date type: store ISO text, which also sorts correctly."""
    exprs = []
    for name, dtype in frame.schema.items():
        if dtype == pl.Date:
            exprs.append(pl.col(name).dt.strftime(_DATE_FORMAT))
        elif isinstance(dtype, pl.Datetime):
            exprs.append(pl.col(name).dt.strftime(_DATETIME_FORMAT))
    return frame.with_columns(exprs) if exprs else frame


class PostgresDatabase(SampleDatabase):
    dialect: Dialect = "postgres"
    placeholder = "%s"

    def __init__(self, uri: str) -> None:
        import psycopg2

        self._conn = psycopg2.connect(uri)
        self._cursor_count = 0

    def table(self, name: str) -> str:
        return f"{PG_SCHEMA}.{quote_ident(name)}"

    def _cursor(self) -> Any:
        return self._conn.cursor()

    def load(self, qualified_name: str, frame: pl.DataFrame) -> None:
        buf = io.BytesIO()
        frame.write_csv(
            buf,
            include_header=False,
            null_value="",
            date_format=_DATE_FORMAT,
            datetime_format=_DATETIME_FORMAT,
            float_precision=4,
        )
        buf.seek(0)
        cols = ", ".join(quote_ident(c) for c in frame.columns)
        with self._conn.cursor() as cur:
            cur.copy_expert(f"COPY {qualified_name} ({cols}) FROM STDIN WITH (FORMAT csv)", buf)

    def fetch_int64(self, sql: str) -> np.ndarray:
        # A server-side cursor keeps the client from materialising millions of tuples at once.
        self._cursor_count += 1
        with self._conn.cursor(name=f"rcm_fetch_{self._cursor_count}") as cur:
            cur.itersize = _FETCH_BATCH
            cur.execute(sql)
            return _collect_int64(iter(lambda: cur.fetchmany(_FETCH_BATCH), []))

    def commit(self) -> None:
        self._conn.commit()

    def close(self) -> None:
        self._conn.close()


class MySQLDatabase(SampleDatabase):
    """A MySQL / MariaDB database (one per hospital; MySQL has no schemas inside a database)."""

    dialect: Dialect = "mysql"
    placeholder = "%s"
    integer_type = "SIGNED"

    def __init__(self, uri: str) -> None:
        from pymysql.constants import CLIENT

        from rcm_assets.resources.emr_sources import mysql_connect

        # FOUND_ROWS: an UPDATE reports the rows it matched, as SQLite and PostgreSQL do.
        self._conn = mysql_connect(
            uri, connect_timeout=10, client_flag=CLIENT.FOUND_ROWS, local_infile=False
        )
        self.execute(f"SET SESSION sql_mode = '{MYSQL_SQL_MODE}'")

    def table(self, name: str) -> str:
        return quote_ident(name)

    def _cursor(self) -> Any:
        return self._conn.cursor()

    def load(self, qualified_name: str, frame: pl.DataFrame) -> None:
        cols = ", ".join(quote_ident(c) for c in frame.columns)
        marks = ", ".join("%s" for _ in frame.columns)
        sql = f"INSERT INTO {qualified_name} ({cols}) VALUES ({marks})"
        with self._conn.cursor() as cur:
            # pymysql turns executemany of a plain INSERT into multi-row INSERT statements.
            for batch in frame.iter_slices(_MYSQL_INSERT_BATCH):
                cur.executemany(sql, batch.rows())

    def fetch_int64(self, sql: str) -> np.ndarray:
        import pymysql.cursors

        # An unbuffered cursor keeps the client from materialising millions of rows at once.
        with self._conn.cursor(pymysql.cursors.SSCursor) as cur:
            cur.execute(sql)
            return _collect_int64(iter(lambda: cur.fetchmany(_FETCH_BATCH), ()))

    def commit(self) -> None:
        self._conn.commit()

    def close(self) -> None:
        self._conn.close()


def recreate_sqlite(path: Path) -> SQLiteDatabase:
    path.parent.mkdir(parents=True, exist_ok=True)
    for suffix in ("", "-journal", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    return SQLiteDatabase(path, fast=True)


def open_sqlite(path: Path) -> SQLiteDatabase:
    if not path.is_file():
        raise FileNotFoundError(f"SQLite source {path} does not exist; run generate first")
    return SQLiteDatabase(path, fast=False)


def recreate_postgres(target: str, database: str) -> PostgresDatabase:
    import psycopg2

    check_target(target)
    admin = psycopg2.connect(target)
    try:
        admin.autocommit = True  # CREATE/DROP DATABASE cannot run inside a transaction
        with admin.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS {quote_ident(database)} WITH (FORCE)")
            cur.execute(f"CREATE DATABASE {quote_ident(database)}")
    finally:
        admin.close()
    db = PostgresDatabase(database_uri(target, database))
    db.execute(f"CREATE SCHEMA {PG_SCHEMA}")
    return db


def open_postgres(target: str, database: str) -> PostgresDatabase:
    return PostgresDatabase(database_uri(target, database))


def recreate_mysql(target: str, database: str) -> MySQLDatabase:
    from rcm_assets.resources.emr_sources import mysql_connect

    check_target(target)
    admin = mysql_connect(database_uri(target, ""), connect_timeout=10)
    try:
        with admin.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS {mysql_ident(database)}")
            cur.execute(f"CREATE DATABASE {mysql_ident(database)} CHARACTER SET utf8mb4")
    finally:
        admin.close()
    return MySQLDatabase(database_uri(target, database))


def mysql_ident(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def recreate_server(target: str, database: str) -> SampleDatabase:
    """A new, empty database ``database`` on the PostgreSQL or MySQL server ``target``."""
    if check_target(target) == "mysql":
        return recreate_mysql(target, database)
    return recreate_postgres(target, database)


def open_server(target: str, database: str) -> SampleDatabase:
    """The existing database ``database`` on the PostgreSQL or MySQL server ``target``."""
    if check_target(target) == "mysql":
        return MySQLDatabase(database_uri(target, database))
    return open_postgres(target, database)
