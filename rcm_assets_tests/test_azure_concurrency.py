"""Concurrent writers to one Delta table on Azurite: partitions commit side by side, a conflict
retries cleanly, and a writer that keeps losing fails without writing anything."""

from __future__ import annotations

import logging
import os
import subprocess
import sys

import polars as pl
import pytest
from dagster import AssetKey, DagsterInstance
from deltalake import DeltaTable

from rcm_assets.lake import delta, scd2
from rcm_assets.metadata import load_metadata
from rcm_assets.resources import LakeResource, LandingStoreResource
from rcm_assets.runs import load_definitions
from rcm_assets.silver.assets import build_silver_table
from rcm_assets_tests.conftest import Project
from rcm_assets_tests.landing_corpus import CLAIM_COLUMNS, claim

IN_PROCESS = '{"execution": {"config": {"in_process": {}}}}'


def claims_file(first: int, count: int, hospital: str = "HOSP1") -> str:
    rows = [claim(n).replace("HOSP1-", f"{hospital}-") for n in range(first, first + count)]
    return "\n".join([CLAIM_COLUMNS, *rows]) + "\n"


def materialize(partition: str, select: str = "bronze/claims") -> subprocess.Popen:
    command = [sys.executable, "-m", "dagster", "asset", "materialize", "-m"]
    command += ["rcm_assets.definitions", "--select", select, "--partition", partition]
    command += ["--config-json", IN_PROCESS]
    return subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=os.environ
    )


def test_two_runs_on_two_partitions_of_one_table_both_commit(azure_project: Project) -> None:
    store = LandingStoreResource()
    store.write_text("claims/hospital1_0101.csv", claims_file(1, 40))
    store.write_text("claims/hospital2_0101.csv", claims_file(101, 25, "HOSP2"))

    with DagsterInstance.get() as shared:  # create its storage once, not in two processes
        shared.get_runs(limit=1)
    runs = [materialize("hos-a"), materialize("hos-b")]  # at once, as two Dagster runs
    outputs = [run.communicate(timeout=300)[0] for run in runs]

    for run, output in zip(runs, outputs, strict=True):
        assert run.returncode == 0, output[-3000:]
    lake = LakeResource().addresses
    uri = lake.named("bronze/claims")
    claims = delta.scan(uri, lake.storage_options).collect()
    assert claims.group_by("datasource").len().sort("datasource").rows() == [
        ("hos-a", 40),
        ("hos-b", 25),
    ]
    writes = [c for c in delta.commits(uri, lake.storage_options) if c["rcm"].get("load_id")]
    assert len(writes) == 2  # no commit lost
    logs = delta.scan(lake.named("audit/load_logs"), lake.storage_options).collect()
    assert sorted(logs.get_column("data_source").to_list()) == ["hos-a", "hos-b"]


def test_two_hospitals_silver_steps_merge_into_one_table_at_once(azure_project: Project) -> None:
    """Each hospital's run loads its claims and merges its silver partition, both at once,
    twice: first loads (appends), then SCD2 merges that close and insert versions."""
    store, select = LandingStoreResource(), "bronze/claims,silver/claims"

    def both_at_once() -> None:
        runs = [materialize("hos-a", select), materialize("hos-b", select)]
        for run in runs:
            output = run.communicate(timeout=300)[0]
            assert run.returncode == 0, output[-3000:]

    with DagsterInstance.get() as shared:
        shared.get_runs(limit=1)
    store.write_text("claims/hospital1_0101.csv", claims_file(1, 40))
    store.write_text("claims/hospital2_0101.csv", claims_file(101, 25, "HOSP2"))
    both_at_once()
    later = {"100.00": "150.00", "2025-01-06 10:00:00": "2025-02-01 10:00:00"}
    changed_a, changed_b = claims_file(1, 10), claims_file(101, 5, "HOSP2")
    for old, new in later.items():
        changed_a, changed_b = changed_a.replace(old, new), changed_b.replace(old, new)
    store.write_text("claims/hospital1_0201.csv", changed_a)
    store.write_text("claims/hospital2_0201.csv", changed_b)
    both_at_once()

    lake = LakeResource().addresses
    uri = lake.named("silver/claims")
    silver = delta.scan(uri, lake.storage_options).collect()
    per_datasource = (
        silver.group_by("datasource")
        .agg(pl.len(), pl.col("is_current").sum(), pl.col("claim_key").n_unique())
        .sort("datasource")
    )
    assert per_datasource.rows() == [("hos-a", 50, 40, 40), ("hos-b", 30, 25, 25)]
    merges = [c for c in delta.commits(uri, lake.storage_options) if c["rcm"].get("datasource")]
    assert sorted(c["rcm"]["datasource"] for c in merges) == ["hos-a", "hos-a", "hos-b", "hos-b"]


def ingest_claims(instance: DagsterInstance, partition: str) -> None:
    job = load_definitions().resolve_implicit_global_asset_job_def()
    selection = [AssetKey(["bronze", "claims"])]
    result = job.execute_in_process(
        instance=instance, partition_key=partition, asset_selection=selection
    )
    assert result.success


def test_a_conflicting_silver_merge_retries_and_merges_nothing_twice(
    azure_project: Project, instance: DagsterInstance, monkeypatch: pytest.MonkeyPatch, caplog
) -> None:
    store, metadata, lake = LandingStoreResource(), load_metadata(), LakeResource().addresses
    table, uri = metadata.silver_tables["claims"], lake.named("silver/claims")
    store.write_text("claims/hospital1_0101.csv", claims_file(1, 30))
    ingest_claims(instance, "hos-a")
    build_silver_table(table, metadata, lake, run_id="first")
    store.write_text("claims/hospital1_0102.csv", claims_file(1, 30).replace("80.00", "90.00"))
    ingest_claims(instance, "hos-a")

    real_merge, raced = scd2._execute_merge, []

    def merge_after_a_competitor(table_handle, *args, **kwargs):
        if not raced:  # another writer merges the same loads between our read and our commit
            raced.append(True)
            build_silver_table(table, metadata, lake, run_id="competitor")
        return real_merge(table_handle, *args, **kwargs)

    monkeypatch.setattr(scd2, "_execute_merge", merge_after_a_competitor)
    caplog.set_level(logging.WARNING)
    build = build_silver_table(table, metadata, lake, run_id="ours")

    assert raced and "commit conflict with a concurrent writer" in caplog.text
    assert build.consumed == {}  # the competitor consumed the loads; the retry found none
    current = delta.scan(uri, lake.storage_options).filter(pl.col("is_current")).collect()
    assert current.get_column(table.key).is_duplicated().sum() == 0
    ours = [c for c in delta.commits(uri, lake.storage_options) if c["rcm"].get("run_id") == "ours"]
    assert ours == []
    [competitor] = [
        c
        for c in delta.commits(uri, lake.storage_options)
        if c["rcm"].get("run_id") == "competitor"
    ]
    assert int(competitor["rcm"]["closed"]) == 30  # the changed amounts, merged once


def test_a_writer_that_keeps_losing_fails_cleanly_and_writes_nothing(
    azure_project: Project,
) -> None:
    lake = LakeResource().addresses
    uri, options = lake.named("silver/race"), lake.storage_options
    rows = pl.DataFrame({"key": ["a", "b"], "datasource": ["hos-a", "hos-a"]})
    delta.append(uri, rows, {"operation": "seed"}, options, partition_by=["datasource"])

    def stale_delete() -> int:
        snapshot = DeltaTable(uri, storage_options=options)
        delta.append(uri, rows, {"operation": "competitor"}, options)  # commits first
        return snapshot.delete("datasource = 'hos-a' AND key = 'a'")["num_deleted_rows"]

    with pytest.raises(delta.ConcurrentWriteError, match="silver/race: a concurrent writer"):
        delta.retry_on_conflict(stale_delete, "silver/race", attempts=2)

    operations = [c["operation"] for c in delta.commits(uri, options)]
    assert "DELETE" not in operations and operations.count("WRITE") == 3
    assert delta.row_count(uri, options) == 6


def test_gold_tables_have_writer_pools_and_silver_one_step_per_datasource() -> None:
    """A gold table has one writer at a time (its pool); a silver table is written by one step
    per datasource (its partitions, one run per partition at a time in deploy/dagster.yaml),
    and the steps of two datasources write different Delta partitions."""
    defs = load_definitions()
    graph = defs.resolve_asset_graph()
    gold = [k for k in graph.get_all_asset_keys() if k.path[0] == "gold"]
    assert gold
    for key in gold:
        assert defs.resolve_assets_def(key).op.pool == f"delta:{key.to_user_string()}"
    metadata = load_metadata()
    for table in metadata.silver_tables.values():
        partitions = graph.get(AssetKey(["silver", table.table])).partitions_def
        bronze = graph.get(AssetKey(["bronze", table.source])).partitions_def
        assert partitions == bronze, table.table
        if partitions is not None:
            assert partitions.get_partition_keys() == metadata.source_datasources(table.source)
