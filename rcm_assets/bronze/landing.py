"""Bronze assets for landing files (claims, CPT codes, X12), one per row of landing_tables.csv.

A file is ingested once per content (sha256): its good rows are appended to
`lake/bronze/<table>` with datasource, load id, source file and line number; its bad records go
to `audit/rejected_rows`; then it moves to `landing/processed/<folder>/<load id>/`. A file that
cannot be read at all moves to `landing/rejected/<folder>/<load id>/` with an `.error.txt`
report beside it. An X12 file lands one row per segment (rcm_assets.x12): a transaction set
that fails implementation-guide validation goes to `audit/rejected_rows` alone, and an 837's
999 acknowledgment is written to `landing/outbound/999/`. The order of those writes makes a
crash at any point safe to re-run: the content hash recorded with the bronze commit stops a
second ingestion.
"""

import hashlib
import logging
import time
from dataclasses import dataclass

import polars as pl
from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    AssetKey,
    AssetsDefinition,
    Config,
    DataVersion,
    Failure,
    MaterializeResult,
    MetadataValue,
    StaticPartitionsDefinition,
    asset,
)
from pydantic import Field

from rcm_assets.bronze.landing_csv import parse_landing_csv
from rcm_assets.bronze.landing_routing import route_landing_file
from rcm_assets.bronze.load_record import LoadAttempt, data_version
from rcm_assets.errors import FileRejected, RcmError
from rcm_assets.lake import audit, delta
from rcm_assets.lake.addresses import AuditTable, LakeAddresses
from rcm_assets.metadata import LandingFormat, LandingTable, Metadata
from rcm_assets.resources import LakeResource
from rcm_assets.resources.landing import LandingFile, LandingStoreResource, safe_relative
from rcm_assets.staging import staging
from rcm_assets.x12 import X12FileRejected, parse_x12

ACKNOWLEDGMENTS_FOLDER = "outbound/999"  # where a clearinghouse's 999s for 837 files go

REJECTED_ROWS_SCHEMA = pl.Schema(
    {
        "table": pl.String,
        "datasource": pl.String,
        "source_file": pl.String,
        "line_number": pl.Int64,
        "raw_text": pl.String,
        "reason": pl.String,
        "load_id": pl.String,
        "content_hash": pl.String,
        "rejected_at": pl.Datetime("us", "UTC"),
    }
)


class LandingRunConfig(Config):
    files: list[str] = Field(
        default_factory=list,
        description="Landing paths to ingest (the sensor sets one); empty: every pending file "
        "of the partition.",
    )


@dataclass(frozen=True)
class FileOutcome:
    path: str
    status: str  # loaded | rejected | duplicate | missing
    load_id: str
    rows: int = 0
    rejected_rows: int = 0
    reason: str = ""
    moved_to: str = ""


def _already_ingested(logs: pl.DataFrame, table: str, digest: str) -> bool:
    return (
        logs.filter(
            (pl.col("tablename") == table)
            & (pl.col("content_hash") == digest)
            & pl.col("status").is_in(["success", "recovered"])
        ).height
        > 0
    )


def _record_rejected_rows(
    lake: LakeAddresses, rows: pl.DataFrame, table: str, datasource: str | None, digest: str
) -> None:
    """Append rejected records once per file content, so a retried file adds no duplicates."""
    uri = lake.audit(AuditTable.REJECTED_ROWS)
    if delta.exists(uri, lake.storage_options):
        done = delta.scan(uri, lake.storage_options).filter(pl.col("content_hash") == digest)
        if done.select(pl.len()).collect().item():
            return
    delta.append(
        uri, rows.cast(dict(REJECTED_ROWS_SCHEMA)), {"operation": "reject"}, lake.storage_options
    )


def ingest_landing_file(
    table: LandingTable,
    datasource: str | None,
    file: LandingFile,
    store: LandingStoreResource,
    lake: LakeAddresses,
    run_id: str | None = None,
    log: logging.Logger | None = None,
) -> FileOutcome:
    log = log or logging.getLogger(__name__)
    data = store.read_bytes(file.path)
    digest = hashlib.sha256(data).hexdigest()
    attempt = LoadAttempt.start(
        lake,
        log,
        datasource=datasource or "landing",
        table=table.table,
        load_type="File",
        bronze_uri=lake.bronze(table.table),
        run_id=run_id,
        source_file=file.path,
        content_hash=digest,
    )
    load_id, now = attempt.record.load_id, attempt.record.loaded_at

    def move(folder: str) -> str:
        destination = f"{folder}/{table.folder}/{load_id}/{file.name}"
        store.move(file.path, destination)
        return destination

    logs = audit.read_logs(attempt.audit_uri, lake.storage_options)
    if _already_ingested(logs, table.table, digest):
        attempt.log_status("duplicate", "this content was already ingested")
        destination = move("processed")
        log.info("%s: content already ingested; moved to %s", file.path, destination)
        return FileOutcome(file.path, "duplicate", load_id, moved_to=destination)
    with attempt.failure_recorded():
        try:
            parsed = (
                parse_x12(data, file.path)
                if table.format is LandingFormat.X12
                else parse_landing_csv(data, table)
            )
        except FileRejected as rejection:
            if isinstance(rejection, X12FileRejected) and rejection.acknowledgment:
                store.write_text(
                    f"{ACKNOWLEDGMENTS_FOLDER}/{file.name}.999", rejection.acknowledgment
                )
            destination = move("rejected")
            store.write_text(
                f"{destination}.error.txt",
                f"file: {file.path}\nsha256: {digest}\nload_id: {load_id}\nrejected_at: "
                f"{now.isoformat()}\nreason: {rejection}\n",
            )
            attempt.log_status("rejected", str(rejection))
            log.error("%s rejected: %s; moved to %s", file.path, rejection, destination)
            return FileOutcome(
                file.path, "rejected", load_id, reason=str(rejection), moved_to=destination
            )
        if parsed.rejected.height:
            _record_rejected_rows(
                lake,
                parsed.rejected.with_columns(
                    table=pl.lit(table.table),
                    datasource=pl.lit(datasource),
                    source_file=pl.lit(file.path),
                    load_id=pl.lit(load_id),
                    content_hash=pl.lit(digest),
                    rejected_at=pl.lit(now),
                ),
                table.table,
                datasource,
                digest,
            )
        lineage = {"load_id": load_id, "ingested_at": now, "source_file": file.path}
        if datasource:
            lineage = {"datasource": datasource, **lineage}
        with staging() as staged:  # a large file streams through, chunk by chunk
            for batch in parsed.batches():
                staged.add(
                    batch.with_columns(
                        [pl.lit(value).alias(name) for name, value in lineage.items()]
                    ).with_columns(pl.col("ingested_at").cast(pl.Datetime("us", "UTC")))
                )
            attempt.commit(staged)
    if acknowledgment := getattr(parsed, "acknowledgment", None):
        store.write_text(f"{ACKNOWLEDGMENTS_FOLDER}/{file.name}.999", acknowledgment)
    destination = move("processed")
    log.info(
        "%s: %d row(s) loaded, %d rejected; moved to %s",
        file.path,
        staged.rows,
        parsed.rejected.height,
        destination,
    )
    return FileOutcome(
        file.path,
        "loaded",
        load_id,
        staged.rows,
        parsed.rejected.height,
        moved_to=destination,
    )


def files_to_ingest(
    table: LandingTable,
    datasource: str | None,
    requested: list[str],
    store: LandingStoreResource,
    metadata: Metadata,
) -> list[LandingFile | str]:
    """The files for this partition: the requested ones (validated), else every pending one.

    A requested file that is no longer there (another run took it) comes back as its path.
    """
    if not requested:
        return [
            file
            for file in store.list_files(table.folder)
            if (route := route_landing_file(metadata, table, file, store)).problem == ""
            and route.datasource == datasource
        ]
    chosen: list[LandingFile | str] = []
    for path in requested:
        parts = safe_relative(path).parts
        if (
            len(parts) != 2
            or parts[0] != table.folder
            or not metadata.match_landing_file(table.table, parts[-1])
        ):
            patterns = ", ".join(p.pattern for p in metadata.patterns_for(table.table))
            raise RcmError(
                f"{path!r} is not a {table.table} landing file: expected {table.folder}/<name> "
                f"matching one of {patterns}"
            )
        file = store.stat(path)
        if file is None:
            chosen.append(path)
            continue
        route = route_landing_file(metadata, table, file, store)
        if route.problem:
            raise RcmError(route.problem)
        if route.datasource != datasource:
            raise RcmError(f"{path!r} belongs to partition {route.datasource}, not {datasource}")
        chosen.append(file)
    return chosen


def unmatched_files(
    table: LandingTable, store: LandingStoreResource, metadata: Metadata
) -> list[str]:
    """Why each file in the table's landing folder that cannot be routed is left there (never
    ingested, never guessed)."""
    return [
        route.problem
        for file in store.list_files(table.folder)
        if (route := route_landing_file(metadata, table, file, store)).problem
    ]


def _results(
    outcomes: list[FileOutcome],
    table_rows: int,
    seconds: float,
    version: DataVersion,
    unmatched: list[str],
) -> MaterializeResult:
    rejected_files = [o for o in outcomes if o.status == "rejected"]
    rejected_rows = sum(o.rejected_rows for o in outcomes)
    summary = "\n".join(
        f"| {o.path} | {o.status} | {o.rows} | {o.rejected_rows} | {o.reason or o.moved_to} |"
        for o in outcomes
    )
    return MaterializeResult(
        data_version=version,
        metadata={
            "dagster/row_count": table_rows,
            "rows_loaded": sum(o.rows for o in outcomes),
            "duration_seconds": round(seconds, 3),
            "files": len(outcomes),
            "rejected_rows": rejected_rows,
            "rejected_files": len(rejected_files),
            "load_ids": ", ".join(o.load_id for o in outcomes),
            "file_outcomes": MetadataValue.md(
                "| file | status | rows | rejected rows | reason / moved to |\n"
                "|---|---|---|---|---|\n" + summary
            )
            if outcomes
            else MetadataValue.md("no pending files"),
        },
        check_results=[
            AssetCheckResult(
                check_name="no_rejected_rows",
                passed=rejected_rows == 0,
                severity=AssetCheckSeverity.WARN,
                metadata={"rejected_rows": rejected_rows, "table": "audit/rejected_rows"},
            ),
            AssetCheckResult(
                check_name="no_unmatched_files",
                passed=not unmatched,
                severity=AssetCheckSeverity.WARN,
                description=f"{len(unmatched)} file(s) left in landing, not ingested: "
                + "; ".join(unmatched)
                if unmatched
                else None,
                metadata={"unmatched_files": len(unmatched)},
            ),
            AssetCheckResult(
                check_name="no_rejected_files",
                passed=not rejected_files,
                severity=AssetCheckSeverity.ERROR,
                description="; ".join(f"{o.path} rejected: {o.reason}" for o in rejected_files)
                or None,
                metadata={
                    "rejected_files": len(rejected_files),
                    "reasons": MetadataValue.md(
                        "\n".join(f"- `{o.path}`: {o.reason}" for o in rejected_files) or "none"
                    ),
                },
            ),
        ],
    )


def build_landing_bronze_asset(table: LandingTable, metadata: Metadata) -> AssetsDefinition:
    datasources = metadata.landing_datasources(table.table)
    key = AssetKey(["bronze", table.table])

    @asset(
        key=key,
        group_name="bronze",
        partitions_def=StaticPartitionsDefinition(datasources) if datasources else None,
        kinds={"polars", "delta", table.format.value},
        description=(
            f"{table.description}: `landing/{table.folder}/` files ("
            + ", ".join(
                f"`{p.pattern}`" + (f" → {p.datasource}" if p.datasource else "")
                for p in metadata.patterns_for(table.table)
            )
            + (
                "; an X12 file whose name names no hospital goes by the payee / billing "
                "provider NPI or TIN it holds (x12_identifiers.csv)"
                if table.format is LandingFormat.X12
                else ""
            )
            + ") appended as text with load_id, source_file and line_number; bad records go to "
            "audit/rejected_rows."
        ),
        check_specs=[
            AssetCheckSpec(
                "no_rejected_rows",
                asset=key,
                description="Every record of the ingested files landed "
                "(rejects: audit/rejected_rows).",
            ),
            AssetCheckSpec(
                "no_unmatched_files",
                asset=key,
                description="Every file in the landing folder matches a pattern of "
                "metadata/landing_files.csv (others are never ingested).",
            ),
            AssetCheckSpec(
                "no_rejected_files",
                asset=key,
                description="No ingested file was rejected as a whole (see landing/rejected/).",
            ),
        ],
    )
    def _landing(
        context: AssetExecutionContext,
        config: LandingRunConfig,
        lake: LakeResource,
        landing: LandingStoreResource,
    ) -> MaterializeResult:
        started = time.monotonic()
        datasource = context.partition_key if datasources else None
        try:
            files = files_to_ingest(table, datasource, config.files, landing, metadata)
        except RcmError as error:
            raise Failure(description=str(error), allow_retries=False) from None
        outcomes = [
            ingest_landing_file(
                table, datasource, f, landing, lake.addresses, context.run.run_id, context.log
            )
            if isinstance(f, LandingFile)
            else FileOutcome(f, "missing", "", reason="no longer in landing (already ingested?)")
            for f in files
        ]
        rows = delta.row_count(
            lake.addresses.bronze(table.table),
            lake.storage_options,
            pl.col("datasource") == datasource if datasource else None,
        )
        uri = lake.addresses.bronze(table.table)
        committed = [o.load_id for o in outcomes if o.status == "loaded" and o.rows]
        version = data_version(
            lake.addresses, uri, datasource or "landing", committed[-1] if committed else None
        )
        unmatched = unmatched_files(table, landing, metadata)
        return _results(outcomes, rows, time.monotonic() - started, version, unmatched)

    return _landing


def build_landing_bronze_assets(metadata: Metadata) -> list[AssetsDefinition]:
    return [build_landing_bronze_asset(t, metadata) for t in metadata.landing_tables.values()]
