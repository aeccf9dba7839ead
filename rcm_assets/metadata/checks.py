"""Checks across rows and files: what no single row can tell (duplicates, unknown names).

Each check raises MetadataError naming the file, line and column of the first culprit.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path

from rcm_assets.errors import MetadataError
from rcm_assets.metadata.models import (
    LAKE_LAYERS,
    RULE_ARITY,
    STORAGE_ROLES_FILE,
    ApiSource,
    ApiSourceName,
    DatabaseSpec,
    GoldReference,
    GoldTable,
    LandingFilePattern,
    LandingFormat,
    LandingTable,
    LoadConfig,
    LoadType,
    NppesQuery,
    QualityRule,
    QualityThreshold,
    SilverColumn,
    SilverTable,
    StorageAccess,
    StorageRole,
    _Row,
)


def _fail(path: Path, row: _Row, column: str, message: str) -> MetadataError:
    return MetadataError(f"{path}, line {row.line}, column {column}: {message}")


def _check_load_configs(
    path: Path, rows: Iterable[LoadConfig], databases: dict[str, DatabaseSpec]
) -> None:
    seen: dict[tuple[str, str], LoadConfig] = {}
    database_of: dict[str, LoadConfig] = {}
    targetpath_of: dict[str, LoadConfig] = {}
    for row in rows:
        if row.database not in databases:
            raise _fail(
                path,
                row,
                "database",
                f"unknown database {row.database!r}; declare it in databases.csv",
            )
        if row.loadtype is LoadType.INCREMENTAL and row.watermark is None:
            raise _fail(path, row, "watermark", "an Incremental load needs a watermark column")
        key = (row.datasource, row.table.lower())
        if key in seen:
            raise _fail(
                path,
                row,
                "tablename",
                f"duplicate of line {seen[key].line} ({row.datasource}, {row.tablename})",
            )
        seen[key] = row
        for mapping, attribute, value in (
            (database_of, "database", row.database),
            (targetpath_of, "targetpath", row.targetpath),
        ):
            first = mapping.setdefault(row.datasource, row)
            if getattr(first, attribute) != value:
                raise _fail(
                    path,
                    row,
                    attribute,
                    f"datasource {row.datasource!r} already uses {attribute} "
                    f"{getattr(first, attribute)!r} on line {first.line}",
                )


def _check_landing_patterns(
    path: Path, patterns: list[LandingFilePattern], tables: dict[str, LandingTable]
) -> None:
    per_datasource: dict[str, bool] = {}
    for row in patterns:
        if row.table not in tables:
            raise _fail(path, row, "table", f"unknown table {row.table!r}; see landing_tables.csv")
        # An X12 pattern without a datasource routes by the identifiers inside the file.
        partitioned = row.datasource is not None or tables[row.table].format is LandingFormat.X12
        if per_datasource.setdefault(row.table, partitioned) != partitioned:
            raise _fail(
                path,
                row,
                "datasource",
                f"give every pattern of {row.table!r} a datasource, or none of them",
            )
    for name, table in tables.items():
        if table.format is LandingFormat.CSV and not (table.key_column and table.columns):
            raise MetadataError(
                f"{path.with_name('landing_tables.csv')}, line {table.line}: a csv table needs "
                "key_column and columns"
            )
        if table.format is LandingFormat.CSV and table.key_column not in table.columns:
            raise MetadataError(
                f"{path.with_name('landing_tables.csv')}, line {table.line}, column key_column: "
                f"{table.key_column!r} is not one of the table's columns"
            )
        if name not in per_datasource:
            raise MetadataError(
                f"{path}: no file pattern for landing table {name!r} (landing_tables.csv, line "
                f"{table.line})"
            )


def _check_api_sources(
    path: Path, sources: dict[ApiSourceName, ApiSource], emr_tables: set[str]
) -> None:
    for row in sources.values():
        _check_api_source(path, row, emr_tables)


def _check_api_source(path: Path, row: ApiSource, emr_tables: set[str]) -> None:
    if row.source is ApiSourceName.NPPES:
        if row.page_size is None:
            raise _fail(path, row, "page_size", "nppes needs a page size (1-200)")
        if row.npi_table and row.npi_table not in emr_tables:
            raise _fail(
                path, row, "npi_source", f"{row.npi_table!r} is not a table of load_config.csv"
            )
        return
    for column in ("token_url", "release", "landing_folder"):
        if getattr(row, column) is None:
            raise _fail(path, row, column, f"{row.source.value} needs a {column}")
    if not row.root_codes:
        raise _fail(path, row, "root_codes", "list the chapters or blocks to walk")


def _check_nppes_queries(
    path: Path,
    queries: tuple[NppesQuery, ...],
    sources: dict[ApiSourceName, ApiSource],
    sources_path: Path,
) -> None:
    for query in queries:
        if not (query.taxonomy_description or query.city or query.postal_code):
            raise _fail(
                path,
                query,
                "city",
                "give a city, postal_code or taxonomy_description: the registry refuses a "
                "search by state or enumeration type alone",
            )
    if queries and ApiSourceName.NPPES not in sources:
        raise MetadataError(f"{path}: NPPES queries need an nppes row in {sources_path}")


def _check_silver(
    folder: Path,
    tables: dict[str, SilverTable],
    sources: set[str],
    columns: list[SilverColumn],
    rules: list[QualityRule],
    thresholds: list[QualityThreshold],
    gold_tables: dict[str, GoldTable],
) -> None:
    tables_path, columns_path = folder / "silver_tables.csv", folder / "silver_columns.csv"
    defined: dict[str, set[str]] = defaultdict(set)
    seen: dict[tuple[str, str, str | None], SilverColumn] = {}
    for column in columns:
        if column.table not in tables:
            raise _fail(columns_path, column, "table", f"unknown silver table {column.table!r}")
        if column.references and column.references not in tables:
            raise _fail(
                columns_path, column, "references", f"unknown silver table {column.references!r}"
            )
        identity = (column.table, column.column, column.datasource)
        if identity in seen:
            raise _fail(columns_path, column, "column", f"duplicate of line {seen[identity].line}")
        seen[identity] = column
        if column.datasource is None:
            defined[column.table].add(column.column)
    for column in columns:
        if column.datasource and column.column not in defined[column.table]:
            raise _fail(
                columns_path,
                column,
                "column",
                f"{column.column!r} overrides no default row of {column.table!r}",
            )
    for table in tables.values():
        if table.source not in sources:
            raise _fail(tables_path, table, "source", f"unknown bronze table {table.source!r}")
        for attribute in ("key", "order_by"):
            name = getattr(table, attribute)
            if name and name not in defined[table.table]:
                raise _fail(
                    tables_path,
                    table,
                    attribute,
                    f"{name!r} is not a column of {table.table} in silver_columns.csv",
                )
    _check_quality_rules(folder / "quality_rules.csv", rules, tables, defined, gold_tables)
    for threshold in thresholds:
        if threshold.table != "*" and threshold.table not in {*tables, *gold_tables}:
            raise _fail(
                folder / "quality_thresholds.csv",
                threshold,
                "table",
                f"unknown silver or gold table {threshold.table!r}",
            )


def _check_quality_rules(
    path: Path,
    rules: list[QualityRule],
    tables: dict[str, SilverTable],
    defined: dict[str, set[str]],
    gold_tables: dict[str, GoldTable],
) -> None:
    for rule in rules:
        if rule.table not in tables:
            raise _fail(path, rule, "table", f"unknown silver table {rule.table!r}")
        if len(rule.columns) != RULE_ARITY[rule.check]:
            raise _fail(
                path,
                rule,
                "columns",
                f"{rule.check.value} takes {RULE_ARITY[rule.check]} column(s)",
            )
        unknown = [name for name in rule.columns if name not in defined[rule.table]]
        if unknown:
            raise _fail(
                path,
                rule,
                "columns",
                f"{', '.join(unknown)} not a column of {rule.table} in silver_columns.csv",
            )
        unknown = [name for name in rule.impacts if name not in gold_tables]
        if unknown:
            raise _fail(
                path,
                rule,
                "impacts",
                f"unknown gold table(s) {', '.join(map(repr, unknown))}; see gold_tables.csv",
            )


def _check_gold(
    folder: Path,
    tables: dict[str, GoldTable],
    references: list[GoldReference],
    silver: dict[str, SilverTable],
    silver_columns: list[SilverColumn],
) -> None:
    path = folder / "gold_tables.csv"
    for table in tables.values():
        if table.kind == "kpi":
            continue
        if table.kind == "masked":
            if table.source not in tables or not table.consumer:
                raise _fail(
                    path, table, "source", "a masked table needs a gold source and a consumer"
                )
            continue
        if table.source not in silver:
            raise _fail(path, table, "source", f"unknown silver table {table.source!r}")
        known = {c.column for c in silver_columns if c.table == table.source} | {"datasource"}
        unknown = [name for name in table.columns if name not in known]
        if unknown:
            raise _fail(
                path, table, "columns", f"{', '.join(unknown)} not in silver/{table.source}"
            )
    references_path = folder / "gold_references.csv"
    for reference in references:
        for attribute in ("table", "dimension"):
            if getattr(reference, attribute) not in tables:
                raise _fail(
                    references_path,
                    reference,
                    attribute,
                    f"unknown gold table {getattr(reference, attribute)!r}",
                )


def _check_storage_access(
    path: Path,
    rows: list[StorageAccess],
    roles: dict[str, StorageRole],
    silver: dict[str, SilverTable],
    gold: dict[str, GoldTable],
) -> None:
    """storage_access.csv, checked against the roles, the lake's layers and its table names."""
    seen: dict[tuple[str, str, str], StorageAccess] = {}
    for row in rows:
        if row.role not in roles:
            raise _fail(path, row, "role", f"unknown role {row.role!r}; see {STORAGE_ROLES_FILE}")
        identity = (row.store, row.path, row.role)
        if identity in seen:
            raise _fail(path, row, "role", f"duplicate of line {seen[identity].line}")
        seen[identity] = row
        if row.store != "lake" or not row.parts:
            continue
        layer, *rest = row.parts
        if layer not in LAKE_LAYERS:
            raise _fail(
                path, row, "path", f"{layer!r} is not a lake folder ({', '.join(LAKE_LAYERS)})"
            )
        tables = {"silver": silver, "gold": gold}.get(layer)
        if tables is not None and rest and rest[0] not in tables:
            raise _fail(path, row, "path", f"unknown {layer} table {rest[0]!r}")
