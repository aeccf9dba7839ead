"""silver/assets.py through Dagster on the sample data: counts, quarantine, SCD2 after mutate."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import pytest
from dagster import AssetKey, DagsterInstance
from deltalake import DeltaTable

from rcm_assets.lake.scd2 import consumed_load_ids
from rcm_assets.metadata import load_metadata
from rcm_assets.runs import load_definitions
from rcm_assets_tests.bronze_helpers import Sources, read_table, run_all, run_bronze, sqlite_sources
from rcm_assets_tests.conftest import Project

DEFECTS = {  # what the generator injects, counted in the source database itself
    ("patients", "a"): "PatientID IS NULL OR DOB IS NULL OR FirstName IS NULL"
    " OR LOWER(TRIM(FirstName)) = 'null'",
    (
        "patients",
        "b",
    ): "ID IS NULL OR DOB IS NULL OR F_Name IS NULL OR LOWER(TRIM(F_Name)) = 'null'",
    ("encounters", "*"): "EncounterID IS NULL OR PatientID IS NULL",
    ("transactions", "*"): "EncounterID IS NULL OR PatientID IS NULL OR TransactionID IS NULL"
    " OR VisitDate IS NULL",
}
TARGETS = {"hosa": ("hos-a", "a"), "hosb": ("hos-b", "b")}


@pytest.fixture
def sources(sampled: Project) -> Sources:
    return sqlite_sources(sampled)


def silver(project: Project, table: str) -> pl.DataFrame:
    return read_table(project, "silver", table)


def test_silver_counts_and_quarantine_equal_the_sources(
    sources: Sources, instance: DagsterInstance
) -> None:
    outcomes = run_all(instance)

    built = {o.asset for o in outcomes if o.status == "materialized"}
    assert {f"silver/{t}" for t in load_metadata().silver_tables} <= built
    for target, (datasource, layout) in TARGETS.items():
        for table in ("patients", "encounters", "transactions"):
            rows = silver(sources.project, table).filter(pl.col("datasource") == datasource)
            assert rows.height == sources.count(target, table), (table, datasource)
            assert rows["is_current"].all()
            condition = DEFECTS.get((table, layout)) or DEFECTS[(table, "*")]
            defects = sources.rows(target, f"SELECT COUNT(*) FROM {{{table}}} WHERE {condition}")
            assert rows["is_quarantined"].sum() == defects[0][0] > 0, (table, datasource)
    claims = silver(sources.project, "claims")
    for name, datasource in (("hospital1", "hos-a"), ("hospital2", "hos-b")):
        csv = pl.read_csv(
            sources.project.home
            / "landing"
            / "processed"
            / "claims"
            / "*"
            / f"{name}_claim_data.csv",
            infer_schema=False,
        )
        missing = pl.any_horizontal(
            pl.col(c).is_null() for c in ("ClaimID", "TransactionID", "PatientID", "ServiceDate")
        )
        rows = claims.filter(pl.col("datasource") == datasource)
        assert rows.height == csv.height
        assert rows["is_quarantined"].sum() == csv.filter(missing).height
    assert silver(sources.project, "providers").height == sources.count(
        "hosa", "providers"
    ) + sources.count("hosb", "providers")


def test_after_mutate_changed_rows_have_two_versions_and_one_is_current(
    sources: Sources, instance: DagsterInstance
) -> None:
    run_all(instance)
    changes = sources.mutate(seed=21)

    run_all(instance)

    for target, (datasource, _) in TARGETS.items():
        for table, key in (("patients", "patient_key"), ("transactions", "transaction_key")):
            rows = silver(sources.project, table).filter(pl.col("datasource") == datasource)
            current = rows.filter(pl.col("is_current"))
            assert current[key].n_unique() == current.height
            versions = rows.group_by(key).len()
            change = changes[(target, table)]
            assert versions.filter(pl.col("len") == 2).height == change.updated
            assert current.height == sources.count(target, table)
            closed = rows.filter(~pl.col("is_current"))
            assert closed["valid_to"].is_not_null().all()


def test_a_rerun_consumes_nothing_and_commits_nothing(
    sources: Sources, instance: DagsterInstance
) -> None:
    run_all(instance)
    versions = {
        t: DeltaTable(str(sources.project.lake / "silver" / t)).version()
        for t in ("patients", "claims")
    }

    run_all(instance)

    for table, version in versions.items():
        assert DeltaTable(str(sources.project.lake / "silver" / table)).version() == version
    # The UI's column schema of every silver asset lists every column of its Delta table.
    graph = load_definitions().resolve_asset_graph()
    for path in sorted((sources.project.lake / "silver").iterdir()):
        schema = graph.get(AssetKey(["silver", path.name])).metadata["dagster/column_schema"]
        listed = [column.name for column in schema.columns]
        stored = pl.scan_delta(str(path)).collect_schema().names()
        assert sorted(listed) == sorted(stored), path.name


def test_quarantine_rate_over_a_blocking_threshold_fails_the_check_with_metadata(
    sampled: Project, instance: DagsterInstance
) -> None:
    sampled.edit_metadata(
        "quality_thresholds.csv", "*,quarantine_rate,0.05,1", "*,quarantine_rate,0.001,1"
    )
    run_bronze(instance, ["hos-a", "hos-b"])
    defs = load_definitions()
    key = AssetKey(["silver", "patients"])

    result = defs.resolve_implicit_global_asset_job_def().execute_in_process(
        instance=instance, asset_selection=[key], partition_key="hos-a", raise_on_error=False
    )

    [evaluation] = [
        e.asset_check_evaluation_data
        for e in result.all_events
        if e.event_type_value == "ASSET_CHECK_EVALUATION"
        and e.asset_check_evaluation_data.check_name == "quarantine_rate"
    ]
    assert not evaluation.passed
    assert evaluation.severity.value == "ERROR"
    assert evaluation.metadata["max_rate"].value == 0.001
    assert evaluation.metadata["worst_rate"].value > 0.001
    spec = next(s for s in defs.resolve_assets_def(key).check_specs if s.name == "quarantine_rate")
    assert spec.blocking


def _files(folder: Path) -> set[str]:
    return {
        os.path.join(root, name)
        for root, _, names in os.walk(folder)
        if "_delta_log" not in root
        for name in names
    }


@pytest.mark.slow
def test_sigkill_during_the_silver_run_leaves_silver_before_or_after_never_between(
    sources: Sources, instance: DagsterInstance
) -> None:
    project = sources.project
    run_all(instance)
    table = project.lake / "silver" / "transactions"
    version = DeltaTable(str(table)).version()
    sources.copy_transactions("hosa", 1000, "2026-03-01 00:00:00")  # seconds of merge work
    run_bronze(instance, ["hos-a"])
    pending = set(pl.read_delta(str(project.lake / "bronze" / "hosa" / "transactions"))["load_id"])
    consumed = consumed_load_ids(str(table), "hos-a")
    assert pending - consumed
    existing = _files(table)
    process = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "dagster"),
            "asset",
            "materialize",
            "-m",
            "rcm_assets.definitions",
            "--select",
            "silver/transactions",
            "--partition",
            "hos-a",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # the step runs in a child process: kill the whole run
    )
    deadline = time.monotonic() + 300
    while process.poll() is None and time.monotonic() < deadline:
        if _files(table) - existing:
            os.killpg(process.pid, signal.SIGKILL)
            break
        time.sleep(0.002)
    assert process.wait() == -signal.SIGKILL, "the run ended before its silver merge wrote files"

    # delta-rs may write a merge's file in one put right before the commit, so the kill can land
    # on either side of it; what must never happen is a state in between.
    after = (DeltaTable(str(table)).version(), consumed_load_ids(str(table), "hos-a"))
    assert after in [(version, consumed), (version + 1, pending)]

    run_all(instance)

    assert consumed_load_ids(str(table), "hos-a") == pending
    current = silver(project, "transactions").filter(
        pl.col("is_current") & (pl.col("datasource") == "hos-a")
    )
    assert current.height == sources.count("hosa", "transactions")
    assert current["transaction_key"].n_unique() == current.height


def test_a_merge_that_fails_leaves_silver_and_its_loads_unconsumed(
    sources: Sources, instance: DagsterInstance, monkeypatch: pytest.MonkeyPatch
) -> None:
    from deltalake.table import TableMerger

    project = sources.project
    run_all(instance)
    changes = sources.mutate(seed=8)
    run_bronze(instance, ["hos-a", "hos-b"])
    table = str(project.lake / "silver" / "patients")
    version, consumed = DeltaTable(table).version(), consumed_load_ids(table, "hos-a")

    def crash(self: TableMerger) -> None:
        raise OSError("simulated crash inside the merge, before its commit")

    execute = TableMerger.execute
    monkeypatch.setattr(TableMerger, "execute", crash)
    run_all(instance)
    assert DeltaTable(table).version() == version
    assert consumed_load_ids(table, "hos-a") == consumed
    monkeypatch.setattr(TableMerger, "execute", execute)

    run_all(instance)

    rows = silver(project, "patients").filter(pl.col("datasource") == "hos-a")
    assert rows.group_by("patient_key").len().filter(pl.col("len") == 2).height == (
        changes[("hosa", "patients")].updated
    )
    assert consumed_load_ids(table, "hos-a") > consumed


def test_one_hospitals_failed_merge_leaves_the_others_silver_committed(
    sources: Sources, instance: DagsterInstance, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Silver is one step per hospital: hos-a's failure is its own; hos-b's merge commits."""
    from rcm_assets.silver import assets

    project = sources.project
    run_all(instance)
    sources.mutate(seed=8)
    table = str(project.lake / "silver" / "patients")
    consumed = {ds: consumed_load_ids(table, ds) for ds in ("hos-a", "hos-b")}
    merge = assets._merge_slice

    def fail_for_hos_a(table_spec, metadata, target, datasource, *args):
        if datasource == "hos-a" and table_spec.table == "patients":
            raise OSError("simulated disk full in hos-a's merge")
        return merge(table_spec, metadata, target, datasource, *args)

    monkeypatch.setattr(assets, "_merge_slice", fail_for_hos_a)
    outcomes = run_all(instance)

    status = {(o.asset, o.partition): o for o in outcomes}
    assert status[("silver/patients", "hos-a")].status == "failed"
    assert "simulated disk full" in status[("silver/patients", "hos-a")].message
    assert status[("silver/patients", "hos-b")].status == "materialized"
    assert consumed_load_ids(table, "hos-a") == consumed["hos-a"]
    assert consumed_load_ids(table, "hos-b") > consumed["hos-b"]
    assert status[("silver/transactions", "hos-a")].status == "materialized"  # not below it


def test_orphans_and_quality_land_in_dq_results_counted_exactly(
    sources: Sources, instance: DagsterInstance
) -> None:
    run_all(instance)

    dq = pl.read_delta(str(sources.project.lake / "audit" / "dq_results"))
    for target, (datasource, layout) in TARGETS.items():
        patient_id = "PatientID" if layout == "a" else "ID"
        [(orphans,)] = sources.rows(
            target,
            'SELECT COUNT(*) FROM {transactions} WHERE "PatientID" IS NOT NULL AND "PatientID" '
            f'NOT IN (SELECT "{patient_id}" FROM {{patients}} WHERE "{patient_id}" IS NOT NULL)',
        )
        measured = dq.filter(
            (pl.col("table") == "transactions")
            & (pl.col("datasource") == datasource)
            & (pl.col("rule") == "patient_key->patients")
        )
        assert measured["rows_failed"].to_list() == [orphans]
        assert orphans > 0  # the generator injects some
        quarantined = (
            silver(sources.project, "patients")
            .filter(pl.col("is_current") & (pl.col("datasource") == datasource))["is_quarantined"]
            .sum()
        )
        rate = dq.filter(
            (pl.col("table") == "patients")
            & (pl.col("datasource") == datasource)
            & (pl.col("check") == "quarantine_rate")
        )
        assert rate["rows_failed"].to_list() == [quarantined]


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"department_name": [42, 43]}, "department_name"),  # should be text
        ({"department_key": ["D1-hos-a", None]}, r"department_key \(1 NULL\)"),
        ({"load_id": [None, None]}, r"load_id \(2 NULL\)"),
        ({"extra": [1, 2]}, "extra"),  # not in the table
    ],
)
def test_a_batch_that_breaks_the_contract_fails_naming_the_column(
    project: Project, change: dict, named: str
) -> None:
    from rcm_assets.quality.contracts import ContractError, validate_contract

    metadata = load_metadata()
    table = metadata.silver_tables["departments"]
    columns = {
        "department_key": ["D1-hos-a", "D2-hos-a"],
        "src_department_id": ["D1", "D2"],
        "department_name": ["Cardiology", None],  # nullable
        "datasource": ["hos-a", "hos-a"],
        "load_id": ["L1", "L1"],
        "is_quarantined": [False, False],
        "quarantine_reasons": [[], []],
        "quality_flags": [[], []],
    }
    lists = {"quarantine_reasons": pl.List(pl.String), "quality_flags": pl.List(pl.String)}
    good = pl.DataFrame(columns, schema_overrides={**lists, "load_id": pl.String})
    assert validate_contract(good, table, metadata) is good
    bad = pl.DataFrame(columns | change, schema_overrides={**lists, "load_id": pl.String})
    with pytest.raises(ContractError, match=named):
        validate_contract(bad, table, metadata)


def test_two_different_rows_for_one_key_and_watermark_are_quarantined_not_dropped(
    sources: Sources, instance: DagsterInstance
) -> None:
    from rcm_assets.quality.rules import CONFLICTING_VERSIONS

    [(victim,)] = sources.rows("hosa", 'SELECT "TransactionID" FROM {transactions} LIMIT 1')
    columns = [row[1] for row in sources.rows("hosa", "PRAGMA table_info(transactions)")]
    copied = ", ".join(f'"{c}"' if c != "Amount" else '"Amount" + 1' for c in columns)
    sources.execute(  # the EMR table has no key constraint: a second, different row appears
        "hosa",
        f"INSERT INTO {{transactions}} SELECT {copied} FROM {{transactions}}"
        ' WHERE "TransactionID" = ?',
        (victim,),
    )

    run_all(instance)

    silver = read_table(sources.project, "silver", "transactions").filter(
        pl.col("transaction_key") == f"{victim}-hos-a"
    )
    assert silver.height == 1  # one version of the key
    [row] = silver.to_dicts()
    assert row["is_current"] and row["is_quarantined"]
    assert CONFLICTING_VERSIONS in row["quarantine_reasons"]
    bronze = read_table(sources.project, "bronze", "hosa/transactions")
    assert bronze.filter(pl.col("TransactionID") == victim).height == 2  # both kept
    fact = read_table(sources.project, "gold", "fact_transactions")
    assert fact.filter(pl.col("transaction_key") == f"{victim}-hos-a").is_empty()


def test_a_truncated_full_snapshot_is_held_back_and_reported(
    sources: Sources, instance: DagsterInstance
) -> None:
    run_all(instance)
    [cpt_file] = sorted((sources.project.home / "landing" / "processed" / "cptcodes").glob("*/*"))
    truncated = cpt_file.read_text().splitlines()[:11]  # the header and 10 of the 149 codes
    (sources.project.home / "landing" / "cptcodes" / "cpt_cut.csv").write_text(
        "\n".join(truncated) + "\n"
    )
    sources.execute("hosa", "DELETE FROM {providers} WHERE rowid > 3")  # an almost empty extract

    outcomes = run_all(instance)

    failed = {o.asset: o.message for o in outcomes if o.status == "failed"}
    assert set(failed) == {"silver/cpt_codes", "silver/providers"}, failed
    assert "silver/cpt_codes cpt: the full snapshot in load(s) " in failed["silver/cpt_codes"]
    assert "has 10 key(s), 7% of the 149 current row(s)" in failed["silver/cpt_codes"]
    assert "held back, nothing applied" in failed["silver/cpt_codes"]
    assert "silver/providers hos-a: " in failed["silver/providers"]
    assert "hos-b" not in failed["silver/providers"]  # the other hospital was applied
    cpt = read_table(sources.project, "silver", "cpt_codes").filter(pl.col("is_current"))
    assert cpt.height == 149
    providers = read_table(sources.project, "silver", "providers")
    assert providers.filter(pl.col("datasource") == "hos-a").height > 3
    assert read_table(sources.project, "gold", "dim_cpt_code").height == 149
