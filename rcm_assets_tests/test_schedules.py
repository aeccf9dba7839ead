"""schedules.py: the EMR schedule's cron comes from metadata; one run per partition group."""

from datetime import UTC, datetime

import pytest
from dagster import build_schedule_context

from rcm_assets.errors import MetadataError
from rcm_assets.metadata import load_metadata
from rcm_assets.runs import load_definitions
from rcm_assets_tests.conftest import Project

EMR = ["departments", "encounters", "patients", "providers", "transactions"]


def requests(name: str = "emr_incremental_schedule") -> list[tuple[str, list[str]]]:
    defs = load_definitions()
    schedule = defs.resolve_schedule_def(name)
    context = build_schedule_context(
        scheduled_execution_time=datetime(2026, 11, 24, 2, tzinfo=UTC),
        repository_def=defs.get_repository_def(),
    )
    return sorted(
        (r.partition_key, sorted(k.path[-1] for k in r.asset_selection))
        for r in schedule.evaluate_tick(context).run_requests
    )


def test_daily_at_the_metadata_cron_for_every_emr_partition(project: Project) -> None:
    schedule = load_definitions().resolve_schedule_def("emr_incremental_schedule")
    assert schedule.cron_schedule == "0 2 * * *"
    assert schedule.execution_timezone == "UTC"
    assert requests() == [("hos-a", EMR), ("hos-b", EMR)]


def test_cron_change_and_inactive_table_follow_metadata(project: Project) -> None:
    project.edit_metadata("schedules.csv", "0 2 * * *", "30 5 * * 1-5")
    project.edit_metadata(
        "load_config.csv",
        "hos-b,dbo.providers,Full,,1,hosb",
        "hos-b,dbo.providers,Full,,0,hosb",
    )
    schedule = load_definitions().resolve_schedule_def("emr_incremental_schedule")
    assert schedule.cron_schedule == "30 5 * * 1-5"
    assert requests() == [
        ("hos-a", [t for t in EMR if t != "providers"]),
        ("hos-b", [t for t in EMR if t != "providers"]),
    ]
    assert requests("emr_incremental_schedule__hos_a") == [("hos-a", ["providers"])]


def test_bad_cron_names_file_line_and_column(project: Project) -> None:
    project.edit_metadata("schedules.csv", "0 2 * * *", "every day")
    with pytest.raises(MetadataError, match=r"schedules.csv, line 2, column cron: .*'every day'"):
        load_metadata()
