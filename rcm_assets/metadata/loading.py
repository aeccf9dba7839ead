"""Reading the metadata folder into rows, and `Metadata`, the validated whole."""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from pydantic import ValidationError

from rcm_assets.errors import MetadataError
from rcm_assets.metadata.checks import (
    _check_api_sources,
    _check_gold,
    _check_landing_patterns,
    _check_load_configs,
    _check_nppes_queries,
    _check_silver,
    _check_storage_access,
    _fail,
)
from rcm_assets.metadata.models import (
    API_SOURCES_FILE,
    DATASOURCES_FILE,
    DENIAL_REASONS_FILE,
    KPI_TARGETS_FILE,
    NPPES_QUERIES_FILE,
    REFERENCE_BRONZE_TABLES,
    STORAGE_ACCESS_FILE,
    STORAGE_ROLES_FILE,
    X12_IDENTIFIERS_FILE,
    ApiSource,
    ApiSourceName,
    ArchivePolicy,
    CatalogEntry,
    ColumnTags,
    DatabaseSpec,
    Datasource,
    DenialReason,
    GoldReference,
    GoldTable,
    KpiTarget,
    LandingFilePattern,
    LandingFormat,
    LandingTable,
    LoadConfig,
    MaskingRule,
    NppesQuery,
    QualityRule,
    QualityThreshold,
    Schedule,
    SilverColumn,
    SilverTable,
    StorageAccess,
    StorageRole,
    X12Identifier,
    _Row,
)
from rcm_assets.settings import metadata_dir

RowT = TypeVar("RowT", bound=_Row)


def _read_csv(path: Path, model: type[RowT]) -> list[RowT]:
    if not path.is_file():
        raise MetadataError(f"{path}: metadata file is missing")
    expected = [name for name in model.model_fields if name != "line"]
    required = [n for n in expected if model.model_fields[n].is_required()]
    try:  # utf-8-sig: a byte-order mark (Excel's "CSV UTF-8") is not part of the first name
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as error:
        line = path.read_bytes()[: error.start].count(b"\n") + 1
        raise MetadataError(
            f"{path}, line {line}: not UTF-8 (byte 0x{path.read_bytes()[error.start]:02x} at "
            f"offset {error.start}); save the file as UTF-8"
        ) from None
    with io.StringIO(text, newline="") as handle:
        reader = csv.DictReader(handle)
        header = reader.fieldnames or []
        missing = [name for name in required if name not in header]
        unknown = [name for name in header if name not in expected]
        if missing or unknown:
            raise MetadataError(
                f"{path}, line 1: header must be {','.join(expected)}"
                + (f"; missing column(s) {', '.join(missing)}" if missing else "")
                + (f"; unknown column(s) {', '.join(unknown)}" if unknown else "")
            )
        rows = []
        for record in reader:
            line = reader.line_num
            if None in record:
                raise MetadataError(f"{path}, line {line}: more fields than the header has")
            try:
                rows.append(model(line=line, **{k: v for k, v in record.items() if v is not None}))
            except ValidationError as error:
                first = error.errors()[0]
                column = ".".join(str(part) for part in first["loc"]) or "?"
                raise MetadataError(
                    f"{path}, line {line}, column {column}: {first['msg']}"
                    f" (value {first.get('input')!r})"
                ) from None
    return rows


def _unique(path: Path, model: type[RowT], key: str) -> dict[str, RowT]:
    rows: dict[str, RowT] = {}
    for row in _read_csv(path, model):
        value = getattr(row, key)
        if value in rows:
            raise _fail(path, row, key, f"duplicate of line {rows[value].line}")
        rows[value] = row
    return rows


@dataclass(frozen=True)
class Metadata:
    """Everything the factories need, validated as a whole."""

    folder: Path
    databases: dict[str, DatabaseSpec]
    load_configs: tuple[LoadConfig, ...]
    archive_policies: dict[str, ArchivePolicy]
    landing_tables: dict[str, LandingTable]
    landing_patterns: tuple[LandingFilePattern, ...]
    schedules: dict[str, Schedule]
    silver_tables: dict[str, SilverTable]
    silver_columns: tuple[SilverColumn, ...]
    quality_rules: tuple[QualityRule, ...]
    quality_thresholds: tuple[QualityThreshold, ...]
    gold_tables: dict[str, GoldTable]
    gold_references: tuple[GoldReference, ...]
    catalog: tuple[CatalogEntry, ...] = ()
    column_tags: tuple[ColumnTags, ...] = ()
    masking_rules: tuple[MaskingRule, ...] = ()
    api_sources: dict[ApiSourceName, ApiSource] = field(default_factory=dict)
    nppes_queries: tuple[NppesQuery, ...] = ()
    storage_access: tuple[StorageAccess, ...] = ()
    storage_roles: dict[str, StorageRole] = field(default_factory=dict)
    x12_identifiers: tuple[X12Identifier, ...] = ()
    datasources: dict[str, Datasource] = field(default_factory=dict)
    kpi_targets: tuple[KpiTarget, ...] = ()
    denial_reasons: tuple[DenialReason, ...] = ()

    def display_name(self, datasource: str) -> str:
        """The hospital's name for people (datasources.csv), else its slug."""
        row = self.datasources.get(datasource)
        return row.display_name if row else datasource

    @property
    def active_loads(self) -> tuple[LoadConfig, ...]:
        return tuple(row for row in self.load_configs if row.is_active)

    def bronze_tables(self) -> dict[str, dict[str, LoadConfig]]:
        """Bronze table name → {datasource: active load config}; inactive rows are left out."""
        tables: dict[str, dict[str, LoadConfig]] = defaultdict(dict)
        for row in self.active_loads:
            tables[row.table][row.datasource] = row
        return dict(tables)

    def patterns_for(self, table: str) -> tuple[LandingFilePattern, ...]:
        return tuple(p for p in self.landing_patterns if p.table == table)

    def landing_datasources(self, table: str) -> list[str]:
        """The partitions of a landing table; empty when the table is not per datasource.

        An X12 file can be routed by the identifiers it names, so every hospital of
        x12_identifiers.csv is a partition of an X12 table too."""
        named = {p.datasource for p in self.patterns_for(table) if p.datasource}
        landing = self.landing_tables.get(table)
        if landing is not None and landing.format is LandingFormat.X12:
            named |= {row.datasource for row in self.x12_identifiers}
        return sorted(named)

    def datasources_identified_by(self, identifiers: Iterable[tuple[str, str]]) -> set[str]:
        """The hospitals that the (qualifier, identifier) pairs of an X12 file belong to."""
        wanted = set(identifiers)
        return {
            row.datasource
            for row in self.x12_identifiers
            if (row.qualifier, row.identifier) in wanted
        }

    def source_datasources(self, table: str) -> list[str]:
        """The datasources (Dagster partitions) of a bronze source table: its active EMR
        datasources or its landing patterns' datasources; empty when it is not per datasource."""
        emr = self.bronze_tables().get(table)
        return sorted(emr) if emr else self.landing_datasources(table)

    def match_landing_file(self, table: str, name: str) -> LandingFilePattern | None:
        """The first pattern (in file order) that the file name matches."""
        return next((p for p in self.patterns_for(table) if p.matches(name)), None)

    def columns_of(self, table: str) -> list[SilverColumn]:
        """A silver table's columns in order (the default rows, without per-datasource ones)."""
        return [c for c in self.silver_columns if c.table == table and c.datasource is None]

    def source_column(self, table: str, column: str, datasource: str | None) -> str:
        for c in self.silver_columns:
            if (c.table, c.column, c.datasource) == (table, column, datasource):
                return c.source
        return next(c.source for c in self.columns_of(table) if c.column == column)

    def rules_of(self, table: str) -> list[QualityRule]:
        return [r for r in self.quality_rules if r.table == table]

    def threshold(self, table: str, check: str) -> QualityThreshold | None:
        """The table's own threshold for a check, else the `*` one."""
        matches = [
            t for t in self.quality_thresholds if t.check == check and t.table in (table, "*")
        ]
        return min(matches, key=lambda t: t.table == "*", default=None)

    def catalog_for(self, asset: str) -> CatalogEntry | None:
        """The entry naming the asset exactly, else the first pattern that matches it."""
        exact = [e for e in self.catalog if e.asset == asset]
        return next(iter(exact or [e for e in self.catalog if e.matches(asset)]), None)

    def tags_of_column(self, asset: str, column: str) -> dict[str, str]:
        return {
            tag: ""
            for entry in self.column_tags
            if (entry.asset, entry.column) == (asset, column)
            for tag in entry.tags
        }

    def masking_for(self, consumer: str, table: str) -> dict[str, str]:
        return {
            r.column: r.rule
            for r in self.masking_rules
            if (r.consumer, r.table) == (consumer, table)
        }

    def references_of(self, table: str) -> list[GoldReference]:
        return [r for r in self.gold_references if r.table == table]

    def archive_after_days(self, layer: str) -> int | None:
        policy = self.archive_policies.get(layer)
        return policy.archive_after_days if policy else None

    def api_source(self, name: ApiSourceName) -> ApiSource:
        if name not in self.api_sources:
            raise MetadataError(
                f"{self.folder / API_SOURCES_FILE}: no row for source {name.value!r}"
            )
        return self.api_sources[name]


def load_metadata(folder: Path | None = None) -> Metadata:
    """Read and validate every metadata file; raise MetadataError naming file, line, column."""
    folder = (folder or metadata_dir()).resolve()
    databases_path = folder / "databases.csv"
    databases: dict[str, DatabaseSpec] = {}
    for spec in _read_csv(databases_path, DatabaseSpec):
        if spec.database in databases:
            raise _fail(databases_path, spec, "database", f"duplicate database {spec.database!r}")
        databases[spec.database] = spec
    load_config_path = folder / "load_config.csv"
    load_configs = _read_csv(load_config_path, LoadConfig)
    _check_load_configs(load_config_path, load_configs, databases)
    policies = {p.layer: p for p in _read_csv(folder / "archive_policy.csv", ArchivePolicy)}
    landing_tables = _unique(folder / "landing_tables.csv", LandingTable, "table")
    patterns_path = folder / "landing_files.csv"
    patterns = _read_csv(patterns_path, LandingFilePattern)
    _check_landing_patterns(patterns_path, patterns, landing_tables)
    schedules = _unique(folder / "schedules.csv", Schedule, "name")
    api_sources, nppes_queries = _read_api_metadata(folder, load_configs)
    silver_tables = _unique(folder / "silver_tables.csv", SilverTable, "table")
    sources = (
        {row.table for row in load_configs}
        | set(landing_tables)
        | {REFERENCE_BRONZE_TABLES[name] for name in api_sources}
    )
    silver_columns = _read_csv(folder / "silver_columns.csv", SilverColumn)
    rules = _read_csv(folder / "quality_rules.csv", QualityRule)
    thresholds = _read_csv(folder / "quality_thresholds.csv", QualityThreshold)
    gold_tables = _unique(folder / "gold_tables.csv", GoldTable, "table")
    gold_references = _read_csv(folder / "gold_references.csv", GoldReference)
    _check_silver(folder, silver_tables, sources, silver_columns, rules, thresholds, gold_tables)
    _check_gold(folder, gold_tables, gold_references, silver_tables, silver_columns)
    storage_roles = _unique(folder / STORAGE_ROLES_FILE, StorageRole, "role")
    storage_access_path = folder / STORAGE_ACCESS_FILE
    storage_access = _read_csv(storage_access_path, StorageAccess)
    _check_storage_access(
        storage_access_path, storage_access, storage_roles, silver_tables, gold_tables
    )
    return Metadata(
        folder,
        databases,
        tuple(load_configs),
        policies,
        landing_tables,
        tuple(patterns),
        schedules,
        silver_tables,
        tuple(silver_columns),
        tuple(rules),
        tuple(thresholds),
        gold_tables,
        tuple(gold_references),
        tuple(_read_csv(folder / "catalog.csv", CatalogEntry)),
        tuple(_read_csv(folder / "column_tags.csv", ColumnTags)),
        tuple(_read_csv(folder / "masking.csv", MaskingRule)),
        api_sources,
        nppes_queries,
        storage_access=tuple(storage_access),
        storage_roles=storage_roles,
        x12_identifiers=_read_x12_identifiers(folder / X12_IDENTIFIERS_FILE),
        datasources=_optional(folder / DATASOURCES_FILE, Datasource, "datasource"),
        kpi_targets=_read_kpi_targets(folder / KPI_TARGETS_FILE, gold_tables),
        denial_reasons=_read_denial_reasons(folder / DENIAL_REASONS_FILE),
    )


def _optional(path: Path, model: type[RowT], key: str) -> dict[str, RowT]:
    return _unique(path, model, key) if path.is_file() else {}


def _read_kpi_targets(path: Path, gold_tables: dict[str, GoldTable]) -> tuple[KpiTarget, ...]:
    """kpi_targets.csv is optional; each row must name a KPI mart of gold_tables.csv."""
    if not path.is_file():
        return ()
    rows = _read_csv(path, KpiTarget)
    for row in rows:
        table = gold_tables.get(row.mart)
        if table is None or table.kind != "kpi":
            raise _fail(path, row, "mart", f"{row.mart!r} is not a kpi table of gold_tables.csv")
    return tuple(rows)


def _read_denial_reasons(path: Path) -> tuple[DenialReason, ...]:
    """denial_reasons.csv is optional (no file: no adjustment counts as a denial)."""
    if not path.is_file():
        return ()
    rows = _read_csv(path, DenialReason)
    seen: dict[tuple[str, str], DenialReason] = {}
    for row in rows:
        key = (row.group_code, row.reason_code)
        if key in seen:
            raise _fail(path, row, "reason_code", f"duplicate of line {seen[key].line}")
        seen[key] = row
    return tuple(rows)


def _read_x12_identifiers(path: Path) -> tuple[X12Identifier, ...]:
    """x12_identifiers.csv is optional: without it X12 files are routed by name only."""
    if not path.is_file():
        return ()
    rows = _read_csv(path, X12Identifier)
    seen: dict[tuple[str, str], X12Identifier] = {}
    for row in rows:
        key = (row.qualifier, row.identifier)
        if key in seen and seen[key].datasource != row.datasource:
            raise _fail(
                path,
                row,
                "identifier",
                f"{row.qualifier} {row.identifier} is already hospital "
                f"{seen[key].datasource!r} (line {seen[key].line})",
            )
        seen[key] = row
    return tuple(rows)


def _read_api_metadata(
    folder: Path, load_configs: list[LoadConfig]
) -> tuple[dict[ApiSourceName, ApiSource], tuple[NppesQuery, ...]]:
    """api_sources.csv and nppes_queries.csv; both optional (no file: no reference assets)."""
    path = folder / API_SOURCES_FILE
    sources: dict[ApiSourceName, ApiSource] = {}
    if path.is_file():
        sources = _unique(path, ApiSource, "source")
        _check_api_sources(path, sources, {row.table for row in load_configs})
    queries_path = folder / NPPES_QUERIES_FILE
    queries: tuple[NppesQuery, ...] = ()
    if queries_path.is_file():
        queries = tuple(_unique(queries_path, NppesQuery, "name").values())
    _check_nppes_queries(queries_path, queries, sources, path)
    return sources, queries
