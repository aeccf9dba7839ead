"""Helpers for bronze tests: the sample sources on SQLite, PostgreSQL or MariaDB, runs, what
landed."""

import re
from dataclasses import dataclass
from pathlib import Path

import polars as pl
from dagster import DagsterInstance
from deltalake import DeltaTable

from rcm_assets.runs import Outcome, load_definitions, materialize_all
from rcm_assets.sample_data import (
    SAMPLE_HOSPITALS,
    HospitalProfile,
    TableCount,
    mutate_sources,
    sqlite_path,
)
from rcm_assets.sample_data.database import SampleDatabase, open_server, open_sqlite
from rcm_assets_tests.conftest import Project

WATERMARKS = {
    ("hosa", "patients"): "ModifiedDate",
    ("hosb", "patients"): "Updated_Date",
    ("hosa", "encounters"): "ModifiedDate",
    ("hosb", "encounters"): "ModifiedDate",
    ("hosa", "transactions"): "ModifiedDate",
    ("hosb", "transactions"): "ModifiedDate",
}
TABLES = ["departments", "encounters", "patients", "providers", "transactions"]


@dataclass
class Sources:
    """The two sample hospitals' EMR databases behind a project, on either backend.

    SQL given to `rows`/`execute` names tables as `{patients}` and parameters as `?`; both are
    translated for the backend, so one test runs unchanged on SQLite, PostgreSQL and MariaDB
    (whose sessions run in sql_mode ANSI: double-quoted identifiers, `||` concatenation).
    """

    project: Project
    backend: str  # sqlite | postgres | mysql
    hospitals: dict[str, HospitalProfile]  # targetpath -> the hospital behind it
    server: str | None = None

    def _open(self, target: str) -> SampleDatabase:
        database = self.hospitals[target].database
        if self.server:
            return open_server(self.server, database)
        return open_sqlite(sqlite_path(self.project.home, database))

    def _sql(self, db: SampleDatabase, sql: str) -> str:
        sql = re.sub(r"\{(\w+)\}", lambda m: db.table(m.group(1)), sql)
        if db.dialect == "mysql":
            sql = sql.replace(" AS TEXT)", " AS CHAR)")  # MySQL casts to CHAR, not TEXT
        return sql.replace("?", db.placeholder)

    def rows(self, target: str, sql: str, params: tuple = ()) -> list[tuple]:
        with self._open(target) as db:
            return db.fetch_all(self._sql(db, sql), params)

    def execute(self, target: str, sql: str, params: tuple = ()) -> None:
        with self._open(target) as db:
            db.execute(self._sql(db, sql), params)
            db.commit()

    def count(self, target: str, table: str) -> int:
        return self.rows(target, f"SELECT COUNT(*) FROM {{{table}}}")[0][0]

    def max_watermark(self, target: str, table: str) -> str:
        column = WATERMARKS[(target, table)]
        return self.rows(target, f'SELECT CAST(MAX("{column}") AS TEXT) FROM {{{table}}}')[0][0]

    def copy_transactions(self, target: str, copies: int, watermark: str) -> None:
        """Insert `copies` new-id copies of every transaction, all at one watermark: a change
        large enough that writing it takes seconds (to be caught by a kill)."""
        numbers = f"""WITH RECURSIVE copies(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM copies
            WHERE n < {copies:d})"""
        # MySQL/MariaDB put the WITH after INSERT INTO, the others before it.
        insert, cte = (
            ("INSERT INTO {transactions}", numbers)
            if self.backend == "mysql"
            else (numbers + " INSERT INTO {transactions}", "")
        )
        self.execute(
            target,
            f"""{insert} {cte} SELECT 'NEW-' || n || '-' || "TransactionID",
            "EncounterID", "PatientID", "ProviderID", "DeptID", "VisitDate", "ServiceDate",
            "PaidDate", "VisitType", "Amount", "AmountType", "PaidAmount", "ClaimID", "PayorID",
            "ProcedureCode", "ICDCode", "LineOfBusiness", "MedicaidID", "MedicareID", "InsertDate",
            ? FROM {{transactions}} CROSS JOIN copies""",
            (watermark,),
        )

    def mutate(self, seed: int) -> dict[tuple[str, str], TableCount]:
        target_of = {profile.database: target for target, profile in self.hospitals.items()}
        counts = mutate_sources(
            self.project.home,
            seed=seed,
            target=self.server,
            hospitals=list(self.hospitals.values()),
        )
        return {(target_of[c.database], c.table): c for c in counts}


def sqlite_sources(project: Project) -> Sources:
    """The sample hospitals' SQLite files of a `sampled` project."""
    return Sources(project, "sqlite", dict(zip(("hosa", "hosb"), SAMPLE_HOSPITALS, strict=True)))


def read_table(project: Project, layer: str, table: str) -> pl.DataFrame:
    return pl.read_delta(str(project.lake / layer / table))


def run_all(instance: DagsterInstance, partitions: list[str] | None = None) -> list[Outcome]:
    return materialize_all(load_definitions(), instance, partitions)


def run_bronze(instance: DagsterInstance, partitions: list[str]) -> list[Outcome]:
    """The bronze assets of these partitions only (their silver partitions are left alone)."""
    return materialize_all(load_definitions(), instance, partitions, layers=["bronze"])


def by_status(outcomes: list[Outcome], status: str) -> set[tuple[str, str | None]]:
    """(asset, partition) of the EMR bronze outcomes with this status."""
    return {
        (o.asset, o.partition)
        for o in outcomes
        if o.status == status and o.asset.removeprefix("bronze/") in TABLES
    }


def bronze(project: Project, target: str, table: str) -> pl.DataFrame:
    return pl.read_delta(str(project.lake / "bronze" / target / table))


def audit_logs(project: Project) -> pl.DataFrame:
    """The audit rows of EMR loads (landing files and reference extracts have their own)."""
    logs = pl.read_delta(str(project.lake / "audit" / "load_logs"))
    return logs.filter(pl.col("load_type").is_in(["Full", "Incremental"]))


def delta_version(path: Path) -> int:
    return DeltaTable(str(path)).version()
