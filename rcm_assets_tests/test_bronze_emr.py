"""bronze/emr.py through the real Dagster machinery on real SQLite sources and Delta tables."""

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path

import polars as pl
import pytest
from dagster import AssetKey, DagsterInstance

from rcm_assets.bronze import load_record
from rcm_assets.bronze.watermark import high_watermark
from rcm_assets.runs import load_definitions
from rcm_assets.sample_data import HospitalProfile, generate_sources
from rcm_assets_tests.bronze_helpers import (
    TABLES,
    WATERMARKS,
    Sources,
    audit_logs,
    bronze,
    by_status,
    delta_version,
    run_all,
    run_bronze,
    sqlite_sources,
)
from rcm_assets_tests.conftest import Project

ALL = {(f"bronze/{t}", ds) for t in TABLES for ds in ("hos-a", "hos-b")}
INCREMENTAL = ("encounters", "patients", "transactions")  # loadtype Incremental in metadata


def test_first_run_loads_every_active_table(sources: Sources, instance: DagsterInstance) -> None:
    outcomes = run_all(instance)

    assert by_status(outcomes, "materialized") == ALL
    for target in ("hosa", "hosb"):
        for table in TABLES:
            landed = bronze(sources.project, target, table)
            assert landed.height == sources.count(target, table)
            assert landed.get_column("datasource").unique().to_list() == [f"hos-{target[-1]}"]
            assert landed.get_column("load_id").n_unique() == 1
            assert landed.schema["ingested_at"] == pl.Datetime("us", "UTC")
    logs = audit_logs(sources.project)
    assert logs.height == 10
    assert logs.get_column("status").unique().to_list() == ["success"]
    for (target, table), column in WATERMARKS.items():
        row = logs.filter(
            (pl.col("data_source") == f"hos-{target[-1]}") & (pl.col("tablename") == f"dbo.{table}")
        ).row(0, named=True)
        assert row["watermarkcolumnname"] == column
        assert row["watermark_max"] == sources.max_watermark(target, table)
        assert row["numberofrowscopied"] == sources.count(target, table)


def test_materialization_metadata_shows_the_load(
    sources: Sources, instance: DagsterInstance
) -> None:
    run_bronze(instance, ["hos-b"])
    event = instance.get_latest_materialization_event(AssetKey(["bronze", "patients"]))
    assert event is not None
    metadata = event.asset_materialization.metadata
    assert metadata["rows_loaded"].value == metadata["dagster/row_count"].value > 0
    assert {"load_type", "load_id", "watermark_from", "watermark_to", "source_query"} <= set(
        metadata
    )
    assert "SELECT" in metadata["source_query"].value


def test_incremental_after_mutate_appends_exactly_the_changed_rows(
    sources: Sources, instance: DagsterInstance
) -> None:
    run_all(instance)
    before = {
        (t, table): bronze(sources.project, t, table).height
        for t in ("hosa", "hosb")
        for table in TABLES
    }
    changes = sources.mutate(seed=11)

    outcomes = run_all(instance)

    assert by_status(outcomes, "materialized") == ALL
    logs = audit_logs(sources.project).sort("loaddate")
    for target in ("hosa", "hosb"):
        for table in TABLES:
            landed = bronze(sources.project, target, table)
            second = landed.filter(pl.col("load_id") == landed.get_column("load_id").sort()[-1])
            change = changes[(target, table)]
            if (target, table) in WATERMARKS:
                assert change.updated + change.inserted > 0
                assert second.height == change.updated + change.inserted, (target, table)
                assert landed.height == before[(target, table)] + second.height
                table_logs = logs.filter(
                    (pl.col("data_source") == f"hos-{target[-1]}")
                    & (pl.col("tablename") == f"dbo.{table}")
                )
                first_max, new_max = table_logs.get_column("watermark_max").to_list()
                assert new_max == sources.max_watermark(target, table) > first_max
                assert table_logs.get_column("watermark_from").to_list()[1] == first_max
            else:
                assert second.height == sources.count(target, table) == change.rows


def test_rerun_without_source_changes_appends_nothing(
    sources: Sources, instance: DagsterInstance
) -> None:
    run_all(instance)
    versions = {t: delta_version(sources.project.lake / "bronze" / "hosa" / t) for t in TABLES}

    run_bronze(instance, ["hos-a"])

    for table in ("patients", "encounters", "transactions"):
        assert delta_version(sources.project.lake / "bronze" / "hosa" / table) == versions[table]
    for table in ("providers", "departments"):
        assert (
            delta_version(sources.project.lake / "bronze" / "hosa" / table) == versions[table] + 1
        )
    latest = audit_logs(sources.project).sort("loaddate").tail(5)
    assert latest.filter(pl.col("load_type") == "Incremental").get_column(
        "numberofrowscopied"
    ).to_list() == [0, 0, 0]


def test_row_written_later_at_the_same_watermark_is_loaded_once(
    sources: Sources, instance: DagsterInstance
) -> None:
    run_bronze(instance, ["hos-a"])
    sources.execute(
        "hosa",
        """INSERT INTO {patients} SELECT 'HOSP1-LATE01', "FirstName", "LastName", "MiddleName",
        "SSN", "PhoneNumber", "Gender", "DOB", "Address",
        (SELECT MAX("ModifiedDate") FROM {patients}) FROM {patients} LIMIT 1""",
    )

    run_bronze(instance, ["hos-a"])
    run_bronze(instance, ["hos-a"])

    landed = bronze(sources.project, "hosa", "patients")
    assert landed.filter(pl.col("PatientID") == "HOSP1-LATE01").height == 1
    assert landed.height == sources.count("hosa", "patients")


def test_inactive_row_removes_partition_and_load(
    sources: Sources, instance: DagsterInstance
) -> None:
    sources.project.edit_metadata(
        "load_config.csv",
        "hos-a,dbo.patients,Incremental,ModifiedDate,1,hosa",
        "hos-a,dbo.patients,Incremental,ModifiedDate,0,hosa",
    )
    graph = load_definitions().resolve_asset_graph()
    patients = next(k for k in graph.get_all_asset_keys() if k.path == ["bronze", "patients"])
    assert graph.get(patients).partitions_def.get_partition_keys() == ["hos-b"]

    outcomes = run_all(instance)

    assert by_status(outcomes, "materialized") == ALL - {("bronze/patients", "hos-a")}
    assert not (sources.project.lake / "bronze" / "hosa" / "patients").exists()
    assert audit_logs(sources.project).height == 9


def test_third_hospital_needs_only_metadata_and_a_database(
    sources: Sources, instance: DagsterInstance
) -> None:
    hospital_c = HospitalProfile("healthcare-rcm-hospital-c", "HOSP3", "hospital3", "b")
    generate_sources(sources.project.home, scale=0.05, seed=3, hospitals=[hospital_c])
    sources.project.append_metadata(
        "databases.csv", "healthcare-rcm-hospital-c,RCM_DB_URI_HOSPITAL_C,C"
    )
    for table, loadtype, watermark in [
        ("patients", "Incremental", "Updated_Date"),
        ("encounters", "Incremental", "ModifiedDate"),
        ("transactions", "Incremental", "ModifiedDate"),
        ("providers", "Full", ""),
        ("departments", "Full", ""),
    ]:
        sources.project.append_metadata(
            "load_config.csv",
            f"healthcare-rcm-hospital-c,hos-c,dbo.{table},{loadtype},{watermark},1,hosc",
        )

    outcomes = run_bronze(instance, ["hos-c"])

    assert by_status(outcomes, "materialized") == {(f"bronze/{t}", "hos-c") for t in TABLES}
    patients = bronze(sources.project, "hosc", "patients")
    assert patients.get_column("ID").str.starts_with("HOSP3-").any()
    assert patients.get_column("datasource").unique().to_list() == ["hos-c"]


# --- bad input: each names the culprit, the other partitions are unaffected ---------------


def _failure(outcomes: list, asset: str, partition: str) -> str:
    failed = [
        o for o in outcomes if (o.asset, o.partition, o.status) == (asset, partition, "failed")
    ]
    assert failed, outcomes
    return failed[0].message


def test_unreachable_database_names_datasource_not_password(
    sources: Sources, instance: DagsterInstance, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = "S3cretPassw0rd"
    monkeypatch.setenv("RCM_DB_URI_HOSPITAL_A", f"postgresql://rcm:{secret}@127.0.0.1:1/emr")

    outcomes = run_all(instance)

    assert by_status(outcomes, "materialized") == {(f"bronze/{t}", "hos-b") for t in TABLES}
    message = _failure(outcomes, "bronze/patients", "hos-a")
    assert "datasource hos-a" in message and "healthcare-rcm-hospital-a" in message
    assert "postgresql://rcm:***@127.0.0.1:1/emr" in message
    logged = [str(entry) for run in instance.get_runs() for entry in instance.all_logs(run.run_id)]
    assert any("datasource hos-a" in line for line in logged)
    assert not [line for line in logged if secret in line]
    assert not audit_logs(sources.project).filter(pl.col("error").str.contains(secret)).height
    assert audit_logs(sources.project).filter(pl.col("status") == "failed").height == 5


def test_missing_table_fails_only_that_partition(
    sources: Sources, instance: DagsterInstance
) -> None:
    sources.execute("hosa", "DROP TABLE {encounters}")

    outcomes = run_all(instance)

    message = _failure(outcomes, "bronze/encounters", "hos-a")
    assert message.startswith(
        "datasource hos-a: table dbo.encounters not found in database healthcare-rcm-hospital-a ("
    )
    assert by_status(outcomes, "materialized") == ALL - {("bronze/encounters", "hos-a")}


def test_missing_watermark_column_is_named(sources: Sources, instance: DagsterInstance) -> None:
    sources.project.edit_metadata(
        "load_config.csv",
        "hos-b,dbo.encounters,Incremental,ModifiedDate",
        "hos-b,dbo.encounters,Incremental,LastTouched",
    )

    outcomes = run_bronze(instance, ["hos-b"])

    message = _failure(outcomes, "bronze/encounters", "hos-b")
    assert "datasource hos-b: watermark column 'LastTouched' not found in dbo.encounters" in message
    assert not (sources.project.lake / "bronze" / "hosb" / "encounters").exists()


def _one_watermark_becomes(
    sources: Sources, instance: DagsterInstance, value: str
) -> tuple[Path, int, str]:
    """After hos-b's first load, one transaction's watermark becomes `value` at the source:
    the bronze table, its version and the transaction id."""
    run_bronze(instance, ["hos-b"])
    table = sources.project.lake / "bronze" / "hosb" / "transactions"
    victim = sources.rows("hosb", 'SELECT "TransactionID" FROM {transactions} LIMIT 1')[0][0]
    sources.execute(
        "hosb",
        'UPDATE {transactions} SET "ModifiedDate" = ? WHERE "TransactionID" = ?',
        (value, victim),
    )
    return table, delta_version(table), victim


def test_unparseable_watermark_fails_without_moving_the_watermark(
    sources: Sources, instance: DagsterInstance
) -> None:
    if sources.backend == "postgres":
        pytest.skip("a PostgreSQL TIMESTAMP column cannot hold an unparseable value")
    if sources.backend == "mysql":
        pytest.skip("a MariaDB DATETIME column cannot hold an unparseable value")
    table, version, victim = _one_watermark_becomes(sources, instance, "2099-13-45 99:00")

    outcomes = run_bronze(instance, ["hos-b"])

    message = _failure(outcomes, "bronze/transactions", "hos-b")
    assert "datasource hos-b" in message and "dbo.transactions" in message
    assert "'2099-13-45 99:00'" in message and f"TransactionID={victim!r}" in message
    assert delta_version(table) == version
    logs = (
        audit_logs(sources.project)
        .filter(pl.col("tablename") == "dbo.transactions")
        .sort("loaddate")
    )
    assert logs.get_column("status").to_list() == ["success", "failed"]
    assert logs.get_column("watermark_max")[1] == logs.get_column("watermark_max")[0]


def test_a_watermark_in_the_future_fails_the_load_naming_the_row(
    sources: Sources, instance: DagsterInstance
) -> None:
    # a typo: year 2099
    table, version, victim = _one_watermark_becomes(sources, instance, "2099-01-05 10:00:00")

    outcomes = run_bronze(instance, ["hos-b"])

    message = _failure(outcomes, "bronze/transactions", "hos-b")
    assert "datasource hos-b" in message and "dbo.transactions" in message
    assert "has a watermark 'ModifiedDate' in the future" in message
    assert "'2099-01-05 10:00:00" in message and f"TransactionID={victim!r}" in message
    assert "future_watermark_hours in metadata/databases.csv" in message
    assert delta_version(table) == version  # nothing appended, the watermark did not move

    sources.project.edit_metadata(  # a source whose clock is allowed to run far ahead
        "databases.csv",
        "RCM_DB_URI_HOSPITAL_B,Hospital B EMR (Azure SQL in production)",
        "RCM_DB_URI_HOSPITAL_B,Hospital B EMR (Azure SQL in production),1000000",
    )
    sources.project.edit_metadata(
        "databases.csv", "uri_env_var,description", "uri_env_var,description,future_watermark_hours"
    )
    assert all(o.status == "materialized" for o in run_bronze(instance, ["hos-b"]))


def test_an_empty_full_snapshot_is_held_back_naming_the_table(
    sources: Sources, instance: DagsterInstance
) -> None:
    run_bronze(instance, ["hos-b"])
    table = sources.project.lake / "bronze" / "hosb" / "providers"
    version = delta_version(table)
    sources.execute("hosb", "DELETE FROM {providers}")  # a failed export: every row gone

    outcomes = run_bronze(instance, ["hos-b"])

    message = _failure(outcomes, "bronze/providers", "hos-b")
    assert "datasource hos-b: the full snapshot of dbo.providers is empty; held back" in message
    assert delta_version(table) == version  # nothing appended: the last snapshot stays current
    statuses = {(o.asset, o.status) for o in outcomes if o.partition == "hos-b"}
    assert ("bronze/patients", "materialized") in statuses  # the other tables still load


def test_rows_an_incremental_extract_cannot_reach_fail_a_warning_check_naming_them(
    sources: Sources, instance: DagsterInstance
) -> None:
    from rcm_assets.bronze.emr import WATERMARK_CHECK

    run_bronze(instance, ["hos-b"])  # then two rows change in ways `>= watermark` never sees
    [(first,), (second,)] = sources.rows(
        "hosb", 'SELECT "TransactionID" FROM {transactions} ORDER BY "TransactionID" LIMIT 2'
    )
    sources.execute(
        "hosb",
        'UPDATE {transactions} SET "ModifiedDate" = NULL WHERE "TransactionID" = ?',
        (first,),
    )
    if sources.backend == "sqlite":  # text that compares as text: 12/... sorts before 2025-...
        sources.execute(
            "hosb",
            """UPDATE {transactions} SET "ModifiedDate" = '12/31/2026 10:00:00'
            WHERE "TransactionID" = ?""",
            (second,),
        )
    job = load_definitions().resolve_implicit_global_asset_job_def()
    result = job.execute_in_process(
        instance=instance,
        partition_key="hos-b",
        asset_selection=[AssetKey(["bronze", "transactions"])],
        raise_on_error=False,
    )

    [evaluation] = [
        e for e in result.get_asset_check_evaluations() if e.check_name == WATERMARK_CHECK
    ]
    assert not evaluation.passed and evaluation.severity.value == "WARN"
    assert evaluation.metadata["null_watermark_rows"].value == 1
    assert f"1 row(s) with a NULL ModifiedDate (e.g. TransactionID {first})" in (
        evaluation.description
    )
    if sources.backend == "sqlite":
        assert evaluation.metadata["not_comparable_rows"].value == 1
        assert f"TransactionID {second} = 12/31/2026 10:00:00" in evaluation.description
    assert result.success  # the rest of the table still loads


def test_a_column_gone_from_the_source_stops_the_load_unless_metadata_allows_it(
    sources: Sources, instance: DagsterInstance
) -> None:
    run_bronze(instance, ["hos-b"])
    table = sources.project.lake / "bronze" / "hosb" / "patients"
    version = delta_version(table)
    sources.execute("hosb", 'ALTER TABLE {patients} DROP COLUMN "M_Name"')

    outcomes = run_bronze(instance, ["hos-b"])

    message = _failure(outcomes, "bronze/patients", "hos-b")
    assert "datasource hos-b: column(s) M_Name of dbo.patients are gone from the source" in message
    assert "list them in the dropped_columns of hos-b,dbo.patients" in message
    assert delta_version(table) == version

    sources.project.edit_metadata("load_config.csv", "targetpath\n", "targetpath,dropped_columns\n")
    sources.project.edit_metadata(
        "load_config.csv",
        "hos-b,dbo.patients,Incremental,Updated_Date,1,hosb",
        "hos-b,dbo.patients,Incremental,Updated_Date,1,hosb,M_Name",
    )
    assert all(o.status == "materialized" for o in run_bronze(instance, ["hos-b"]))


def test_two_runs_at_once_never_load_the_same_slice_twice(
    sources: Sources, instance: DagsterInstance, monkeypatch: pytest.MonkeyPatch
) -> None:
    from rcm_assets.bronze import emr
    from rcm_assets.bronze.load_record import ConcurrentLoadError
    from rcm_assets.metadata import load_metadata
    from rcm_assets.resources import EmrSourcesResource, LakeResource

    metadata, lake = load_metadata(), LakeResource().addresses
    [config] = [
        c for c in metadata.load_configs if (c.datasource, c.table) == ("hos-b", "patients")
    ]
    source = EmrSourcesResource().open(metadata.databases[config.database], "hos-b")
    real = emr._loaded_watermark

    def then_another_run_loads(config: object, lake: object) -> object:
        read = real(config, lake)  # this run has read the watermark; a second run loads now
        monkeypatch.setattr(emr, "_loaded_watermark", real)
        emr.load_emr_table(config, source, lake, run_id="second-run")
        return read

    monkeypatch.setattr(emr, "_loaded_watermark", then_another_run_loads)
    with pytest.raises(ConcurrentLoadError, match="was loaded by another run while this one"):
        emr.load_emr_table(config, source, lake, run_id="first-run")

    assert bronze(sources.project, "hosb", "patients").height == sources.count("hosb", "patients")
    statuses = audit_logs(sources.project).sort("loaddate").get_column("status").to_list()
    assert statuses == ["failed", "success"]  # the first run started first, and refused


def test_crash_between_bronze_commit_and_audit_row_loses_and_duplicates_nothing(
    sources: Sources, instance: DagsterInstance, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_append = load_record.audit.append_logs

    def crash_on_success(uri: str, logs: list, options: object = None) -> None:
        if logs and logs[0].status == "success":
            raise RuntimeError("simulated crash after the bronze commit")
        real_append(uri, logs, options)

    monkeypatch.setattr(load_record.audit, "append_logs", crash_on_success)
    run_bronze(instance, ["hos-a"])
    monkeypatch.setattr(load_record.audit, "append_logs", real_append)
    first = bronze(sources.project, "hosa", "transactions").height
    change = sources.mutate(seed=5)[("hosa", "transactions")]

    run_bronze(instance, ["hos-a"])

    assert (
        bronze(sources.project, "hosa", "transactions").height
        == first + change.updated + change.inserted
    )
    logs = (
        audit_logs(sources.project)
        .filter(pl.col("tablename") == "dbo.transactions")
        .sort("loaddate")
    )
    assert logs.get_column("status").to_list() == ["recovered", "success"]
    assert logs.get_column("numberofrowscopied").to_list() == [
        first,
        change.updated + change.inserted,
    ]


def _kill_rcm_run_when(condition: Callable[[], bool], env: Mapping[str, str]) -> bool:
    """Start `rcm run --partition hos-a`, SIGKILL it as soon as `condition` holds; whether it
    was killed (rather than finished first)."""
    process = subprocess.Popen(
        [str(Path(sys.executable).parent / "rcm"), "run", "--partition", "hos-a"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=dict(env),
    )
    deadline = time.monotonic() + 300
    while process.poll() is None and time.monotonic() < deadline:
        if condition():
            process.send_signal(signal.SIGKILL)
            break
        time.sleep(0.002)
    return process.wait() == -signal.SIGKILL


@pytest.mark.slow
def test_sigkill_during_bronze_write_leaves_table_and_watermark(
    sampled: Project, instance: DagsterInstance
) -> None:
    """Kill `rcm run` while its transactions extract writes Delta files, before the commit."""
    run_bronze(instance, ["hos-a"])
    table = sampled.lake / "bronze" / "hosa" / "transactions"
    version, before = delta_version(table), bronze(sampled, "hosa", "transactions").height
    watermark = audit_logs(sampled).filter(pl.col("tablename") == "dbo.transactions")[
        "watermark_max"
    ]
    sources = sqlite_sources(sampled)
    inserted = 1_000 * before  # enough rows that writing the Delta files takes seconds
    sources.copy_transactions("hosa", 1000, "2026-03-01 00:00:00")
    existing = set(os.listdir(table))
    # kill once a data file is being written
    killed = _kill_rcm_run_when(lambda: bool(set(os.listdir(table)) - existing), os.environ)
    assert killed, "the run ended before its bronze write started"

    assert delta_version(table) == version
    assert bronze(sampled, "hosa", "transactions").height == before
    assert high_watermark(pl.scan_delta(str(table)), "ModifiedDate")[0] == watermark[0]

    outcomes = run_bronze(instance, ["hos-a"])

    loaded = next(o for o in outcomes if o.asset == "bronze/transactions")
    assert loaded.rows == inserted
    landed = bronze(sampled, "hosa", "transactions")
    assert landed.height == before + inserted
    assert landed.get_column("TransactionID").n_unique() == landed.height


@pytest.mark.slow
def test_sigkill_while_an_extract_streams_leaves_table_and_watermark(
    sampled: Project, instance: DagsterInstance, tmp_path: Path
) -> None:
    """Kill `rcm run` between two batches of a streamed extract, before anything is written."""
    run_bronze(instance, ["hos-a"])
    table = sampled.lake / "bronze" / "hosa" / "transactions"
    version, before = delta_version(table), bronze(sampled, "hosa", "transactions").height
    watermark = high_watermark(pl.scan_delta(str(table)), "ModifiedDate")[0]
    sqlite_sources(sampled).copy_transactions("hosa", 200, "2026-03-01 00:00:00")
    staging_root = tmp_path / "staging"
    staging_root.mkdir()
    env = {**os.environ, "TMPDIR": str(staging_root), "RCM_EXTRACT_BATCH_ROWS": "500"}

    def streaming() -> bool:  # batches have arrived, the extract is still streaming
        return any(p.stat().st_size for p in staging_root.glob("rcm-staging-*/batches.arrows"))

    assert _kill_rcm_run_when(streaming, env), "the run ended before an extract streamed"

    assert delta_version(table) == version
    assert bronze(sampled, "hosa", "transactions").height == before
    assert high_watermark(pl.scan_delta(str(table)), "ModifiedDate")[0] == watermark

    outcomes = run_bronze(instance, ["hos-a"])

    loaded = next(o for o in outcomes if o.asset == "bronze/transactions")
    assert loaded.rows == 200 * before
    landed = bronze(sampled, "hosa", "transactions")
    assert landed.height == before + 200 * before
    assert landed.get_column("TransactionID").n_unique() == landed.height


def test_a_killed_loads_staging_folder_is_removed_by_the_next_load(tmp_path: Path) -> None:
    from rcm_assets.staging import STAGING_PREFIX, remove_abandoned

    dead = subprocess.Popen(["true"])
    dead.wait()
    abandoned = tmp_path / f"{STAGING_PREFIX}{dead.pid}-abc"
    ours = tmp_path / f"{STAGING_PREFIX}{os.getpid()}-def"
    for folder in (abandoned, ours):
        folder.mkdir()
        (folder / "batches.arrows").write_bytes(b"x" * 10)

    assert remove_abandoned(tmp_path) == [abandoned]
    assert not abandoned.exists() and ours.exists()


def test_boundary_rows_written_differently_by_another_engine_are_not_loaded_twice() -> None:
    """A hospital moves from SQLite to PostgreSQL: the same rows at the last watermark come back
    as `161.10` and `...10:00:00.000`; they are the loaded rows, and only new ones pass."""
    from rcm_assets.bronze.watermark import drop_loaded

    loaded = pl.DataFrame(
        {"id": ["1", "2"], "amount": ["161.1", "5"], "modified": ["2024-01-01 10:00:00"] * 2}
    )
    extract = pl.DataFrame(
        {
            "id": ["1", "2", "3"],
            "amount": ["161.10", "5.00", "7"],
            "modified": ["2024-01-01 10:00:00.000", "2024-01-01T10:00:00", "2024-01-01 10:00:00"],
        }
    )

    kept = drop_loaded(extract, loaded, "modified")

    assert kept.get_column("id").to_list() == ["3"]  # the new row at the boundary instant
    changed = extract.with_columns(
        pl.when(pl.col("id") == "2").then(pl.lit("6")).otherwise("amount").alias("amount")
    )
    assert sorted(drop_loaded(changed, loaded, "modified").get_column("id")) == ["2", "3"]


@pytest.mark.parametrize("sources", ["postgres", "mysql"], indirect=True)
def test_a_hospital_moved_from_sqlite_to_a_server_loads_no_row_twice(
    sources: Sources,
    instance: DagsterInstance,
    sample_sources: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The same data, loaded from SQLite, then from PostgreSQL or MariaDB (which write numbers
    and date/times differently): the incremental extracts after the move append nothing."""
    server_uri = os.environ["RCM_DB_URI_HOSPITAL_B"]
    shutil.copytree(sample_sources / "sources", sources.project.home / "sources")
    monkeypatch.delenv("RCM_DB_URI_HOSPITAL_B")  # hos-b on its embedded SQLite file first
    run_bronze(instance, ["hos-b"])
    before = {t: bronze(sources.project, "hosb", t).height for t in INCREMENTAL}

    monkeypatch.setenv("RCM_DB_URI_HOSPITAL_B", server_uri)  # the same rows, on the server
    outcomes = run_bronze(instance, ["hos-b"])

    assert by_status(outcomes, "materialized") >= {(f"bronze/{t}", "hos-b") for t in INCREMENTAL}
    assert {t: bronze(sources.project, "hosb", t).height for t in INCREMENTAL} == before


@pytest.mark.parametrize("limit", [1, 2])
def test_a_database_serves_at_most_its_max_concurrent_extracts(
    sampled: Project, instance: DagsterInstance, limit: int
) -> None:
    """Another run holds one extract slot of hospital A's pool: with a limit of 1 the next
    extract waits for it (and says so), with 2 it goes ahead."""
    import threading

    from rcm_assets.bronze.source_slots import pool_of
    from rcm_assets.metadata import load_metadata

    sampled.edit_metadata(
        "databases.csv",
        "(Azure SQL in production),2\nhealthcare-rcm-hospital-b",
        f"(Azure SQL in production),{limit}\nhealthcare-rcm-hospital-b",
    )
    database = load_metadata().databases["healthcare-rcm-hospital-a"]
    assert database.max_concurrent_extracts == limit
    storage, pool = instance.event_log_storage, pool_of(database)
    storage.set_concurrency_slots(pool, limit)
    assert storage.claim_concurrency_slot(pool, "another-run", "its-extract").is_claimed
    outcomes: list = []
    worker = threading.Thread(target=lambda: outcomes.extend(run_bronze(instance, ["hos-a"])))
    worker.start()

    if limit == 1:
        deadline = time.monotonic() + 60
        while not storage.get_concurrency_info(pool).pending_step_count:
            assert time.monotonic() < deadline, "no extract ever waited for the pool"
            time.sleep(0.1)
        time.sleep(2)  # it keeps waiting, and has written nothing
        assert worker.is_alive() and not (sampled.lake / "bronze" / "hosa").exists()
        info = storage.get_concurrency_info(pool)
        assert info.active_run_ids == {"another-run"} and info.pending_step_count == 1
    storage.free_concurrency_slot_for_step("another-run", "its-extract")
    worker.join(timeout=120)

    assert not worker.is_alive()
    assert by_status(outcomes, "materialized") == {(f"bronze/{t}", "hos-a") for t in TABLES}
    assert storage.get_concurrency_info(pool).active_slot_count == 0  # every slot given back
    [run] = instance.get_runs(limit=1)
    waited = [
        e
        for e in instance.all_logs(run.run_id)
        if "waiting for a slot of pool" in (e.user_message or "")
    ]
    assert bool(waited) == (limit == 1)


def test_the_loaded_watermark_parses_only_the_top_loads_and_equals_a_full_parse(
    sources: Sources, instance: DagsterInstance, monkeypatch: pytest.MonkeyPatch
) -> None:
    from rcm_assets.bronze import emr
    from rcm_assets.lake import delta
    from rcm_assets.lake.addresses import LakeAddresses
    from rcm_assets.metadata import load_metadata

    run_bronze(instance, ["hos-a"])
    sources.mutate(seed=12)
    run_bronze(instance, ["hos-a"])  # a second, small load on top of the first
    lake = LakeAddresses(str(sources.project.lake))
    configs = [
        c
        for c in load_metadata().load_configs
        if c.datasource == "hos-a" and c.tablename.removeprefix("dbo.") in INCREMENTAL
    ]
    parsed: list[int] = []
    real = emr.high_watermark

    def counting(rows: pl.LazyFrame, column: str) -> tuple[str | None, pl.DataFrame]:
        parsed.append(rows.select(pl.len()).collect().item())
        return real(rows, column)

    monkeypatch.setattr(emr, "high_watermark", counting)
    for config in configs:
        rows = delta.scan(lake.emr_bronze(config))
        newest = rows.filter(pl.col("load_id") == pl.col("load_id").max()).collect()
        full_text, full_rows = real(rows, config.watermark)
        parsed.clear()

        text, boundary = emr._loaded_watermark(config, lake)

        assert (text, boundary.sort(pl.all()).to_dicts()) == (
            full_text,
            full_rows.sort(pl.all()).to_dicts(),
        )
        assert parsed == [newest.height] < [rows.select(pl.len()).collect().item()], config

        # The top rows erased (a patient's right to erasure): every row is parsed again.
        delta.delete(
            lake.emr_bronze(config), f"\"{config.watermark}\" = '{text}'", {"operation": "erase"}
        )
        parsed.clear()
        text, boundary = emr._loaded_watermark(config, lake)
        rows = delta.scan(lake.emr_bronze(config))
        expected_text, expected_rows = real(rows, config.watermark)
        assert text == expected_text != full_text
        assert boundary.sort(pl.all()).equals(expected_rows.sort(pl.all()))
        assert parsed[-1] == rows.select(pl.len()).collect().item()
