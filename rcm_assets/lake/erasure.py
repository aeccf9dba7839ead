"""`rcm lake erase-patient`: remove one patient's rows from the lake (right to erasure).

What is erased, for a patient key `<source id>-<datasource>`:

- silver: every table with a patient column in the metadata (the patients table's key, and every
  column whose `references` is patients: encounters, transactions, claims), all SCD2 versions;
- gold: every gold table whose schema has one of those columns (dim_patient,
  fact_transactions). KPI marts hold aggregates, no patient rows; the next gold run refreshes them;
- with `include_raw`: the bronze rows silver built those rows from, and their copies under
  `archive/`: for each silver table above, its bronze slices of the key's datasource, matched on
  the bronze column the patient column comes from (`metadata.source_column`: `PatientID` for
  hos-a patients, `ID` for hos-b, `PatientID` in encounters, transactions and claims), trimmed as
  silver trims it, plus the datasource.

How:

- The key never enters the Delta log. Each delete predicate compares a sha256
  (`encode(sha256("patient_key"), 'hex') = '<hash>'`; bronze hashes
  `<trimmed source id>-<datasource>`), so the predicate delta-rs records names only the hash; the
  only other literal, a datasource from the metadata, is quoted.
- Each table is then vacuumed with retention 0 (`enforce_retention_duration=False`, full), so no
  data file holding the rows stays in current storage. That ends time travel for these tables:
  older versions can no longer be read or restored. Run it with writers stopped; a zero-retention
  vacuum deletes files a running writer has written but not committed yet.
- An erasure record goes to `audit/erasures`: an erasure id, the sha256 of the key (never the key
  or any personal data), the tables with their row counts, the time, and the dry_run and
  include_raw flags. A dry run changes no table holding patient data; it is recorded (dry_run =
  true) as a request that looked the patient up.

Out of scope:

- object-store soft delete, snapshots and backups, which keep their own copies;
- the Delta log of commits before the erasure: per-file min/max statistics can name the key (or
  the source id) of files the erasure removed. The log is not cleaned up on purpose, because
  silver reads which bronze loads it consumed from its commits, and forgetting them would merge
  old loads again. The result counts the log files that still mention the key (local lakes);
- landing files in `landing/processed/`, raw text in `audit/rejected_rows`, and the source EMR:
  erase the patient at the source first, or the next extract brings them back;
- the hash of a short key is a pseudonym, not anonymous; a keyed hash would need a managed secret.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime

import polars as pl
from deltalake import CommitProperties, DeltaTable

from rcm_assets.errors import RcmError
from rcm_assets.lake import delta
from rcm_assets.lake import predicates as P
from rcm_assets.lake.addresses import AuditTable, LakeAddresses
from rcm_assets.lake.operations import vacuum_table
from rcm_assets.metadata import Metadata, load_metadata

PATIENTS = "patients"
DATASOURCE = "datasource"
# The whitespace silver strips from a source id before building a key, in both engines' terms.
_WHITESPACE = " \t\n\r"
_SQL_WHITESPACE = P.function(
    "concat", P.literal(" "), *(P.function("chr", P.number(n)) for n in (9, 10, 13))
)
ERASURE_SCHEMA = pl.Schema(
    {
        "erasure_id": pl.String,
        "subject_sha256": pl.String,
        "requested_at": pl.Datetime("us", "UTC"),
        "dry_run": pl.Boolean,
        "include_raw": pl.Boolean,
        "tables": pl.List(pl.String),
        "row_counts": pl.List(pl.Int64),
        "total_rows": pl.Int64,
        "files_removed": pl.Int64,
    }
)


@dataclass(frozen=True)
class ErasureTarget:
    """One table holding the patient: how delta-rs deletes the rows and how Polars counts them."""

    table: str
    predicate: str  # hash-based SQL for DeltaTable.delete; never contains the key
    match: pl.Expr
    needle: str  # the value log statistics would show: the key, or the bronze source id


@dataclass(frozen=True)
class ErasureResult:
    erasure_id: str
    subject_sha256: str
    dry_run: bool
    include_raw: bool
    rows: dict[str, int]
    files_removed: dict[str, int] = field(default_factory=dict)
    log_files_mentioning: dict[str, int] = field(default_factory=dict)

    @property
    def total_rows(self) -> int:
        return sum(self.rows.values())


def subject_hash(value: str) -> str:
    return hashlib.sha256(value.encode("utf-8")).hexdigest()


def _hashed(expression: P.Expression, digest: str) -> P.Expression:
    """`encode(sha256(expression), 'hex') = digest`: the predicate never holds the key itself."""
    hashed = P.function("encode", P.function("sha256", expression), P.literal("hex"))
    return P.equals(hashed, P.literal(digest))


def known_datasources(metadata: Metadata) -> set[str]:
    landing = metadata.landing_tables
    return {c.datasource for c in metadata.load_configs} | {
        ds for table in landing for ds in metadata.landing_datasources(table)
    }


def split_key(metadata: Metadata, key: str) -> tuple[str, str]:
    """(source id, datasource) of a patient key `<source id>-<datasource>`."""
    matches = [
        ds
        for ds in known_datasources(metadata)
        if key.endswith(f"-{ds}") and len(key) > len(ds) + 1
    ]
    if not key.strip() or not matches:
        raise RcmError(
            "a patient key is <source id>-<datasource>, e.g. HOSP1-000001-hos-a; known "
            f"datasources: {', '.join(sorted(known_datasources(metadata)))}"
        )
    datasource = max(matches, key=len)
    return key[: -len(datasource) - 1], datasource


def patient_columns(metadata: Metadata) -> dict[str, list[str]]:
    """Silver table -> its columns holding a patient key, from the metadata."""
    if PATIENTS not in metadata.silver_tables:
        raise RcmError(f"metadata has no silver table {PATIENTS!r}; nothing identifies a patient")
    columns = {PATIENTS: [metadata.silver_tables[PATIENTS].key]}
    for column in metadata.silver_columns:
        if column.datasource is None and column.references == PATIENTS:
            columns.setdefault(column.table, []).append(column.column)
    return columns


def _schema(lake: LakeAddresses, name: str) -> list[str] | None:
    uri = lake.named(name)
    if not delta.exists(uri, lake.storage_options):
        return None
    return delta.scan(uri, lake.storage_options).collect_schema().names()


def _key_target(name: str, columns: list[str], key: str) -> ErasureTarget:
    digest = subject_hash(key)
    return ErasureTarget(
        table=name,
        predicate=P.sql(P.any_of(*(_hashed(P.column(c), digest) for c in columns))),
        match=pl.any_horizontal(pl.col(c).eq(key) for c in columns),
        needle=key,
    )


def _modelled_targets(lake: LakeAddresses, metadata: Metadata, key: str) -> list[ErasureTarget]:
    """Silver and gold tables holding the key."""
    by_table = patient_columns(metadata)
    targets = []
    for table, columns in by_table.items():
        present = [c for c in columns if c in (_schema(lake, f"silver/{table}") or [])]
        if present:
            targets.append(_key_target(f"silver/{table}", present, key))
    names = {c for columns in by_table.values() for c in columns}
    for table in metadata.gold_tables:
        present = sorted(names & set(_schema(lake, f"gold/{table}") or []))
        if present:
            targets.append(_key_target(f"gold/{table}", present, key))
    return targets


def _bronze_target(
    name: str, columns: list[str], schema: list[str], key: str, source_id: str, datasource: str
) -> ErasureTarget:
    digest = subject_hash(key)
    suffix = P.literal(f"-{datasource}")
    hashed = P.any_of(
        *(
            _hashed(
                P.function("concat", P.function("btrim", P.column(c), _SQL_WHITESPACE), suffix),
                digest,
            )
            for c in columns
        )
    )
    match = pl.any_horizontal(pl.col(c).str.strip_chars(_WHITESPACE).eq(source_id) for c in columns)
    if DATASOURCE in schema:  # a table shared by datasources, e.g. bronze/claims
        hashed = P.all_of(P.equals(P.column(DATASOURCE), P.literal(datasource)), hashed.copy())
        match = match & pl.col(DATASOURCE).eq(datasource)
    return ErasureTarget(name, P.sql(hashed), match, source_id)


def _raw_targets(lake: LakeAddresses, metadata: Metadata, key: str) -> list[ErasureTarget]:
    """Bronze tables (and their archive copies) silver built the patient's rows from."""
    source_id, datasource = split_key(metadata, key)
    root = lake.root.rstrip("/") + "/"
    columns_of: dict[str, set[str]] = {}
    for table, columns in patient_columns(metadata).items():
        for piece in lake.bronze_slices(metadata.silver_tables[table], metadata):
            if piece.datasource == datasource:
                name = piece.uri.removeprefix(root)
                sources = {metadata.source_column(table, c, datasource) for c in columns}
                columns_of.setdefault(name, set()).update(sources)
    targets = []
    for name, columns in sorted(columns_of.items()):
        for copy in (name, f"archive/{name}"):
            schema = _schema(lake, copy)
            present = sorted(c for c in columns if c in (schema or []))
            if schema and present:
                targets.append(_bronze_target(copy, present, schema, key, source_id, datasource))
    return targets


def erasure_targets(
    lake: LakeAddresses, metadata: Metadata, key: str, include_raw: bool = False
) -> list[ErasureTarget]:
    split_key(metadata, key)  # refuses a key that names no known datasource
    targets = _modelled_targets(lake, metadata, key)
    return targets + (_raw_targets(lake, metadata, key) if include_raw else [])


def _count(lake: LakeAddresses, target: ErasureTarget) -> int:
    scan = delta.scan(lake.named(target.table), lake.storage_options)
    return scan.filter(target.match).select(pl.len()).collect().item()


def plan_erasure(
    lake: LakeAddresses,
    patient_key: str,
    include_raw: bool = False,
    metadata: Metadata | None = None,
) -> dict[str, int]:
    """Every table an erasure would delete from and vacuum -> the patient's rows in it now.

    Unlike a dry run of `erase_patient`, this records nothing in `audit/erasures`.
    """
    targets = erasure_targets(lake, metadata or load_metadata(), patient_key, include_raw)
    return {target.table: _count(lake, target) for target in targets}


def _delete(lake: LakeAddresses, target: ErasureTarget, erasure_id: str) -> int:
    table = DeltaTable(lake.named(target.table), storage_options=dict(lake.storage_options or {}))
    metadata = {"operation": "erase", "erasure_id": erasure_id}
    properties = CommitProperties(
        custom_metadata={f"{delta.COMMIT_PREFIX}{k}": v for k, v in metadata.items()}
    )
    try:
        metrics = table.delete(target.predicate, commit_properties=properties)
    except Exception as error:  # a concurrent writer, or a predicate delta-rs cannot plan
        raise RcmError(f"{target.table}: erasure delete failed: {error}") from None
    return int(metrics.get("num_deleted_rows", 0))


def log_files_mentioning(lake: LakeAddresses, target: ErasureTarget) -> int:
    """Delta log commit files that still name the needle (statistics); 0 when not local."""
    root = lake.local_root()
    if root is None:
        return 0
    # Statistics are JSON inside JSON, so the value sits between (escaped) quotes.
    pattern = re.compile(r'\\?"' + re.escape(target.needle) + r'\\?"')
    log = root / target.table / "_delta_log"
    return sum(1 for path in log.glob("*.json") if pattern.search(path.read_text("utf-8")))


def _record(lake: LakeAddresses, result: ErasureResult, requested_at: datetime) -> None:
    row = {
        "erasure_id": result.erasure_id,
        "subject_sha256": result.subject_sha256,
        "requested_at": requested_at,
        "dry_run": result.dry_run,
        "include_raw": result.include_raw,
        "tables": list(result.rows),
        "row_counts": list(result.rows.values()),
        "total_rows": result.total_rows,
        "files_removed": sum(result.files_removed.values()),
    }
    frame = pl.DataFrame([row], schema=ERASURE_SCHEMA)
    delta.append(
        lake.audit(AuditTable.ERASURES), frame, {"operation": "erasure"}, lake.storage_options
    )


def erase_patient(
    lake: LakeAddresses,
    patient_key: str,
    dry_run: bool = False,
    include_raw: bool = False,
    metadata: Metadata | None = None,
) -> ErasureResult:
    """Delete one patient's rows everywhere the module docstring lists; vacuum; record it."""
    metadata = metadata or load_metadata()
    requested_at = datetime.now(UTC)
    targets = erasure_targets(lake, metadata, patient_key, include_raw)
    rows = {target.table: _count(lake, target) for target in targets}
    result = ErasureResult(
        erasure_id=f"erasure-{requested_at:%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:8]}",
        subject_sha256=subject_hash(patient_key),
        dry_run=dry_run,
        include_raw=include_raw,
        rows={table: count for table, count in rows.items() if count},
    )
    if not dry_run:
        deleted = {t.table: _delete(lake, t, result.erasure_id) for t in targets if rows[t.table]}
        # Every target is vacuumed, even without current rows: an older version's files (a gold
        # table rebuilt since, say) may still hold the patient.
        removed = {
            t.table: vacuum_table(lake, t.table, 0, dry_run=False, force=True, full=True)
            for t in targets
        }
        result = ErasureResult(
            result.erasure_id,
            result.subject_sha256,
            dry_run,
            include_raw,
            rows=deleted,
            files_removed={name: r.files_removed for name, r in removed.items()},
            log_files_mentioning={
                t.table: n for t in targets if (n := log_files_mentioning(lake, t))
            },
        )
    _record(lake, result, requested_at)
    return result
