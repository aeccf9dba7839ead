"""Typed, validated view of the metadata/ folder.

Every file is read once at definitions load. A bad value fails there with the file, line and
column in the message, so a typo in a CSV never surfaces as a confusing run failure later.
"""

from __future__ import annotations

import csv
import fnmatch
import re
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Literal, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from dagster._utils.schedules import is_valid_cron_string
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from rcm_assets.errors import MetadataError
from rcm_assets.settings import metadata_dir

IDENTIFIER = r"[A-Za-z_][A-Za-z0-9_]*"
SLUG = r"^[a-z0-9][a-z0-9_-]*$"


class LoadType(StrEnum):
    FULL = "Full"
    INCREMENTAL = "Incremental"


def _flag(value: str) -> bool:
    normalised = value.strip().lower()
    if normalised in {"1", "true", "yes"}:
        return True
    if normalised in {"0", "false", "no"}:
        return False
    raise ValueError(f"{value!r} is not a flag; use 1 or 0")


class _Row(BaseModel):
    model_config = ConfigDict(frozen=True, str_strip_whitespace=True, extra="forbid")

    line: int = Field(exclude=True)


class DatabaseSpec(_Row):
    """metadata/databases.csv: a source database and where its connection URI comes from."""

    database: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")]
    uri_env_var: Annotated[str, Field(pattern=r"^[A-Z][A-Z0-9_]*$")]
    description: str = ""


class LoadConfig(_Row):
    """metadata/load_config.csv: one (hospital database, table) extract into bronze."""

    database: str
    datasource: Annotated[str, Field(pattern=SLUG)]
    tablename: Annotated[str, Field(pattern=rf"^({IDENTIFIER}\.)?{IDENTIFIER}$")]
    loadtype: LoadType
    watermark: Annotated[str | None, Field(pattern=rf"^{IDENTIFIER}$")] = None
    is_active: bool
    targetpath: Annotated[str, Field(pattern=SLUG)]

    @field_validator("watermark", mode="before")
    @classmethod
    def _empty_is_none(cls, value: str | None) -> str | None:
        return value.strip() or None if isinstance(value, str) else value

    @field_validator("is_active", mode="before")
    @classmethod
    def _parse_flag(cls, value: str | bool) -> bool:
        return _flag(value) if isinstance(value, str) else value

    @property
    def schema_name(self) -> str | None:
        return self.tablename.split(".")[0] if "." in self.tablename else None

    @property
    def table(self) -> str:
        return self.tablename.split(".")[-1]


class ArchivePolicy(_Row):
    """metadata/archive_policy.csv: how long a layer's loads stay before moving to archive."""

    layer: Annotated[str, Field(pattern=SLUG)]
    archive_after_days: Annotated[int, Field(ge=0)]


class LandingTable(_Row):
    """metadata/landing_tables.csv: a kind of landing file and the columns its header must have."""

    table: Annotated[str, Field(pattern=rf"^{IDENTIFIER}$")]
    folder: Annotated[str, Field(pattern=SLUG)]
    key_column: Annotated[str, Field(pattern=rf"^{IDENTIFIER}$")]
    normalise_headers: bool
    columns: tuple[str, ...]
    description: str = ""

    @field_validator("normalise_headers", mode="before")
    @classmethod
    def _parse_flag(cls, value: str | bool) -> bool:
        return _flag(value) if isinstance(value, str) else value

    @field_validator("columns", mode="before")
    @classmethod
    def _split_columns(cls, value: str | tuple) -> tuple:
        names = tuple(value.split()) if isinstance(value, str) else value
        if not names or not all(re.fullmatch(IDENTIFIER, name) for name in names):
            raise ValueError("a space-separated list of plain column names is required")
        if len(set(names)) != len(names):
            raise ValueError("a column is listed twice")
        return names


class LandingFilePattern(_Row):
    """metadata/landing_files.csv: which file names belong to a table (and to which datasource)."""

    table: str
    pattern: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.*?\[\]-]+$")]
    datasource: Annotated[str | None, Field(pattern=SLUG)] = None

    @field_validator("datasource", mode="before")
    @classmethod
    def _empty_is_none(cls, value: str | None) -> str | None:
        return value.strip() or None if isinstance(value, str) else value

    def matches(self, name: str) -> bool:
        return fnmatch.fnmatchcase(name, self.pattern)


class Schedule(_Row):
    """metadata/schedules.csv: when scheduled work runs."""

    name: Annotated[str, Field(pattern=rf"^{IDENTIFIER}$")]
    cron: str
    timezone: str = "UTC"
    description: str = ""

    @field_validator("cron")
    @classmethod
    def _valid_cron(cls, value: str) -> str:
        if not is_valid_cron_string(value):
            raise ValueError(f"{value!r} is not a cron expression")
        return value

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}") from None
        return value


class ColumnType(StrEnum):
    STRING = "string"
    KEY = "key"  # `<source value>-<datasource>`, the surrogate key format of every entity
    DATE = "date"
    DATETIME = "datetime"
    DECIMAL = "decimal"
    INTEGER = "integer"


class SilverKind(StrEnum):
    SCD2 = "scd2"
    FULL = "full"


class SilverTable(_Row):
    """metadata/silver_tables.csv: one common-data-model table and how it is kept."""

    table: Annotated[str, Field(pattern=rf"^{IDENTIFIER}$")]
    source: Annotated[str, Field(pattern=rf"^{IDENTIFIER}$")]
    kind: SilverKind
    key: Annotated[str, Field(pattern=rf"^{IDENTIFIER}$")]
    order_by: Annotated[str | None, Field(pattern=rf"^{IDENTIFIER}$")] = None
    retire_absent: bool = False
    default_datasource: Annotated[str | None, Field(pattern=SLUG)] = None
    description: str = ""

    @field_validator("order_by", "default_datasource", mode="before")
    @classmethod
    def _empty_is_none(cls, value: str | None) -> str | None:
        return value.strip() or None if isinstance(value, str) else value

    @field_validator("retire_absent", mode="before")
    @classmethod
    def _parse_flag(cls, value: str | bool) -> bool:
        return (_flag(value) if value.strip() else False) if isinstance(value, str) else value


class SilverColumn(_Row):
    """metadata/silver_columns.csv: a silver column, its type and the bronze column it comes from.

    A row with a datasource overrides the source column for that datasource only.
    """

    table: str
    column: Annotated[str, Field(pattern=rf"^{IDENTIFIER}$")]
    type: ColumnType
    source: Annotated[str, Field(pattern=rf"^{IDENTIFIER}$")]
    datasource: Annotated[str | None, Field(pattern=SLUG)] = None
    references: Annotated[str | None, Field(pattern=rf"^{IDENTIFIER}$")] = None
    description: str = ""

    @field_validator("datasource", "references", mode="before")
    @classmethod
    def _empty_is_none(cls, value: str | None) -> str | None:
        return value.strip() or None if isinstance(value, str) else value


class RuleCheck(StrEnum):
    NOT_NULL = "not_null"  # the column is null
    NOT_TEXT_NULL = "not_text_null"  # the column is the text 'null', any case
    NOT_BEFORE = "not_before"  # the first column is before the second
    NOT_GREATER = "not_greater"  # the first column is greater than the second
    NON_NEGATIVE = "non_negative"  # the column is below zero


RULE_ARITY = {
    RuleCheck.NOT_NULL: 1,
    RuleCheck.NOT_TEXT_NULL: 1,
    RuleCheck.NOT_BEFORE: 2,
    RuleCheck.NOT_GREATER: 2,
    RuleCheck.NON_NEGATIVE: 1,
}


class QualityRule(_Row):
    """metadata/quality_rules.csv: a row-level rule; `quarantine` keeps the row out of gold."""

    table: str
    rule: Annotated[str, Field(pattern=rf"^{IDENTIFIER}$")]
    check: RuleCheck
    columns: tuple[str, ...]
    action: Literal["quarantine", "flag"]
    description: str = ""

    @field_validator("columns", mode="before")
    @classmethod
    def _split(cls, value: str | tuple) -> tuple:
        return tuple(value.split()) if isinstance(value, str) else value


class QualityThreshold(_Row):
    """metadata/quality_thresholds.csv: when a silver asset check fails, and whether it blocks."""

    table: str  # a silver table or `*`
    check: Literal["quarantine_rate", "duplicate_current_keys", "orphan_rate"]
    max_rate: Annotated[float, Field(ge=0, le=1)]
    blocking: bool
    description: str = ""

    @field_validator("blocking", mode="before")
    @classmethod
    def _parse_flag(cls, value: str | bool) -> bool:
        return _flag(value) if isinstance(value, str) else value


class GoldTable(_Row):
    """metadata/gold_tables.csv: a gold table; dimensions are built from these rows alone."""

    table: Annotated[str, Field(pattern=rf"^{IDENTIFIER}$")]
    kind: Literal["dimension", "fact", "kpi", "masked"]
    source: Annotated[str | None, Field(pattern=rf"^{IDENTIFIER}$")] = None
    key: Annotated[str | None, Field(pattern=rf"^{IDENTIFIER}$")] = None
    columns: tuple[str, ...] = ()
    consumer: Annotated[str | None, Field(pattern=SLUG)] = None  # masked tables: for whom
    max_age_hours: Annotated[float, Field(gt=0)]
    description: str = ""

    @field_validator("source", "key", "consumer", mode="before")
    @classmethod
    def _empty_is_none(cls, value: str | None) -> str | None:
        return value.strip() or None if isinstance(value, str) else value

    @field_validator("columns", mode="before")
    @classmethod
    def _split(cls, value: str | tuple) -> tuple:
        return tuple(value.split()) if isinstance(value, str) else value


class CatalogEntry(_Row):
    """metadata/catalog.csv: owner and tags of assets; `*` in `asset` matches any name."""

    asset: Annotated[str, Field(pattern=r"^[a-z_]+/[A-Za-z0-9_*]+$")]
    owner: Annotated[str, Field(pattern=r"^(team:[A-Za-z0-9_-]+|[^@\s]+@[^@\s]+)$")]
    tags: tuple[str, ...] = ()
    description: str = ""

    @field_validator("tags", mode="before")
    @classmethod
    def _split(cls, value: str | tuple) -> tuple:
        return tuple(value.split()) if isinstance(value, str) else value

    def matches(self, asset: str) -> bool:
        return fnmatch.fnmatchcase(asset, self.asset)

    @property
    def dagster_tags(self) -> dict[str, str]:
        """`layer:gold pii` → {"layer": "gold", "pii": ""}."""
        return {name: value for name, _, value in (tag.partition(":") for tag in self.tags)}


class ColumnTags(_Row):
    """metadata/column_tags.csv: classification of a column (pii, phi, masked, public)."""

    asset: Annotated[str, Field(pattern=r"^[a-z_]+/[A-Za-z0-9_]+$")]
    column: Annotated[str, Field(pattern=rf"^{IDENTIFIER}$")]
    tags: tuple[str, ...]

    @field_validator("tags", mode="before")
    @classmethod
    def _split(cls, value: str | tuple) -> tuple:
        return tuple(value.split()) if isinstance(value, str) else value


class MaskingRule(_Row):
    """metadata/masking.csv: how a column is masked for a consumer."""

    consumer: Annotated[str, Field(pattern=SLUG)]
    table: str
    column: Annotated[str, Field(pattern=rf"^{IDENTIFIER}$")]
    rule: Literal["last4", "redact", "year"]


class GoldReference(_Row):
    """metadata/gold_references.csv: a gold foreign key and the dimension it points to."""

    table: str
    column: Annotated[str, Field(pattern=rf"^{IDENTIFIER}$")]
    dimension: str
    dimension_key: Annotated[str, Field(pattern=rf"^{IDENTIFIER}$")]
    enrich_columns: tuple[str, ...] = ()  # dimension columns copied onto the table's rows

    @field_validator("enrich_columns", mode="before")
    @classmethod
    def _split(cls, value: str | tuple) -> tuple:
        return tuple(value.split()) if isinstance(value, str) else value


class ApiSourceName(StrEnum):
    """The reference APIs the project has a client for; the row names which one it configures."""

    NPPES = "nppes"  # CMS NPI Registry
    WHO_ICD = "who_icd"  # WHO ICD-10 API (or the CMS ICD-10-CM order file as a bulk fallback)


class ApiMode(StrEnum):
    REPLAY = "replay"  # recorded-format fixtures served in process (offline demo, tests)
    LIVE = "live"  # the real URLs


HTTPS_URL = r"^https://[^\s/?#]+(/[^\s?#]*)?$"


class ApiSource(_Row):
    """metadata/api_sources.csv: how one reference API is reached and how politely.

    Settings that do not apply to a source stay empty (e.g. `release` for nppes).
    """

    source: ApiSourceName
    mode: ApiMode
    base_url: Annotated[str, Field(pattern=HTTPS_URL)]
    token_url: Annotated[str | None, Field(pattern=HTTPS_URL)] = None
    rate_limit_per_second: Annotated[float, Field(gt=0, le=100)]
    max_concurrency: Annotated[int, Field(ge=1, le=16)] = 1
    page_size: Annotated[int | None, Field(ge=1, le=200)] = None
    timeout_seconds: Annotated[float, Field(gt=0, le=300)]
    max_retries: Annotated[int, Field(ge=0, le=10)]
    backoff_seconds: Annotated[float, Field(ge=0, le=60)]
    release: Annotated[str | None, Field(pattern=r"^[A-Za-z0-9._-]+$")] = None
    root_codes: tuple[str, ...] = ()
    npi_source: Annotated[str | None, Field(pattern=rf"^{IDENTIFIER}\.{IDENTIFIER}$")] = None
    landing_folder: Annotated[str | None, Field(pattern=SLUG)] = None
    description: str = ""

    @field_validator(
        "token_url",
        "max_concurrency",
        "page_size",
        "release",
        "npi_source",
        "landing_folder",
        mode="before",
    )
    @classmethod
    def _empty_is_none(cls, value: object) -> object:
        return value.strip() or None if isinstance(value, str) else value

    @field_validator("root_codes", mode="before")
    @classmethod
    def _split_codes(cls, value: str | tuple) -> tuple:
        codes = tuple(value.split()) if isinstance(value, str) else value
        if not all(re.fullmatch(r"[A-Z0-9][A-Z0-9.-]*", code) for code in codes):
            raise ValueError(
                "a space-separated list of chapter or block codes (I, A00-B99) is expected"
            )
        return codes

    @property
    def npi_table(self) -> str | None:
        return self.npi_source.split(".")[0] if self.npi_source else None

    @property
    def npi_column(self) -> str | None:
        return self.npi_source.split(".")[1] if self.npi_source else None


class NppesQuery(_Row):
    """metadata/nppes_queries.csv: a registry search beyond the EMR providers' own NPIs."""

    name: Annotated[str, Field(pattern=rf"^{IDENTIFIER}$")]
    enumeration_type: Literal["NPI-1", "NPI-2"] | None = None
    taxonomy_description: Annotated[str | None, Field(pattern=r"^[A-Za-z0-9 ,&/()'.*-]+$")] = None
    state: Annotated[str | None, Field(pattern=r"^[A-Z]{2}$")] = None
    city: Annotated[str | None, Field(pattern=r"^[A-Za-z .'*-]+$")] = None
    postal_code: Annotated[str | None, Field(pattern=r"^[0-9]{5}([0-9]{4})?$")] = None
    description: str = ""

    @field_validator(
        "enumeration_type", "taxonomy_description", "state", "city", "postal_code", mode="before"
    )
    @classmethod
    def _empty_is_none(cls, value: str | None) -> str | None:
        return value.strip() or None if isinstance(value, str) else value

    def criteria(self) -> dict[str, str]:
        """The registry's query parameters, without paging."""
        names = ("enumeration_type", "taxonomy_description", "state", "city", "postal_code")
        return {name: value for name in names if (value := getattr(self, name)) is not None}


PERMISSIONS = r"^[r-][w-][x-]$"  # POSIX permissions of one ACL entry, e.g. r-x; --- for none


class StorageRole(_Row):
    """metadata/storage_roles.csv: a role of the storage ACLs and where its principal comes from.

    The Entra ID object id differs per environment, so only the variable's name is metadata.
    """

    role: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$")]
    principal_env_var: Annotated[str, Field(pattern=r"^[A-Z][A-Z0-9_]*$")]
    principal_type: Literal["group", "user"] = "group"  # user: a service principal or identity
    description: str = ""


class StorageAccess(_Row):
    """metadata/storage_access.csv: a role's permissions on a folder of the lake or landing store.

    `path` is relative to the store's root (`.` for the root itself). A folder inherits each role
    from its nearest listed ancestor; a row overrides it for that role (`---` takes it away).
    """

    store: Literal["lake", "landing"]
    path: str
    role: str
    permissions: Annotated[str, Field(pattern=PERMISSIONS)]
    description: str = ""

    @field_validator("path", mode="before")
    @classmethod
    def _relative_path(cls, value: str) -> str:
        """`.`, `` and `/` are the root (stored as ``); `gold/dim_patient/` → `gold/dim_patient`."""
        text = value.strip() if isinstance(value, str) else value
        if not isinstance(text, str):
            return text
        parts = [part for part in text.strip("/").split("/") if part not in ("", ".")]
        if any(part == ".." for part in parts):
            raise ValueError("`..` is not allowed; give a path below the store's root")
        if not all(re.fullmatch(r"[A-Za-z0-9_-]+", part) for part in parts):
            raise ValueError("a folder path like gold/dim_patient (letters, digits, _ and -)")
        return "/".join(parts)

    @property
    def parts(self) -> tuple[str, ...]:
        return tuple(self.path.split("/")) if self.path else ()


RowT = TypeVar("RowT", bound=_Row)


def _read_csv(path: Path, model: type[RowT]) -> list[RowT]:
    if not path.is_file():
        raise MetadataError(f"{path}: metadata file is missing")
    expected = [name for name in model.model_fields if name != "line"]
    required = [n for n in expected if model.model_fields[n].is_required()]
    with path.open(newline="", encoding="utf-8") as handle:
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
        """The partitions of a landing table; empty when the table is not per datasource."""
        return sorted({p.datasource for p in self.patterns_for(table) if p.datasource})

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


API_SOURCES_FILE = "api_sources.csv"
NPPES_QUERIES_FILE = "nppes_queries.csv"
# The bronze tables the reference-API assets write (bronze/reference.py), by source.
REFERENCE_BRONZE_TABLES = {ApiSourceName.NPPES: "npi_extract", ApiSourceName.WHO_ICD: "icd_codes"}


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
    storage_access = _read_storage_access(folder, storage_roles, silver_tables, gold_tables)
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
        storage_access=storage_access,
        storage_roles=storage_roles,
    )


STORAGE_ROLES_FILE = "storage_roles.csv"
STORAGE_ACCESS_FILE = "storage_access.csv"
LAKE_LAYERS = ("bronze", "silver", "gold", "audit", "archive")  # the lake root's folders


def _read_storage_access(
    folder: Path,
    roles: dict[str, StorageRole],
    silver: dict[str, SilverTable],
    gold: dict[str, GoldTable],
) -> tuple[StorageAccess, ...]:
    """storage_access.csv, checked against the roles, the lake's layers and its table names."""
    path = folder / STORAGE_ACCESS_FILE
    rows = _read_csv(path, StorageAccess)
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
    return tuple(rows)


def _read_api_metadata(
    folder: Path, load_configs: list[LoadConfig]
) -> tuple[dict[ApiSourceName, ApiSource], tuple[NppesQuery, ...]]:
    """api_sources.csv and nppes_queries.csv; both optional (no file: no reference assets)."""
    path = folder / API_SOURCES_FILE
    sources: dict[ApiSourceName, ApiSource] = {}
    if path.is_file():
        sources = _unique(path, ApiSource, "source")
        emr_tables = {row.table for row in load_configs}
        for row in sources.values():
            _check_api_source(path, row, emr_tables)
    queries_path = folder / NPPES_QUERIES_FILE
    queries: tuple[NppesQuery, ...] = ()
    if queries_path.is_file():
        queries = tuple(_unique(queries_path, NppesQuery, "name").values())
    for query in queries:
        if not (query.taxonomy_description or query.city or query.postal_code):
            raise _fail(
                queries_path,
                query,
                "city",
                "give a city, postal_code or taxonomy_description: the registry refuses a "
                "search by state or enumeration type alone",
            )
    if queries and ApiSourceName.NPPES not in sources:
        raise MetadataError(f"{queries_path}: NPPES queries need an nppes row in {path}")
    return sources, queries


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
    rules_path = folder / "quality_rules.csv"
    for rule in rules:
        if rule.table not in tables:
            raise _fail(rules_path, rule, "table", f"unknown silver table {rule.table!r}")
        if len(rule.columns) != RULE_ARITY[rule.check]:
            raise _fail(
                rules_path,
                rule,
                "columns",
                f"{rule.check.value} takes {RULE_ARITY[rule.check]} column(s)",
            )
        unknown = [name for name in rule.columns if name not in defined[rule.table]]
        if unknown:
            raise _fail(
                rules_path,
                rule,
                "columns",
                f"{', '.join(unknown)} not a column of {rule.table} in silver_columns.csv",
            )
    for threshold in thresholds:
        if threshold.table != "*" and threshold.table not in {*tables, *gold_tables}:
            raise _fail(
                folder / "quality_thresholds.csv",
                threshold,
                "table",
                f"unknown silver or gold table {threshold.table!r}",
            )


def _unique(path: Path, model: type[RowT], key: str) -> dict[str, RowT]:
    rows: dict[str, RowT] = {}
    for row in _read_csv(path, model):
        value = getattr(row, key)
        if value in rows:
            raise _fail(path, row, key, f"duplicate of line {rows[value].line}")
        rows[value] = row
    return rows


def _check_landing_patterns(
    path: Path, patterns: list[LandingFilePattern], tables: dict[str, LandingTable]
) -> None:
    per_datasource: dict[str, bool] = {}
    for row in patterns:
        if row.table not in tables:
            raise _fail(path, row, "table", f"unknown table {row.table!r}; see landing_tables.csv")
        partitioned = row.datasource is not None
        if per_datasource.setdefault(row.table, partitioned) != partitioned:
            raise _fail(
                path,
                row,
                "datasource",
                f"give every pattern of {row.table!r} a datasource, or none of them",
            )
    for name, table in tables.items():
        if table.key_column not in table.columns:
            raise MetadataError(
                f"{path.with_name('landing_tables.csv')}, line {table.line}, column key_column: "
                f"{table.key_column!r} is not one of the table's columns"
            )
        if name not in per_datasource:
            raise MetadataError(
                f"{path}: no file pattern for landing table {name!r} (landing_tables.csv, line "
                f"{table.line})"
            )
