"""Lake operations on a real lake: the whole graph materialized once through Dagster (scale 0.1),
copied into each test's own RCM_HOME."""

import builtins
import hashlib
import shutil
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest
from dagster import AssetKey, DagsterInstance, instance_for_test
from deltalake import DeltaTable

from rcm_assets.errors import RcmError
from rcm_assets.lake import erasure, inventory, operations, restore
from rcm_assets.lake.archive import archive_loads
from rcm_assets.resources import LakeResource
from rcm_assets.runs import DagsterGoldGraph, load_definitions
from rcm_assets.settings import REPO_ROOT
from rcm_assets_tests.bronze_helpers import run_all, sqlite_sources
from rcm_assets_tests.conftest import Project
from rcm_assets_tests.test_lake_cli import Terminal, parse


def gold_graph(instance: DagsterInstance) -> DagsterGoldGraph:
    """The asset graph of the project's definitions, rebuilding gold in `instance`."""
    return DagsterGoldGraph(load_definitions(), instance)


# The bronze column each silver patient column comes from (metadata/silver_columns.csv).
BRONZE_PATIENT_ID = {
    ("patients", "hos-a"): "PatientID",
    ("patients", "hos-b"): "ID",
}
SILVER_PATIENT_TABLES = ("patients", "encounters", "transactions", "claims")
GOLD_PATIENT_TABLES = ("dim_patient", "dim_patient_masked", "fact_transactions")


@pytest.fixture(scope="module")
def built_home(tmp_path_factory: pytest.TempPathFactory, sample_sources: Path) -> Iterator[Path]:
    """An RCM_HOME whose lake holds every layer, built once for this module."""
    root = tmp_path_factory.mktemp("lake_operations")
    home, metadata = root / "rcm", root / "metadata"
    shutil.copytree(REPO_ROOT / "metadata", metadata)
    for folder in ("sources", "landing", "replay"):
        shutil.copytree(sample_sources / folder, home / folder)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("RCM_HOME", str(home))
        patch.setenv("RCM_METADATA_DIR", str(metadata))
        for name in ("RCM_DB_URI_HOSPITAL_A", "RCM_DB_URI_HOSPITAL_B"):
            patch.delenv(name, raising=False)
        with instance_for_test() as instance:
            outcomes = run_all(instance)
    assert outcomes and all(o.status == "materialized" for o in outcomes), outcomes
    yield home


@pytest.fixture
def lake_project(project: Project, built_home: Path) -> Project:
    shutil.copytree(built_home, project.home, dirs_exist_ok=True)
    return project


def materialize(instance: DagsterInstance, names: list[str], partition: str | None = None) -> None:
    job = load_definitions().resolve_implicit_global_asset_job_def()
    result = job.execute_in_process(
        instance=instance,
        asset_selection=[AssetKey(name.split("/")) for name in names],
        partition_key=partition,
    )
    assert result.success


def read(project: Project, name: str, version: int | None = None) -> pl.DataFrame:
    return pl.read_delta(str(project.lake / name), version=version)


def version_of(project: Project, name: str) -> int:
    return DeltaTable(str(project.lake / name)).version()


def comparable(frame: pl.DataFrame) -> set[tuple]:
    """Current silver patient rows by value, without load ids and load times."""
    columns = ["patient_key", "first_name", "last_name", "address", "source_modified_at"]
    return set(frame.filter(pl.col("is_current")).select(columns).rows())


def test_tables_lists_every_layer_with_versions_and_row_counts(lake_project: Project) -> None:
    infos = inventory.list_tables(LakeResource().addresses)

    assert {info.layer for info in infos} == {"audit", "bronze", "silver", "gold"}
    names = {info.name for info in infos}
    assert {"bronze/hosa/patients", "bronze/claims", "silver/patients", "gold/kpi_monthly"} <= names
    assert "audit/load_logs" in names
    for info in infos:
        assert info.rows == read(lake_project, info.name).height, info.name
        assert info.version == version_of(lake_project, info.name), info.name
        assert (info.size_bytes > 0 and info.files > 0) == (info.rows > 0), info.name


def test_optimize_then_vacuum_report_files_and_keep_tables_readable(
    lake_project: Project,
) -> None:
    lake = LakeResource().addresses
    rows = {info.name: info.rows for info in inventory.list_tables(lake)}

    optimized = operations.optimize_tables(lake)
    assert {r.table for r in optimized} == set(rows)
    compacted = sum(r.files_removed for r in optimized)
    assert compacted > 0  # the audit tables get one small file per append
    assert all(r.files_added <= 1 for r in optimized if r.files_removed)
    default = operations.vacuum_tables(lake, dry_run=True)
    assert sum(r.files_removed for r in default) == 0  # all younger than 168 hours
    with pytest.raises(RcmError, match="--force"):
        operations.vacuum_tables(lake, retention_hours=0)
    planned = operations.vacuum_tables(lake, retention_hours=0, dry_run=True, force=True)
    removed = operations.vacuum_tables(lake, retention_hours=0, force=True)

    assert sum(r.files_removed for r in removed) == sum(r.files_removed for r in planned)
    assert sum(r.files_removed for r in removed) >= compacted
    assert {info.name: info.rows for info in inventory.list_tables(lake)} == rows
    assert all(read(lake_project, name).height == count for name, count in rows.items())


def test_bronze_restore_refuses_stale_silver_then_cascades_through_silver_and_gold(
    lake_project: Project, instance: DagsterInstance
) -> None:
    sqlite_sources(lake_project).mutate(seed=4)
    materialize(instance, ["bronze/patients", "silver/patients"], "hos-a")
    materialize(instance, ["gold/dim_patient"])
    silver_before = read(lake_project, "silver/patients")
    hos_b_before = silver_before.filter(pl.col("datasource") == "hos-b").sort("patient_key")
    bronze_version = version_of(lake_project, "bronze/hosa/patients")
    lake = LakeResource().addresses

    with pytest.raises(RcmError) as refused:
        restore.restore_table(lake, "bronze/hosa/patients", 0, graph=gold_graph(instance))
    assert "silver/patients (hos-a consumed load(s)" in str(refused.value)
    assert "gold/dim_patient" in str(refused.value) and "--cascade" in str(refused.value)
    assert version_of(lake_project, "bronze/hosa/patients") == bronze_version

    result = restore.restore_table(
        lake, "bronze/hosa/patients", 0, cascade=True, graph=gold_graph(instance)
    )

    assert read(lake_project, "bronze/hosa/patients").equals(
        read(lake_project, "bronze/hosa/patients", version=0)
    )
    (rollback,) = result.plan.silver
    silver = read(lake_project, "silver/patients")
    old_hos_a = read(lake_project, "silver/patients", version=rollback.to_version)
    assert comparable(silver.filter(pl.col("datasource") == "hos-a")) == comparable(
        old_hos_a.filter(pl.col("datasource") == "hos-a")
    )
    assert silver.filter(pl.col("datasource") == "hos-b").sort("patient_key").equals(hos_b_before)
    usable = silver.filter(pl.col("is_current") & ~pl.col("is_quarantined"))
    assert set(read(lake_project, "gold/dim_patient").get_column("patient_key")) == set(
        usable.get_column("patient_key")
    )
    assert instance.get_run_by_id(result.gold_run_id).is_success
    restored = read(lake_project, "audit/load_logs").filter(pl.col("status") == "restored")
    assert sorted(restored.select("tablename", "data_source", "load_type").rows()) == [
        ("bronze/hosa/patients", "hos-a", "Restore"),
        ("silver/patients", "hos-a", "Restore"),
    ]

    # The taken-back changes are still in the source: the next loads bring silver back to where
    # it was, under new load ids.
    materialize(instance, ["bronze/patients", "silver/patients"], "hos-a")
    assert comparable(read(lake_project, "silver/patients")) == comparable(silver_before)


def test_bronze_restore_that_would_lose_a_kept_load_is_refused_even_with_cascade(
    lake_project: Project, instance: DagsterInstance
) -> None:
    sources = sqlite_sources(lake_project)
    sources.mutate(seed=4)
    materialize(instance, ["bronze/patients"], "hos-b")  # version 1: kept by a restore to 1
    sources.mutate(seed=5)
    materialize(instance, ["bronze/patients"], "hos-b")  # version 2
    materialize(instance, ["silver/patients"], "hos-b")  # consumes both loads in one commit
    lake = LakeResource().addresses

    with pytest.raises(RcmError, match="even with --cascade"):
        restore.restore_table(
            lake, "bronze/hosb/patients", 1, cascade=True, graph=gold_graph(instance)
        )

    result = restore.restore_table(
        lake, "bronze/hosb/patients", 0, cascade=True, graph=gold_graph(instance)
    )
    assert len(result.plan.silver[0].removed_load_ids) == 2


def test_silver_restore_refuses_stale_gold_then_rebuilds_it_through_dagster(
    lake_project: Project, instance: DagsterInstance
) -> None:
    lake = LakeResource().addresses  # silver/patients: version 0 merged hos-a, version 1 hos-b
    hos_b_load = inventory.table_history(lake, "silver/patients")[0].load_ids

    with pytest.raises(RcmError, match="gold/dim_patient") as refused:
        restore.restore_table(lake, "silver/patients", 0, graph=gold_graph(instance))
    assert "gold/dim_cpt_code" not in str(refused.value)

    result = restore.restore_table(
        lake, "silver/patients", 0, cascade=True, graph=gold_graph(instance)
    )

    assert read(lake_project, "silver/patients").get_column("datasource").unique().to_list() == [
        "hos-a"
    ]
    assert read(lake_project, "gold/dim_patient").get_column("datasource").unique().to_list() == [
        "hos-a"
    ]
    assert "gold/dim_patient" in result.plan.gold
    assert result.plan.untracked_load_ids == (hos_b_load,)
    assert inventory.table_history(lake, "silver/patients")[0].rcm["restored_version"] == "0"


def test_cli_restore_shows_the_stale_downstream_and_asks_before_cascading(
    lake_project: Project, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    before = {
        name: version_of(lake_project, name) for name in ("silver/patients", "gold/dim_patient")
    }
    prompts: list[str] = []
    monkeypatch.setattr(sys, "stdin", Terminal())
    monkeypatch.setattr(builtins, "input", lambda prompt="": prompts.append(prompt) or "n")

    args = parse("restore", "silver/patients", "--version", "0")
    with pytest.raises(RcmError, match=r"gold/dim_patient.*--cascade"):
        args.handler(args)  # refused before any question: it would be refused anyway
    assert prompts == []

    args = parse("restore", "silver/patients", "--version", "0", "--cascade")
    with pytest.raises(SystemExit) as aborted:
        args.handler(args)

    summary = " ".join(capsys.readouterr().out.split())
    assert aborted.value.code == 1 and prompts == ["Proceed? [y/N] "]
    assert "silver/patients goes back from version 1 to the content of version 0" in summary
    assert "gold/dim_patient" in summary and "rebuilt through Dagster" in summary
    assert "stay recorded as consumed by silver/patients" in summary
    assert {name: version_of(lake_project, name) for name in before} == before


def _patient_in_every_table(project: Project) -> str:
    keys = set(read(project, "gold/fact_transactions").get_column("patient_key"))
    for table in ("gold/dim_patient", "silver/claims", "silver/encounters"):
        keys &= set(read(project, table).get_column("patient_key"))
    return sorted(keys)[0]


def _raw_rows(column: str, source_id: str, datasource: str) -> pl.Expr:
    return (pl.col(column).str.strip_chars() == source_id) & (pl.col("datasource") == datasource)


def _patient_rows(project: Project, key: str) -> dict[str, tuple[int, int]]:
    """Table -> (all rows, the patient's rows), computed independently of the erasure code."""
    source_id, datasource = key.rsplit("-", 2)[0], "-".join(key.rsplit("-", 2)[1:])
    target = {"hos-a": "hosa", "hos-b": "hosb"}[datasource]
    counts = {}
    for name in [f"silver/{t}" for t in SILVER_PATIENT_TABLES] + [
        f"gold/{t}" for t in GOLD_PATIENT_TABLES
    ]:
        frame = read(project, name)
        counts[name] = (frame.height, frame.filter(pl.col("patient_key") == key).height)
    raw = {f"bronze/{target}/{t}": t for t in ("patients", "encounters", "transactions")}
    raw |= {"bronze/claims": "claims", f"archive/bronze/{target}/patients": "patients"}
    for name, table in raw.items():
        frame = read(project, name)
        column = BRONZE_PATIENT_ID.get((table, datasource), "PatientID")
        counts[name] = (
            frame.height,
            frame.filter(_raw_rows(column, source_id, datasource)).height,
        )
    return counts


def _files_with_patient(folder: Path, key: str, source_id: str) -> list[str]:
    """Data files (not the log) in which any text column holds the key or the source id."""
    found = []
    for path in folder.rglob("*.parquet"):
        if "_delta_log" in path.parts:
            continue
        frame = pl.read_parquet(path)
        text = frame.select(pl.col(pl.String).str.strip_chars())
        if (
            text.width
            and text.select(pl.any_horizontal(pl.all().is_in([key, source_id])).any()).item()
        ):
            found.append(str(path))
    return found


def _archive_first_load(project: Project, instance: DagsterInstance, datasource: str) -> None:
    """A second patients load, then the first one moved to lake/archive."""
    target = {"hos-a": "hosa", "hos-b": "hosb"}[datasource]
    sqlite_sources(project).mutate(seed=4)
    materialize(instance, ["bronze/patients"], datasource)
    moved = archive_loads(
        str(project.lake / "bronze" / target / "patients"),
        str(project.lake / "archive" / "bronze" / target / "patients"),
        datetime.now(UTC) + timedelta(days=1),
    )
    assert len(moved.load_ids) == 1


def test_erase_patient_dry_run_changes_nothing(lake_project: Project) -> None:
    key = _patient_in_every_table(lake_project)
    lake = LakeResource().addresses
    before = {i.name: (i.version, i.rows) for i in inventory.list_tables(lake)}

    result = erasure.erase_patient(lake, key, dry_run=True, include_raw=True)

    after = {i.name: (i.version, i.rows) for i in inventory.list_tables(lake)}
    assert after.pop("audit/erasures")[1] == 1
    assert after == before
    assert result.dry_run and result.rows["silver/patients"] == 1
    assert {"gold/fact_transactions", "bronze/claims"} <= set(result.rows)
    record = read(lake_project, "audit/erasures").row(0, named=True)
    assert record["dry_run"] is True and record["files_removed"] == 0


def test_erase_patient_removes_every_row_and_data_file_of_one_patient(
    lake_project: Project, instance: DagsterInstance
) -> None:
    key = _patient_in_every_table(lake_project)
    source_id, datasource = key.rsplit("-", 2)[0], "-".join(key.rsplit("-", 2)[1:])
    _archive_first_load(lake_project, instance, datasource)
    before = _patient_rows(lake_project, key)
    target = {"hos-a": "hosa", "hos-b": "hosb"}[datasource]
    # Only the archived first load must hold the patient's own row; the second is a change batch.
    assert all(p for name, (_, p) in before.items() if name != f"bronze/{target}/patients"), before

    result = erasure.erase_patient(LakeResource().addresses, key, include_raw=True)

    after = _patient_rows(lake_project, key)
    assert {name: total - patient for name, (total, patient) in before.items()} == {
        name: total for name, (total, _) in after.items()
    }
    assert all(patient == 0 for _, patient in after.values())
    assert result.rows == {name: patient for name, (_, patient) in before.items() if patient}
    for name in before:
        assert _files_with_patient(lake_project.lake / name, key, source_id) == [], name
    record = read(lake_project, "audit/erasures")
    assert record.height == 1
    row = record.row(0, named=True)
    assert row["subject_sha256"] == hashlib.sha256(key.encode()).hexdigest()
    assert row["dry_run"] is False and row["total_rows"] == sum(p for _, p in before.values())
    assert dict(zip(row["tables"], row["row_counts"], strict=True)) == result.rows
    text = str(record.rows())
    assert key not in text and source_id not in text
    for name in before:  # the delete predicates delta-rs logged name the hash, not the key
        newest = DeltaTable(str(lake_project.lake / name)).history()
        deletes = [c for c in newest if c["operation"] == "DELETE"]
        assert deletes and all(key not in str(c) and source_id not in str(c) for c in deletes)


def test_effective_commits_follow_restores_back_through_the_lineage() -> None:
    def merge(version: int, datasource: str, load: str) -> dict:
        rcm = {"datasource": datasource, "consumed_load_ids": load}
        return {"version": version, "operation": "MERGE", "rcm": rcm}

    commits = [
        merge(0, "hos-a", "a0"),
        merge(1, "hos-b", "b0"),
        merge(2, "hos-a", "a1"),
        {"version": 3, "operation": "RESTORE", "operationParameters": {"version": "1"}, "rcm": {}},
        merge(4, "hos-a", "a2"),
        {
            "version": 5,
            "operation": "WRITE",
            "rcm": {"operation": "restore", "datasource": "hos-a", "restored_version": "3"},
        },
        merge(6, "hos-b", "b1"),
    ]

    def consumed_by(datasource: str) -> set[str]:
        lineage = restore.effective_commits(commits, datasource)
        return set().union(
            *(restore.consumed(c) for c in lineage if c["rcm"].get("datasource") == datasource)
        )

    # hos-a: its rollback (5) goes back to 3, which is version 1 again: only a0 is in effect.
    assert consumed_by("hos-a") == {"a0"}
    # hos-b: the hos-a rollback does not touch it; the table restore (3) took nothing of hos-b's.
    assert consumed_by("hos-b") == {"b0", "b1"}
