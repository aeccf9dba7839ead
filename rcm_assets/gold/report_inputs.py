"""Read what `rcm report` draws: the gold marts, the sources' freshness and the data-quality
context (quarantined silver rows, orphan rates, rejected landing files).

The only module of the report that touches storage, through `lake` and the landing store
resource; `report_data` and `report` are pure.
"""

from datetime import UTC, datetime
from pathlib import Path, PurePosixPath

import polars as pl

from rcm_assets.errors import RcmError
from rcm_assets.gold.assets import orphans
from rcm_assets.gold.report_data import (
    FRESHNESS_SCHEMA,
    MARTS,
    ORPHAN_SCHEMA,
    QUARANTINE_SCHEMA,
    REJECTED_SCHEMA,
    ReportInputs,
)
from rcm_assets.lake import delta
from rcm_assets.lake.addresses import AuditTable, LakeAddresses
from rcm_assets.metadata import Metadata
from rcm_assets.resources.landing import LandingStoreResource

REJECTED = "rejected"  # the landing store's folder of files that could not be read
ERROR_SUFFIX = ".error.txt"  # the report written beside each rejected file
EMR_FACT = "fact_transactions"  # service and payment dates of the EMR data
REMITTANCE_PAYMENTS = "remittance_payments"  # silver: 835 payments and their dates


def read_report_inputs(
    lake: LakeAddresses,
    landing: LandingStoreResource,
    metadata: Metadata,
    now: datetime | None = None,
) -> ReportInputs:
    """Everything the report needs; RcmError naming the first mart that is not built."""
    names = list(dict.fromkeys([*MARTS, *(t.mart for t in metadata.kpi_targets)]))
    marts = {name: _read_mart(lake, name) for name in names}
    logs = _optional(lake, lake.audit(AuditTable.LOAD_LOGS))
    return ReportInputs(
        marts=marts,
        targets=metadata.kpi_targets,
        hospital_names={ds: metadata.display_name(ds) for ds in _datasources(marts)},
        generated_at=now or datetime.now(UTC),
        freshness=freshness(lake, logs),
        mart_written_at={name: _last_commit(lake, lake.gold(name)) for name in names},
        quarantine=quarantined_rows(lake, metadata),
        orphans=orphan_rates(lake, metadata),
        rejected_files=rejected_files(landing, logs),
    )


def _read_mart(lake: LakeAddresses, name: str) -> pl.DataFrame:
    uri = lake.gold(name)
    if not delta.exists(uri, lake.storage_options):
        raise RcmError(f"gold/{name} is not built yet at {uri}: run `rcm run` first")
    return delta.scan(uri, lake.storage_options).collect()


def _datasources(marts: dict[str, pl.DataFrame]) -> set[str]:
    return {
        ds
        for frame in marts.values()
        if "datasource" in frame.columns
        for ds in frame.get_column("datasource").drop_nulls().unique()
    }


def _optional(lake: LakeAddresses, uri: str) -> pl.LazyFrame | None:
    """A table that may not exist in an older or partial lake: None then."""
    return (
        delta.scan(uri, lake.storage_options) if delta.exists(uri, lake.storage_options) else None
    )


def _last_commit(lake: LakeAddresses, uri: str) -> datetime | None:
    history = delta.commits(uri, lake.storage_options)
    stamp = history[0].get("timestamp") if history else None
    return None if stamp is None else datetime.fromtimestamp(stamp / 1000, UTC)


def _newest(
    frame: pl.LazyFrame | None, column: str, alias: str, where: pl.Expr | None = None
) -> pl.DataFrame:
    if frame is None or column not in frame.collect_schema().names():
        return pl.DataFrame(schema={"datasource": pl.String, alias: FRESHNESS_SCHEMA[alias]})
    rows = frame if where is None else frame.filter(where)
    return (
        rows.group_by("datasource")
        .agg(pl.col(column).max().cast(FRESHNESS_SCHEMA[alias]).alias(alias))
        .collect()
    )


def freshness(lake: LakeAddresses, logs: pl.LazyFrame | None) -> pl.DataFrame:
    """Per datasource: newest EMR service and payment dates, newest 835 payment date, and the
    time of its last successful load."""
    emr = _optional(lake, lake.gold(EMR_FACT))
    payments = _optional(lake, lake.silver(REMITTANCE_PAYMENTS))
    current = pl.col("is_current") & ~pl.col("is_quarantined")
    loads = (
        None
        if logs is None
        else logs.filter(pl.col("status") == "success").rename({"data_source": "datasource"})
    )
    parts = [
        _newest(emr, "service_date", "newest_service_date"),
        _newest(emr, "paid_date", "newest_emr_payment"),
        _newest(payments, "payment_date", "newest_835_payment", current),
        _newest(loads, "loaddate", "last_load"),
    ]
    frame = pl.DataFrame(schema=FRESHNESS_SCHEMA).select("datasource")
    for part in parts:
        frame = frame.join(part, on="datasource", how="full", coalesce=True)
    return frame.select(FRESHNESS_SCHEMA.names())


def quarantined_rows(lake: LakeAddresses, metadata: Metadata) -> pl.DataFrame:
    """Per silver table, datasource and reason: current rows quarantined, and the current rows
    of that table and datasource."""
    counted = [pl.DataFrame(schema=QUARANTINE_SCHEMA)]
    for table in metadata.silver_tables:
        rows = _optional(lake, lake.silver(table))
        if rows is None:
            continue
        names = rows.collect_schema().names()
        if "is_current" in names:  # an SCD2 table keeps history; only current rows count
            rows = rows.filter(pl.col("is_current"))
        current = rows.group_by("datasource").agg(pl.len().cast(pl.Int64).alias("current_rows"))
        reasons = (
            rows.filter(pl.col("is_quarantined"))
            .select("datasource", pl.col("quarantine_reasons").alias("reason"))
            .explode("reason")
            .with_columns(pl.col("reason").fill_null("(no reason recorded)"))
            .group_by("datasource", "reason")
            .agg(pl.len().cast(pl.Int64).alias("rows"))
        )
        counted.append(
            reasons.join(current, on="datasource")
            .select(pl.lit(table).alias("table"), "datasource", "reason", "rows", "current_rows")
            .collect()
        )
    return pl.concat(counted)


def orphan_rates(lake: LakeAddresses, metadata: Metadata) -> pl.DataFrame:
    """The gold referential-integrity measure of every gold table with foreign keys."""
    measured = [pl.DataFrame(schema=ORPHAN_SCHEMA)]
    for table in metadata.gold_tables.values():
        references = metadata.references_of(table.table)
        built = _optional(lake, lake.gold(table.table))
        dimensions_built = all(
            delta.exists(lake.gold(r.dimension), lake.storage_options) for r in references
        )
        if not references or built is None or not dimensions_built:
            continue
        measures = orphans(built, table, metadata, lake)
        measured.append(
            measures.select(pl.lit(table.table).alias("table"), *ORPHAN_SCHEMA.names()[1:]).cast(
                dict(ORPHAN_SCHEMA)
            )
        )
    return pl.concat(measured)


def rejected_files(landing: LandingStoreResource, logs: pl.LazyFrame | None) -> pl.DataFrame:
    """Landing files kept under `rejected/<folder>/<load id>/`, with the reason from the
    `.error.txt` beside each (else from the load log). The load log says where every rejected
    file went, which works on any store; a local store is walked as well, so a file the log no
    longer holds still shows. A file removed since (handled by hand) is not listed."""
    paths = set(_local_rejected(landing))
    reasons: dict[str, str | None] = {}
    if logs is not None:
        attempts = (
            logs.filter(pl.col("status").is_in(["rejected", "failed"]))
            .filter(pl.col("source_file").is_not_null())
            .select("source_file", "load_id", "error")
            .collect()
        )
        for row in attempts.iter_rows(named=True):
            source = PurePosixPath(row["source_file"])
            path = f"{REJECTED}/{source.parent}/{row['load_id']}/{source.name}"
            if landing.stat(path) is not None:
                paths.add(path)
                reasons[path] = row["error"]
    kept = []
    for path in sorted(paths):
        folder = str(PurePosixPath(path).parent.parent)  # rejected/<folder>, without the load id
        reason = _error_report_reason(landing, path) or reasons.get(path)
        kept.append({"folder": folder, "file": PurePosixPath(path).name, "reason": reason})
    return pl.DataFrame(kept, schema=REJECTED_SCHEMA)


def _local_rejected(landing: LandingStoreResource) -> list[str]:
    """Rejected files of a local landing store, as store paths (`rejected/claims/<id>/x.csv`)."""
    if landing.azure is not None:
        return []
    root = Path(landing.root)
    return [
        file.relative_to(root).as_posix()
        for file in sorted((root / REJECTED).rglob("*"))
        if file.is_file() and not file.name.endswith(ERROR_SUFFIX)
    ]


def _error_report_reason(landing: LandingStoreResource, path: str) -> str | None:
    """The `reason:` of the report written beside a rejected file, if it is there."""
    if landing.stat(path + ERROR_SUFFIX) is None:
        return None
    report = landing.read_bytes(path + ERROR_SUFFIX).decode("utf-8", errors="replace")
    _, found, reason = report.partition("reason: ")
    return " ".join(reason.split()) if found else None
