"""sensors.py with the real sensor machinery: build_sensor_context + evaluate_tick."""

import json
import os
import time
from collections.abc import Callable

import polars as pl
import pytest
from dagster import AssetCheckKey, AssetKey, DagsterInstance, build_sensor_context
from dagster._core.definitions.sensor_definition import SensorExecutionData

from rcm_assets.resources import LandingStoreResource
from rcm_assets.runs import load_definitions
from rcm_assets_tests.bronze_helpers import run_all
from rcm_assets_tests.conftest import Project
from rcm_assets_tests.dagster_server import DagsterDevServer
from rcm_assets_tests.landing_corpus import CLAIM_COLUMNS, claim


def tick(instance: DagsterInstance, cursor: str | None = None) -> SensorExecutionData:
    defs = load_definitions()
    sensor = defs.resolve_sensor_def("landing_files_sensor")
    with build_sensor_context(
        instance_ref=instance.get_ref(),
        cursor=cursor,
        definitions=defs,
        resources={"landing": LandingStoreResource()},
    ) as context:
        return sensor.evaluate_tick(context)


def drop(project: Project, path: str, text: str) -> None:
    local = project.home / "landing" / path
    local.parent.mkdir(parents=True, exist_ok=True)
    local.write_text(text)


def test_new_file_gives_one_run_for_its_partition(
    project: Project, instance: DagsterInstance
) -> None:
    drop(project, "claims/hospital2_0101.csv", CLAIM_COLUMNS + "\n" + claim(1) + "\n")

    result = tick(instance)

    [request] = result.run_requests
    assert request.partition_key == "hos-b"
    assert [k.to_user_string() for k in request.asset_selection] == ["bronze/claims"]
    assert request.run_config == {
        "ops": {"bronze__claims": {"config": {"files": ["claims/hospital2_0101.csv"]}}}
    }
    assert request.run_key.startswith("claims/hospital2_0101.csv@")
    assert json.loads(result.cursor) == {"claims/hospital2_0101.csv": request.run_key.split("@")[1]}


def test_same_file_again_gives_nothing_and_a_changed_file_a_new_run(
    project: Project, instance: DagsterInstance
) -> None:
    drop(project, "claims/hospital1_0101.csv", CLAIM_COLUMNS + "\n" + claim(1) + "\n")
    first = tick(instance)

    again = tick(instance, first.cursor)
    assert not again.run_requests
    assert "no new or changed landing files" in again.skip_message

    time.sleep(0.01)
    drop(project, "claims/hospital1_0101.csv", CLAIM_COLUMNS + "\n" + claim(2) + "\n")
    changed = tick(instance, first.cursor)
    [request] = changed.run_requests
    assert request.partition_key == "hos-a"
    assert request.run_key != first.run_requests[0].run_key


def test_same_size_touched_file_is_a_new_version(
    project: Project, instance: DagsterInstance
) -> None:
    drop(project, "claims/hospital1_a.csv", CLAIM_COLUMNS + "\n" + claim(1) + "\n")
    first = tick(instance)
    path = project.home / "landing" / "claims" / "hospital1_a.csv"
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))

    assert len(tick(instance, first.cursor).run_requests) == 1


def test_unknown_file_name_is_skipped_with_a_reason(
    project: Project, instance: DagsterInstance
) -> None:
    drop(project, "claims/payer_remit_0101.csv", "x\n")

    result = tick(instance)

    assert not result.run_requests
    assert "claims/payer_remit_0101.csv: the name matches no claims pattern" in result.skip_message
    assert "hospital1_*.csv" in result.skip_message


def test_each_table_and_partition_gets_its_own_run(
    project: Project, instance: DagsterInstance
) -> None:
    drop(project, "claims/hospital1_x.csv", CLAIM_COLUMNS + "\n")
    drop(project, "claims/hospital2_x.csv", CLAIM_COLUMNS + "\n")
    drop(project, "cptcodes/cpt.csv", "Procedure Code Category,CPT Codes\n")
    drop(project, "processed/claims/old/hospital1_x.csv", "already done\n")

    requests = tick(instance).run_requests

    assert sorted((r.partition_key or "-", r.asset_selection[0].path[-1]) for r in requests) == [
        ("-", "cpt_codes"),
        ("hos-a", "claims"),
        ("hos-b", "claims"),
    ]


def test_nothing_in_landing_skips(project: Project, instance: DagsterInstance) -> None:
    assert tick(instance).skip_message == "no new or changed landing files"


RUNS_FOR_FILE = """
query Runs($path: String!) {
  runsOrError(filter: {tags: [{key: "rcm/landing_file", value: $path}]}) {
    ... on Runs { results { runId status tags { key value } } }
  }
}
"""


@pytest.mark.slow
def test_daemon_ingests_a_dropped_file_end_to_end(
    sampled: Project,
    instance: DagsterInstance,
    dagster_server_factory: Callable[..., DagsterDevServer],
) -> None:
    """`dagster dev` on the sample data: a new claims file becomes exactly its rows in bronze."""
    run_all(instance)  # the sample files are ingested first, so only the new file is pending
    bronze = str(sampled.lake / "bronze" / "claims")
    before = pl.scan_delta(bronze).filter(pl.col("datasource") == "hos-b").select(pl.len())
    before_rows = before.collect().item()
    server = dagster_server_factory()
    server.wait_for_daemons()

    rows = 25
    staged = sampled.home / "landing" / "claims" / ".hospital2_late.csv.part"
    staged.write_text("\n".join([CLAIM_COLUMNS, *(claim(n) for n in range(rows))]) + "\n")
    staged.rename(staged.with_name("hospital2_late.csv"))  # appear whole, never half-written

    def finished_run() -> dict | None:
        runs = server.graphql(RUNS_FOR_FILE, {"path": "claims/hospital2_late.csv"})
        results = runs["runsOrError"]["results"]
        done = [r for r in results if r["status"] in ("SUCCESS", "FAILURE", "CANCELED")]
        return done[0] if done else None

    run = server.wait_until(finished_run, timeout=180, what="the sensor's run to finish")

    assert run["status"] == "SUCCESS", server.log_tail()
    assert {"key": "dagster/partition", "value": "hos-b"} in run["tags"]
    after = pl.scan_delta(bronze).filter(pl.col("datasource") == "hos-b").select(pl.len())
    assert after.collect().item() == before_rows + rows
    assert not (sampled.home / "landing" / "claims" / "hospital2_late.csv").exists()

    def silver_has_the_new_claims() -> bool:  # the automation sensor follows with silver
        silver = sampled.lake / "silver" / "claims"
        if not silver.exists():
            return False
        keys = pl.scan_delta(str(silver)).filter(pl.col("claim_key").str.starts_with("CLAIM9"))
        return keys.select(pl.len()).collect().item() == rows

    server.wait_until(silver_has_the_new_claims, timeout=240, what="silver/claims to follow")

    check = AssetCheckKey(AssetKey(["silver", "claims"]), "referential_integrity")

    def automation_evaluated_the_check() -> bool:  # the table's checks run with it, unattended
        history = instance.event_log_storage.get_asset_check_execution_history(check, limit=1)
        if not history or history[0].status.value == "PLANNED":
            return False
        run = instance.get_run_by_id(history[0].run_id)
        return run is not None and run.tags.get("dagster/from_automation_condition") == "true"

    server.wait_until(
        automation_evaluated_the_check, timeout=240, what="silver/claims referential_integrity"
    )
