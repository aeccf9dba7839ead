"""One pydantic model per metadata file: a row, its columns and what each may hold.

A model checks a row on its own; what needs other rows or other files is in checks.py.
"""

from __future__ import annotations

import fnmatch
from enum import StrEnum
from typing import Annotated, Literal

import polars as pl
from pydantic import BaseModel, ConfigDict, Field

from rcm_assets.metadata.fields import (
    IDENTIFIER,
    PERMISSIONS,
    ColumnNames,
    CronExpression,
    EmptyIsNone,
    EnvVarName,
    Flag,
    FlagEmptyIsFalse,
    FolderPath,
    HttpsUrl,
    IcdRootCodes,
    Identifier,
    NoneIfEmpty,
    Slug,
    TimeZoneName,
    Words,
)

API_SOURCES_FILE = "api_sources.csv"
NPPES_QUERIES_FILE = "nppes_queries.csv"
STORAGE_ROLES_FILE = "storage_roles.csv"
STORAGE_ACCESS_FILE = "storage_access.csv"
X12_IDENTIFIERS_FILE = "x12_identifiers.csv"
DATASOURCES_FILE = "datasources.csv"
KPI_TARGETS_FILE = "kpi_targets.csv"
DENIAL_REASONS_FILE = "denial_reasons.csv"
LAKE_LAYERS = ("bronze", "silver", "gold", "audit", "archive")  # the lake root's folders


class LoadType(StrEnum):
    FULL = "Full"
    INCREMENTAL = "Incremental"


class _Row(BaseModel):
    model_config = ConfigDict(frozen=True, str_strip_whitespace=True, extra="forbid")

    line: int = Field(exclude=True)


class DatabaseSpec(_Row):
    """metadata/databases.csv: a source database and where its connection URI comes from."""

    database: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")]
    uri_env_var: EnvVarName
    description: str = ""
    # A watermark further than this after now is refused (a typo such as year 2099 would stop
    # every later change from being extracted); allows for the source server's clock and zone.
    future_watermark_hours: Annotated[float, Field(ge=0)] = 24.0
    # Extracts from this database at once, across every run and machine (Dagster pool
    # `emr:<database>`): the hospital's EMR serves its clinicians first.
    max_concurrent_extracts: Annotated[int, Field(ge=1)] = 2


class LoadConfig(_Row):
    """metadata/load_config.csv: one (hospital database, table) extract into bronze."""

    database: str
    datasource: Slug
    tablename: Annotated[str, Field(pattern=rf"^({IDENTIFIER}\.)?{IDENTIFIER}$")]
    loadtype: LoadType
    watermark: NoneIfEmpty[Identifier] = None
    is_active: Flag
    targetpath: Slug
    # Source columns that may be gone from the source although bronze has them (a schema
    # change the team accepted); any other vanished column stops the load.
    dropped_columns: Words = ()

    @property
    def schema_name(self) -> str | None:
        return self.tablename.split(".")[0] if "." in self.tablename else None

    @property
    def table(self) -> str:
        return self.tablename.split(".")[-1]


class ArchivePolicy(_Row):
    """metadata/archive_policy.csv: how long a layer's loads stay before moving to archive."""

    layer: Slug
    archive_after_days: Annotated[int, Field(ge=0)]


class LandingFormat(StrEnum):
    CSV = "csv"  # a header and records: parsed in bulk, record by record where it must
    X12 = "x12"  # ASC X12 837 / 835 interchanges: parsed and validated with pyx12


class LandingTable(_Row):
    """metadata/landing_tables.csv: a kind of landing file and, for CSV, the columns its header
    must have (an X12 file's structure comes from its implementation guide)."""

    table: Identifier
    folder: Slug
    key_column: NoneIfEmpty[Identifier] = None
    normalise_headers: FlagEmptyIsFalse = False
    columns: NoneIfEmpty[ColumnNames] = None
    description: str = ""
    format: LandingFormat = LandingFormat.CSV


class X12Identifier(_Row):
    """metadata/x12_identifiers.csv: a payee / billing-provider NPI or TIN and its hospital, so
    an X12 file whose name does not say its hospital is routed by what it names."""

    datasource: Slug
    qualifier: Literal["npi", "tin"]
    identifier: Annotated[str, Field(pattern=r"^[0-9]{9,10}$")]
    description: str = ""


class Datasource(_Row):
    """metadata/datasources.csv: how a datasource (hospital) is shown to people."""

    datasource: Slug
    display_name: str
    description: str = ""


class KpiTarget(_Row):
    """metadata/kpi_targets.csv: a headline KPI of the report, its target and where the
    benchmark comes from."""

    mart: Identifier
    kpi: Identifier
    label: str
    unit: Literal["percent", "days", "currency", "count"]
    target: NoneIfEmpty[float] = None
    better: Literal["higher", "lower"]
    source: str = ""


class DenialReason(_Row):
    """metadata/denial_reasons.csv: a CARC that denies (rather than adjusts) a claim or line,
    its category and whether the provider could have avoided it. `*` as group: any group."""

    group_code: Literal["CO", "PR", "OA", "PI", "CR", "*"]
    reason_code: Annotated[str, Field(pattern=r"^[A-Z0-9]{1,5}$")]
    category: Slug
    avoidable: Flag
    rationale: str = ""


class LandingFilePattern(_Row):
    """metadata/landing_files.csv: which file names belong to a table (and to which datasource)."""

    table: str
    pattern: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.*?\[\]-]+$")]
    datasource: NoneIfEmpty[Slug] = None

    def matches(self, name: str) -> bool:
        """Case-insensitively: `HOSPITAL1_JAN.CSV` from a Windows system is `hospital1_*.csv`."""
        return fnmatch.fnmatchcase(name.lower(), self.pattern.lower())


class Schedule(_Row):
    """metadata/schedules.csv: when scheduled work runs."""

    name: Identifier
    cron: CronExpression
    timezone: TimeZoneName = "UTC"
    description: str = ""


class ColumnType(StrEnum):
    """The type of a silver column, and what it is in Polars and in the catalog's display."""

    STRING = "string"
    KEY = "key"  # `<source value>-<datasource>`, the surrogate key format of every entity
    DATE = "date"
    DATETIME = "datetime"
    DECIMAL = "decimal"
    INTEGER = "integer"

    @property
    def polars_type(self) -> pl.DataType | type[pl.DataType]:
        return _POLARS_TYPES[self]

    @property
    def sql_type(self) -> str:
        """The type as the catalog and data dictionary show it (Spark / Delta SQL names)."""
        return _SQL_TYPES[self]


_POLARS_TYPES: dict[ColumnType, pl.DataType | type[pl.DataType]] = {
    ColumnType.STRING: pl.String,
    ColumnType.KEY: pl.String,
    ColumnType.DATE: pl.Date,
    # Naive, microseconds: the sources' timestamp text has no time zone, and is parsed so.
    ColumnType.DATETIME: pl.Datetime("us"),
    ColumnType.DECIMAL: pl.Decimal(18, 2),
    ColumnType.INTEGER: pl.Int64,
}
_SQL_TYPES = {
    ColumnType.STRING: "string",
    ColumnType.KEY: "string",
    ColumnType.DATE: "date",
    ColumnType.DATETIME: "timestamp",
    ColumnType.DECIMAL: "decimal(18,2)",
    ColumnType.INTEGER: "bigint",
}


class SilverKind(StrEnum):
    SCD2 = "scd2"
    FULL = "full"


class SilverTable(_Row):
    """metadata/silver_tables.csv: one common-data-model table and how it is kept."""

    table: Identifier
    source: Identifier
    kind: SilverKind
    key: Identifier
    order_by: NoneIfEmpty[Identifier] = None
    retire_absent: FlagEmptyIsFalse = False
    default_datasource: NoneIfEmpty[Slug] = None
    description: str = ""
    # A full snapshot (a `full` table, or `retire_absent`) with fewer keys than this share of
    # the datasource's current rows is held back, not applied: a truncated or empty extract
    # would otherwise retire the missing rows.
    min_snapshot_share: Annotated[float, Field(ge=0, le=1)] = 0.5
    # The rcm_assets.x12.views view that turns the bronze X12 segments into this table's rows.
    view: NoneIfEmpty[Identifier] = None

    @property
    def is_snapshot(self) -> bool:
        return self.kind is SilverKind.FULL or self.retire_absent


class SilverColumn(_Row):
    """metadata/silver_columns.csv: a silver column, its type and the bronze column it comes from.

    A row with a datasource overrides the source column for that datasource only.
    """

    table: str
    column: Identifier
    type: ColumnType
    source: Identifier
    datasource: NoneIfEmpty[Slug] = None
    references: NoneIfEmpty[Identifier] = None
    description: str = ""


class RuleCheck(StrEnum):
    NOT_NULL = "not_null"  # the column is null
    NOT_TEXT_NULL = "not_text_null"  # the column is the text 'null', any case
    NOT_BEFORE = "not_before"  # the first column is before the second
    NOT_GREATER = "not_greater"  # the first column is greater than the second
    NON_NEGATIVE = "non_negative"  # the column is below zero
    ZERO = "zero"  # the column is not zero (e.g. what a remittance is out of balance by)


RULE_ARITY = {
    RuleCheck.NOT_NULL: 1,
    RuleCheck.NOT_TEXT_NULL: 1,
    RuleCheck.NOT_BEFORE: 2,
    RuleCheck.NOT_GREATER: 2,
    RuleCheck.NON_NEGATIVE: 1,
    RuleCheck.ZERO: 1,
}


class Severity(StrEnum):
    """How much a rule's failures matter to the gold tables it impacts (as dbt / Tuva tag tests)."""

    ERROR = "error"  # the impacted tables are wrong or incomplete while rows fail
    WARN = "warn"  # worth a look; the impacted tables stay usable


class QualityRule(_Row):
    """metadata/quality_rules.csv: a row-level rule; `quarantine` keeps the row out of gold.

    `impacts` lists the gold tables the rule's failures change, so a failure can be reported
    against what consumers read rather than only against the silver table.
    """

    table: str
    rule: Identifier
    check: RuleCheck
    columns: Words
    action: Literal["quarantine", "flag"]
    severity: Severity
    impacts: Words = ()
    description: str = ""


class QualityThreshold(_Row):
    """metadata/quality_thresholds.csv: when a silver asset check fails, and whether it blocks."""

    table: str  # a silver table or `*`
    check: Literal["quarantine_rate", "duplicate_current_keys", "orphan_rate", "value_bounds"]
    max_rate: Annotated[float, Field(ge=0, le=1)]
    blocking: Flag
    description: str = ""


class GoldTable(_Row):
    """metadata/gold_tables.csv: a gold table; dimensions are built from these rows alone."""

    table: Identifier
    kind: Literal["dimension", "fact", "kpi", "masked"]
    source: NoneIfEmpty[Identifier] = None
    key: NoneIfEmpty[Identifier] = None
    columns: Words = ()
    consumer: NoneIfEmpty[Slug] = None  # masked tables: for whom
    max_age_hours: Annotated[float, Field(gt=0)]
    description: str = ""


class CatalogEntry(_Row):
    """metadata/catalog.csv: owner and tags of assets; `*` in `asset` matches any name."""

    asset: Annotated[str, Field(pattern=r"^[a-z_]+/[A-Za-z0-9_*]+$")]
    owner: Annotated[str, Field(pattern=r"^(team:[A-Za-z0-9_-]+|[^@\s]+@[^@\s]+)$")]
    tags: Words = ()
    description: str = ""

    def matches(self, asset: str) -> bool:
        return fnmatch.fnmatchcase(asset, self.asset)

    @property
    def dagster_tags(self) -> dict[str, str]:
        """`layer:gold pii` → {"layer": "gold", "pii": ""}."""
        return {name: value for name, _, value in (tag.partition(":") for tag in self.tags)}


class ColumnTags(_Row):
    """metadata/column_tags.csv: classification of a column (pii, phi, masked, public)."""

    asset: Annotated[str, Field(pattern=r"^[a-z_]+/[A-Za-z0-9_]+$")]
    column: Identifier
    tags: Words


class MaskingRule(_Row):
    """metadata/masking.csv: how a column is masked for a consumer."""

    consumer: Slug
    table: str
    column: Identifier
    rule: Literal["last4", "redact", "year"]


class GoldReference(_Row):
    """metadata/gold_references.csv: a gold foreign key and the dimension it points to."""

    table: str
    column: Identifier
    dimension: str
    dimension_key: Identifier
    enrich_columns: Words = ()  # dimension columns copied onto the table's rows


class ApiSourceName(StrEnum):
    """The reference APIs the project has a client for; the row names which one it configures."""

    NPPES = "nppes"  # CMS NPI Registry
    WHO_ICD = "who_icd"  # WHO ICD-10 API (or the CMS ICD-10-CM order file as a bulk fallback)


# The bronze tables the reference-API assets write (bronze/reference.py), by source.
REFERENCE_BRONZE_TABLES = {ApiSourceName.NPPES: "npi_extract", ApiSourceName.WHO_ICD: "icd_codes"}


class ApiMode(StrEnum):
    REPLAY = "replay"  # recorded-format fixtures served in process (offline demo, tests)
    LIVE = "live"  # the real URLs


class ApiSource(_Row):
    """metadata/api_sources.csv: how one reference API is reached and how politely.

    Settings that do not apply to a source stay empty (e.g. `release` for nppes).
    """

    source: ApiSourceName
    mode: ApiMode
    base_url: HttpsUrl
    token_url: NoneIfEmpty[HttpsUrl] = None
    rate_limit_per_second: Annotated[float, Field(gt=0, le=100)]
    # An empty cell is None and so refused: the default is for a file without the column.
    max_concurrency: Annotated[int, Field(ge=1, le=16), EmptyIsNone] = 1
    page_size: NoneIfEmpty[Annotated[int, Field(ge=1, le=200)]] = None
    timeout_seconds: Annotated[float, Field(gt=0, le=300)]
    max_retries: Annotated[int, Field(ge=0, le=10)]
    backoff_seconds: Annotated[float, Field(ge=0, le=60)]
    release: NoneIfEmpty[Annotated[str, Field(pattern=r"^[A-Za-z0-9._-]+$")]] = None
    root_codes: IcdRootCodes = ()
    npi_source: NoneIfEmpty[Annotated[str, Field(pattern=rf"^{IDENTIFIER}\.{IDENTIFIER}$")]] = None
    landing_folder: NoneIfEmpty[Slug] = None
    description: str = ""

    @property
    def npi_table(self) -> str | None:
        return self.npi_source.split(".")[0] if self.npi_source else None

    @property
    def npi_column(self) -> str | None:
        return self.npi_source.split(".")[1] if self.npi_source else None


class NppesQuery(_Row):
    """metadata/nppes_queries.csv: a registry search beyond the EMR providers' own NPIs."""

    name: Identifier
    enumeration_type: NoneIfEmpty[Literal["NPI-1", "NPI-2"]] = None
    taxonomy_description: NoneIfEmpty[
        Annotated[str, Field(pattern=r"^[A-Za-z0-9 ,&/()'.*-]+$")]
    ] = None
    state: NoneIfEmpty[Annotated[str, Field(pattern=r"^[A-Z]{2}$")]] = None
    city: NoneIfEmpty[Annotated[str, Field(pattern=r"^[A-Za-z .'*-]+$")]] = None
    postal_code: NoneIfEmpty[Annotated[str, Field(pattern=r"^[0-9]{5}([0-9]{4})?$")]] = None
    description: str = ""

    def criteria(self) -> dict[str, str]:
        """The registry's query parameters, without paging."""
        names = ("enumeration_type", "taxonomy_description", "state", "city", "postal_code")
        return {name: value for name in names if (value := getattr(self, name)) is not None}


class StorageRole(_Row):
    """metadata/storage_roles.csv: a role of the storage ACLs and where its principal comes from.

    The Entra ID object id differs per environment, so only the variable's name is metadata.
    """

    role: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$")]
    principal_env_var: EnvVarName
    principal_type: Literal["group", "user"] = "group"  # user: a service principal or identity
    description: str = ""


class StorageAccess(_Row):
    """metadata/storage_access.csv: a role's permissions on a folder of the lake or landing store.

    `path` is relative to the store's root (`.` for the root itself). A folder inherits each role
    from its nearest listed ancestor; a row overrides it for that role (`---` takes it away).
    """

    store: Literal["lake", "landing"]
    path: FolderPath
    role: str
    permissions: Annotated[str, Field(pattern=PERMISSIONS)]
    description: str = ""

    @property
    def parts(self) -> tuple[str, ...]:
        return tuple(self.path.split("/")) if self.path else ()
