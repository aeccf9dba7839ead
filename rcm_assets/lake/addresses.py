"""Where every lake table lives: the one place a Delta table URI is derived.

A table is named by its path relative to the lake root (`silver/patients`,
`bronze/hosa/patients`); its layer is the first part. Bronze EMR tables sit under their
datasource's `targetpath`, landing and reference tables directly under `bronze/`, old bronze loads
under `archive/bronze/<targetpath>/`, and the tables written as a side effect of loads under
`audit/`. Resources, assets and the CLI ask a `LakeAddresses` for a URI; nothing else joins paths.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

import polars as pl

from rcm_assets.errors import RcmError
from rcm_assets.metadata import REFERENCE_BRONZE_TABLES, LoadConfig, Metadata, SilverTable

LAYERS = ("bronze", "silver", "gold", "audit", "archive")  # the lake root's folders
_NAME_PART = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.=-]*$")


class AuditTable(StrEnum):
    """The tables of the audit layer, written as a side effect of loads and lake operations."""

    LOAD_LOGS = "load_logs"
    REJECTED_ROWS = "rejected_rows"
    DQ_RESULTS = "dq_results"
    ERASURES = "erasures"


@dataclass(frozen=True)
class BronzeSlice:
    """One datasource's rows of the bronze table a silver table reads."""

    datasource: str
    uri: str
    where: pl.Expr | None  # None: the whole table is this datasource's


@dataclass(frozen=True)
class LakeAddresses:
    """A lake root (local folder or abfss:// URI) and the delta-rs options to reach it."""

    root: str
    storage_options: Mapping[str, str] | None = None

    def _join(self, *parts: str) -> str:
        return "/".join([self.root.rstrip("/"), *parts])

    def named(self, name: str) -> str:
        """The URI of a table name, refusing names that could leave the lake (`..`, absolute)."""
        parts = name.strip().strip("/").split("/")
        if not name.strip() or not all(_NAME_PART.match(part) for part in parts) or ".." in parts:
            raise RcmError(
                f"{name!r} is not a table name; use a path relative to the lake root such as "
                "silver/patients (see `rcm lake tables`)"
            )
        return self._join(*parts)

    def emr_bronze(self, config: LoadConfig) -> str:
        return self._join("bronze", config.targetpath, config.table)

    def bronze(self, table: str) -> str:
        """A bronze table shared by all datasources: landing files and reference extracts."""
        return self._join("bronze", table)

    def archive(self, config: LoadConfig) -> str:
        return self._join("archive", "bronze", config.targetpath, config.table)

    def silver(self, table: str) -> str:
        return self._join("silver", table)

    def gold(self, table: str) -> str:
        return self._join("gold", table)

    def audit(self, table: AuditTable) -> str:
        return self._join("audit", table.value)

    def bronze_slices(self, table: SilverTable, metadata: Metadata) -> list[BronzeSlice]:
        """Every (datasource, bronze table, row filter) a silver table reads, by datasource."""
        emr = metadata.bronze_tables().get(table.source, {})
        if emr:
            return [
                BronzeSlice(ds, self.emr_bronze(config), None) for ds, config in sorted(emr.items())
            ]
        uri = self.bronze(table.source)
        datasources = metadata.landing_datasources(table.source)
        if datasources:
            return [BronzeSlice(ds, uri, pl.col("datasource") == ds) for ds in datasources]
        return [BronzeSlice(table.default_datasource or table.source, uri, None)]

    def local_root(self) -> Path | None:
        """The lake's folder when it is on the local file system, else None."""
        if self.root.startswith("file://"):
            return Path(self.root.removeprefix("file://"))
        return None if "://" in self.root else Path(self.root)


def expected_table_names(metadata: Metadata) -> set[str]:
    """Every table name the metadata implies, for stores that cannot be walked cheaply."""
    emr = {f"bronze/{c.targetpath}/{c.table}" for c in metadata.load_configs}
    return (
        emr
        | {f"archive/{name}" for name in emr}
        | {f"bronze/{name}" for name in metadata.landing_tables}
        | {f"bronze/{name}" for name in REFERENCE_BRONZE_TABLES.values()}
        | {f"silver/{name}" for name in metadata.silver_tables}
        | {f"gold/{name}" for name in metadata.gold_tables}
        | {f"audit/{table.value}" for table in AuditTable}
    )
