"""Helpers for bronze tests: run the graph through Dagster and read what landed."""

import sqlite3
from pathlib import Path

import polars as pl
from dagster import DagsterInstance

from rcm_assets.definitions import build_definitions
from rcm_assets.jobs import Outcome, materialize_all
from rcm_assets.metadata import load_metadata
from rcm_assets.sample_data import sqlite_path
from rcm_assets_tests.conftest import Project

WATERMARKS = {
    ("hosa", "patients"): "ModifiedDate",
    ("hosb", "patients"): "Updated_Date",
    ("hosa", "encounters"): "ModifiedDate",
    ("hosb", "encounters"): "ModifiedDate",
    ("hosa", "transactions"): "ModifiedDate",
    ("hosb", "transactions"): "ModifiedDate",
}
DATABASES = {"hosa": "healthcare-rcm-hospital-a", "hosb": "healthcare-rcm-hospital-b"}


def run_all(instance: DagsterInstance, partitions: list[str] | None = None) -> list[Outcome]:
    return materialize_all(build_definitions(load_metadata()), instance, partitions)


def by_status(outcomes: list[Outcome], status: str) -> set[tuple[str, str | None]]:
    return {(o.asset, o.partition) for o in outcomes if o.status == status}


def bronze(project: Project, target: str, table: str) -> pl.DataFrame:
    return pl.read_delta(str(project.lake / "bronze" / target / table))


def audit_logs(project: Project) -> pl.DataFrame:
    return pl.read_delta(str(project.lake / "audit" / "load_logs"))


def source(project: Project, target: str) -> sqlite3.Connection:
    return sqlite3.connect(sqlite_path(project.home, DATABASES[target]))


def source_rows(project: Project, target: str, sql: str) -> list[tuple]:
    with source(project, target) as connection:
        return connection.execute(sql).fetchall()


def source_count(project: Project, target: str, table: str) -> int:
    return source_rows(project, target, f'SELECT COUNT(*) FROM "{table}"')[0][0]


def source_max_watermark(project: Project, target: str, table: str) -> str:
    column = WATERMARKS[(target, table)]
    return source_rows(project, target, f'SELECT MAX("{column}") FROM "{table}"')[0][0]


def delta_version(path: Path) -> int:
    from deltalake import DeltaTable

    return DeltaTable(str(path)).version()
