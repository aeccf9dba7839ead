"""`landing_files_sensor`: one run per new or changed landing file, on the right partition."""

import json

from dagster import (
    AssetKey,
    AssetSelection,
    AutomationConditionSensorDefinition,
    DefaultSensorStatus,
    RunRequest,
    SensorDefinition,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    sensor,
)

from rcm_assets.bronze.landing_routing import route_landing_file
from rcm_assets.metadata import Metadata
from rcm_assets.resources.landing import LandingPathError, LandingStoreResource, safe_relative

SENSOR_INTERVAL_SECONDS = 15


def landing_run_requests(
    metadata: Metadata, store: LandingStoreResource, cursor: dict[str, str]
) -> tuple[list[RunRequest], dict[str, str], list[str]]:
    """(run requests, the new cursor, reasons for files left alone).

    The cursor maps each file still in landing to the version last requested, so an unchanged
    file is requested once, a changed one (new size or modification time, or etag) again. The
    run key carries the version too, so Dagster itself never launches the same version twice.
    """
    requests, seen, skipped = [], {}, []
    for table in metadata.landing_tables.values():
        key = AssetKey(["bronze", table.table])
        for file in store.list_files(table.folder):
            try:
                safe_relative(file.path)
            except LandingPathError as error:
                skipped.append(str(error))
                continue
            if cursor.get(file.path) == file.version:
                seen[file.path] = file.version
                continue
            route = route_landing_file(metadata, table, file, store)
            if route.problem:
                skipped.append(route.problem)
                continue
            seen[file.path] = file.version
            requests.append(
                RunRequest(
                    run_key=f"{file.path}@{file.version}",
                    partition_key=route.datasource,
                    asset_selection=[key],
                    run_config={
                        "ops": {key.to_python_identifier(): {"config": {"files": [file.path]}}}
                    },
                    tags={"rcm/landing_file": file.path},
                )
            )
    return requests, seen, skipped


def build_landing_sensor(metadata: Metadata) -> SensorDefinition:
    @sensor(
        name="landing_files_sensor",
        minimum_interval_seconds=SENSOR_INTERVAL_SECONDS,
        default_status=DefaultSensorStatus.RUNNING,
        asset_selection=[AssetKey(["bronze", t]) for t in metadata.landing_tables],
        description="Starts one bronze run per new or changed file in landing/ ("
        + ", ".join(f"{t.folder}/" for t in metadata.landing_tables.values())
        + ").",
    )
    def landing_files_sensor(
        context: SensorEvaluationContext, landing: LandingStoreResource
    ) -> SensorResult | SkipReason:
        cursor = json.loads(context.cursor) if context.cursor else {}
        requests, seen, skipped = landing_run_requests(metadata, landing, cursor)
        for reason in skipped:
            context.log.warning("skipped %s", reason)
        if not requests:
            reasons = "; ".join(skipped)
            return SkipReason(
                "no new or changed landing files" + (f"; skipped {reasons}" if reasons else "")
            )
        return SensorResult(run_requests=requests, cursor=json.dumps(seen, sort_keys=True))

    return landing_files_sensor


def build_automation_sensor() -> AutomationConditionSensorDefinition:
    """Evaluates the assets' automation conditions (silver follows bronze), on by default.

    Dagster's own default sensor starts stopped; the lakehouse must run unattended.
    """
    return AutomationConditionSensorDefinition(
        "lakehouse_automation",
        target=AssetSelection.all(),
        default_status=DefaultSensorStatus.RUNNING,
        minimum_interval_seconds=SENSOR_INTERVAL_SECONDS,
        description="Materializes silver (and later gold) when their upstream assets change.",
    )
