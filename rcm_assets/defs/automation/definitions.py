"""Sensors and schedules: landing files as they arrive, EMR extracts on metadata's cron."""

import dagster as dg

from rcm_assets.automation.schedules import build_emr_schedules
from rcm_assets.automation.sensors import build_automation_sensor, build_landing_sensor
from rcm_assets.metadata import load_metadata


@dg.definitions
def automation() -> dg.Definitions:
    metadata = load_metadata()
    return dg.Definitions(
        sensors=[build_landing_sensor(metadata), build_automation_sensor()],
        schedules=build_emr_schedules(metadata),
    )
