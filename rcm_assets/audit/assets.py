"""The audit group: tables written as a side effect of loads, checks and lake operations.

Each is an asset whose materialization reads its Delta table and reports it (rows, version,
last write, and what a reader looks for first: failed loads, rejected rows per table, failing
checks, erasures), so the UI shows when the audit trail last moved and what it holds. The rows
themselves are written by the loaders, the checks and `rcm lake erase-patient`, in the same run
as the work they record.
"""

from dataclasses import dataclass

from dagster import (
    AssetExecutionContext,
    AssetKey,
    AssetsDefinition,
    MaterializeResult,
    MetadataValue,
    asset,
)

from rcm_assets.automation.conditions import on_new_data
from rcm_assets.lake import delta
from rcm_assets.lake.addresses import AuditTable, LakeAddresses
from rcm_assets.lake.inventory import table_info
from rcm_assets.metadata import Metadata
from rcm_assets.resources import LakeResource


@dataclass(frozen=True)
class AuditSpec:
    table: AuditTable
    deps: list[AssetKey]
    description: str
    summary_by: tuple[str, ...]  # the columns whose counts the asset reports


def audit_specs(metadata: Metadata) -> list[AuditSpec]:
    emr = [AssetKey(["bronze", table]) for table in metadata.bronze_tables()]
    landing = [AssetKey(["bronze", table]) for table in metadata.landing_tables]
    reference = [
        AssetKey(["bronze", s.source])
        for s in metadata.silver_tables.values()
        if s.default_datasource and s.source not in metadata.landing_tables
    ]
    checked = [AssetKey(["silver", t]) for t in metadata.silver_tables] + [
        AssetKey(["gold", t]) for t in metadata.gold_tables
    ]
    return [
        AuditSpec(
            AuditTable.LOAD_LOGS,
            [*emr, *landing, *reference],
            "One row per (datasource, table) load: rows copied, watermark column and the maximum "
            "watermark value loaded, load id, type, status, run id. Written by every bronze load.",
            ("status",),
        ),
        AuditSpec(
            AuditTable.REJECTED_ROWS,
            landing,
            "Landing-file records that could not be loaded (wrong field count, bad quoting, not "
            "UTF-8, duplicate key): table, datasource, source file, line number, raw text, "
            "reason, load id.",
            ("table",),
        ),
        AuditSpec(
            AuditTable.DQ_RESULTS,
            checked,
            "Every data-quality measure of every run (quarantine, duplicate and orphan rates per "
            "table, datasource and rule), the history behind the asset checks.",
            ("check",),
        ),
        AuditSpec(
            AuditTable.ERASURES,
            [],
            "One row per `rcm lake erase-patient`: the subject's sha256 (never the key), the "
            "tables and rows deleted, the files vacuumed.",
            ("dry_run",),
        ),
    ]


def audit_metadata(lake: LakeAddresses, spec: AuditSpec) -> dict[str, object]:
    """What the asset reports about its table; an unwritten table reports 0 rows."""
    uri = lake.audit(spec.table)
    if not delta.exists(uri, lake.storage_options):
        return {"dagster/row_count": 0, "table": MetadataValue.path(uri), "written": False}
    info = table_info(lake, f"audit/{spec.table.value}")
    counts = (
        delta.scan(uri, lake.storage_options)
        .group_by(*spec.summary_by)
        .len()
        .sort(spec.summary_by)
        .collect()
    )
    lines = [f"| {' | '.join(spec.summary_by)} | rows |", "|" + "---|" * (len(spec.summary_by) + 1)]
    lines += ["| " + " | ".join(str(v) for v in row) + " |" for row in counts.iter_rows()]
    return {
        "dagster/row_count": info.rows,
        "table": MetadataValue.path(uri),
        "written": True,
        "delta_version": info.version,
        "last_write": MetadataValue.timestamp(info.last_write),
        "rows_by_" + "_".join(spec.summary_by): MetadataValue.md("\n".join(lines)),
    }


def build_audit_asset(spec: AuditSpec) -> AssetsDefinition:
    @asset(
        key=AssetKey(["audit", spec.table.value]),
        group_name="audit",
        deps=spec.deps,
        kinds={"delta"},
        automation_condition=on_new_data() if spec.deps else None,
        description=f"{spec.description} `lake/audit/{spec.table.value}`.",
    )
    def _audit(context: AssetExecutionContext, lake: LakeResource) -> MaterializeResult:
        return MaterializeResult(metadata=audit_metadata(lake.addresses, spec))

    return _audit


def build_audit_assets(metadata: Metadata) -> list[AssetsDefinition]:
    return [build_audit_asset(spec) for spec in audit_specs(metadata)]
