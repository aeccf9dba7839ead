"""Schedules, timed by metadata/schedules.csv."""

import re
from collections import defaultdict

from dagster import (
    AssetKey,
    AssetSelection,
    DefaultScheduleStatus,
    RunRequest,
    ScheduleDefinition,
    ScheduleEvaluationContext,
    schedule,
)

from rcm_assets.errors import MetadataError
from rcm_assets.metadata import Metadata

EMR_SCHEDULE = "emr_incremental"


def build_emr_schedules(metadata: Metadata) -> list[ScheduleDefinition]:
    """Every EMR bronze partition on the cron of the `emr_incremental` row.

    A schedule's target must share one partitions definition, and a table inactive for some
    datasource has fewer partitions, so assets are grouped by partition set: the largest group
    is `emr_incremental_schedule`, any other gets its datasources as a suffix.
    """
    if EMR_SCHEDULE not in metadata.schedules:
        raise MetadataError(f"{metadata.folder / 'schedules.csv'}: add a row named {EMR_SCHEDULE}")
    spec = metadata.schedules[EMR_SCHEDULE]
    groups: dict[tuple[str, ...], list[AssetKey]] = defaultdict(list)
    for table, configs in metadata.bronze_tables().items():
        # the partitions of bronze/<table> (bronze/emr.py): its datasources, sorted
        groups[tuple(sorted(configs))].append(AssetKey(["bronze", table]))
    ordered = sorted(groups.items(), key=lambda item: (-len(item[1]), item[0]))
    names = [f"{EMR_SCHEDULE}_schedule"] + [
        f"{EMR_SCHEDULE}_schedule__" + re.sub(r"\W", "_", "_".join(partitions))
        for partitions, _ in ordered[1:]
    ]
    return [
        _schedule(
            name,
            spec.cron,
            spec.timezone,
            spec.description,
            partitions,
            group,
        )
        for name, (partitions, group) in zip(names, ordered, strict=True)
    ]


def _schedule(
    name: str,
    cron: str,
    timezone: str,
    description: str,
    partitions: tuple[str, ...],
    keys: list[AssetKey],
) -> ScheduleDefinition:
    @schedule(
        name=name,
        cron_schedule=cron,
        execution_timezone=timezone,
        target=AssetSelection.assets(*keys),
        default_status=DefaultScheduleStatus.RUNNING,
        description=f"{description} ({', '.join(k.to_user_string() for k in keys)})",
    )
    def emr_schedule(context: ScheduleEvaluationContext) -> list[RunRequest]:
        tick = context.scheduled_execution_time.strftime("%Y-%m-%dT%H:%M")
        return [
            RunRequest(run_key=f"{tick}/{p}", partition_key=p, asset_selection=keys)
            for p in partitions
        ]

    return emr_schedule
