"""Schedules, timed by metadata/schedules.csv."""

from dagster import (
    AssetsDefinition,
    AssetSelection,
    DefaultScheduleStatus,
    RunRequest,
    ScheduleDefinition,
    ScheduleEvaluationContext,
    schedule,
)

from rcm_assets.errors import MetadataError
from rcm_assets.jobs import group_runs
from rcm_assets.metadata import Metadata

EMR_SCHEDULE = "emr_incremental"


def build_emr_schedule(
    metadata: Metadata, emr_assets: list[AssetsDefinition]
) -> ScheduleDefinition:
    """Every EMR bronze partition on the cron of the `emr_incremental` row, one run per group."""
    if EMR_SCHEDULE not in metadata.schedules:
        raise MetadataError(f"{metadata.folder / 'schedules.csv'}: add a row named {EMR_SCHEDULE}")
    spec = metadata.schedules[EMR_SCHEDULE]
    runs = group_runs((a.key, a.partitions_def) for a in emr_assets)

    @schedule(
        name=f"{EMR_SCHEDULE}_schedule",
        cron_schedule=spec.cron,
        execution_timezone=spec.timezone,
        target=AssetSelection.assets(*[a.key for a in emr_assets]),
        default_status=DefaultScheduleStatus.RUNNING,
        description=spec.description,
    )
    def emr_schedule(context: ScheduleEvaluationContext) -> list[RunRequest]:
        tick = context.scheduled_execution_time.strftime("%Y-%m-%dT%H:%M")
        return [
            RunRequest(
                run_key=f"{tick}/{partition}/{len(keys)}",
                partition_key=partition,
                asset_selection=keys,
            )
            for partition, keys in runs
        ]

    return emr_schedule
