"""gold/assets.py through Dagster on the sample data."""

import polars as pl
import pytest
from dagster import DagsterInstance
from polars.testing import assert_frame_equal

from rcm_assets.sample_data import ICD10_CODES
from rcm_assets_tests.bronze_helpers import Sources, read_table, run_all, sqlite_sources
from rcm_assets_tests.conftest import Project

VALID_PATIENT = {
    "a": "PatientID IS NOT NULL AND DOB IS NOT NULL AND FirstName IS NOT NULL"
    " AND LOWER(TRIM(FirstName)) <> 'null'",
    "b": "ID IS NOT NULL AND DOB IS NOT NULL AND F_Name IS NOT NULL"
    " AND LOWER(TRIM(F_Name)) <> 'null'",
}
VALID_TRANSACTION = (
    "EncounterID IS NOT NULL AND PatientID IS NOT NULL AND TransactionID IS NOT NULL"
    " AND VisitDate IS NOT NULL"
)


@pytest.fixture
def sources(sampled: Project) -> Sources:
    return sqlite_sources(sampled)


def gold(project: Project, table: str) -> pl.DataFrame:
    return read_table(project, "gold", table)


def test_every_foreign_key_resolves_except_the_injected_orphans(
    sources: Sources, instance: DagsterInstance
) -> None:
    outcomes = run_all(instance)

    assert all(o.status == "materialized" for o in outcomes if o.asset.startswith("gold/"))
    fact = gold(sources.project, "fact_transactions")
    dims = {
        "patient_key": gold(sources.project, "dim_patient")["patient_key"],
        "provider_key": gold(sources.project, "dim_provider")["provider_key"],
        "department_key": gold(sources.project, "dim_department")["department_key"],
        "procedure_code": gold(sources.project, "dim_cpt_code")["cpt_code"],
        "icd_code": gold(sources.project, "dim_icd_code")["icd_code"],
    }
    # ICD-10-CM from the CMS order file `rcm generate` lands: every sample code has a row.
    assert sorted(dims["icd_code"]) == sorted(code for code, _ in ICD10_CODES)
    for target, layout, datasource in (("hosa", "a", "hos-a"), ("hosb", "b", "hos-b")):
        rows = fact.filter(pl.col("datasource") == datasource)
        [(expected_rows,)] = sources.rows(
            target, f"SELECT COUNT(*) FROM {{transactions}} WHERE {VALID_TRANSACTION}"
        )
        assert rows.height == expected_rows
        patient_id = "PatientID" if layout == "a" else "ID"
        [(orphans,)] = sources.rows(
            target,
            f"SELECT COUNT(*) FROM {{transactions}} WHERE {VALID_TRANSACTION} AND PatientID NOT IN"
            f" (SELECT {patient_id} FROM {{patients}} WHERE {VALID_PATIENT[layout]})",
        )
        unresolved = rows.filter(~pl.col("patient_key").is_in(dims["patient_key"].implode()))
        assert unresolved.height == orphans > 0
        for column in ("provider_key", "department_key", "procedure_code", "icd_code"):
            assert rows[column].is_in(dims[column].implode()).all(), column
        assert rows["claim_status"].null_count() < rows.height * 0.05  # claims joined


def test_rerun_on_unchanged_silver_gives_identical_rows(
    sampled: Project, instance: DagsterInstance
) -> None:
    run_all(instance)
    before = {
        t: gold(sampled, t).drop("refreshed_at") for t in ("fact_transactions", "kpi_monthly")
    }

    run_all(instance)

    for table, rows in before.items():
        assert gold(sampled, table).drop("refreshed_at").equals(rows), table


def test_a_run_without_source_changes_commits_no_silver_or_gold(
    sources: Sources, instance: DagsterInstance
) -> None:
    from deltalake import DeltaTable

    def versions() -> dict[str, int]:
        return {
            f"{layer}/{path.name}": DeltaTable(str(path)).version()
            for layer in ("silver", "gold")
            for path in sorted((sources.project.lake / layer).iterdir())
        }

    # The first run consumes the ICD-10-CM order file; the second keeps that code set (it does
    # not fall back to the WHO API), so nothing changes.
    run_all(instance)
    before = versions()

    outcomes = run_all(instance)

    assert versions() == before
    gold_outcomes = [o for o in outcomes if o.asset.startswith("gold/")]
    assert gold_outcomes and all(o.status == "materialized" for o in gold_outcomes), [
        o for o in outcomes if o.status != "materialized"
    ]
    sources.mutate(seed=3)
    run_all(instance)
    after = versions()
    changed = {name for name in after if after[name] != before[name]}
    assert {"silver/transactions", "gold/fact_transactions", "gold/kpi_monthly"} <= changed
    assert "gold/dim_cpt_code" not in changed  # its silver table did not change


def gold_operations(project: Project, table: str) -> list[str]:
    """The `rcm.operation` of the table's commits, oldest first."""
    from rcm_assets.lake import delta

    uri = str(project.lake / "gold" / table)
    return [c["rcm"].get("operation", c["operation"]) for c in reversed(delta.commits(uri))]


def test_gold_after_change_batches_equals_a_forced_full_rebuild(
    sources: Sources, instance: DagsterInstance, monkeypatch: pytest.MonkeyPatch
) -> None:
    from deltalake import DeltaTable

    from rcm_assets.cli import main
    from rcm_assets.gold import builds

    # The sample's change batches touch most KPI cells, which a refresh would rebuild instead:
    # refresh them anyway, so the cell refresh is what gets compared with the full rebuild.
    monkeypatch.setattr(builds, "MAX_REFRESH_SHARE", 1.0)
    run_all(instance)
    for seed in (4, 5):
        sources.mutate(seed=seed)
        run_all(instance)
    # the change batches were taken incrementally: only the changed rows and KPI cells
    for table in ("fact_transactions", "dim_patient", "kpi_monthly", "kpi_ar_aging"):
        assert gold_operations(sources.project, table) == ["rebuild", "refresh", "refresh"], table
    tables = sorted(path.name for path in (sources.project.lake / "gold").iterdir())
    built = {t: gold(sources.project, t).drop("refreshed_at") for t in tables}
    versions = {t: DeltaTable(str(sources.project.lake / "gold" / t)).version() for t in tables}

    assert main(["lake", "rebuild"]) == 0

    for table in tables:
        assert DeltaTable(str(sources.project.lake / "gold" / table)).version() > versions[table]
        assert_frame_equal(
            gold(sources.project, table).drop("refreshed_at"), built[table], check_row_order=False
        )
    assert main(["lake", "rebuild", "gold/nope"]) == 2


def test_kpi_marts_show_the_latest_month_in_the_ui(
    sampled: Project, instance: DagsterInstance
) -> None:
    from dagster import AssetKey

    run_all(instance)
    event = instance.get_latest_materialization_event(AssetKey(["gold", "kpi_monthly"]))
    metadata = event.asset_materialization.metadata
    assert metadata["dagster/row_count"].value > 0
    preview = metadata["latest_month"].value
    assert preview.startswith("| datasource | month_end |") and "hos-a" in preview
    plot = metadata["plot_data"].value
    assert {c.name for c in plot.schema.columns} >= {"datasource", "month_end", "days_in_ar"}
    assert plot.records and isinstance(plot.records[0].data["charges"], float)


def test_a_blocking_silver_check_failure_stops_gold(
    sampled: Project, instance: DagsterInstance
) -> None:
    sampled.edit_metadata(
        "quality_thresholds.csv", "*,quarantine_rate,0.05,1", "*,quarantine_rate,0.001,1"
    )

    outcomes = run_all(instance)

    status: dict[str, set[str]] = {}
    for o in outcomes:
        status.setdefault(o.asset, set()).add(o.status)
    assert status["silver/patients"] == {"materialized", "failed"}  # written, then checked
    failure = next(o for o in outcomes if o.asset == "silver/patients" and o.status == "failed")
    assert "quarantine_rate" in failure.message
    assert status["gold/dim_patient"] == {"skipped"}
    assert status["gold/fact_transactions"] == {"skipped"}
    assert not (sampled.lake / "gold" / "dim_patient").exists()


def test_providers_are_enriched_from_the_npi_registry(
    sampled: Project, instance: DagsterInstance
) -> None:
    run_all(instance)

    providers = gold(sampled, "dim_provider")
    npi = gold(sampled, "dim_npi")
    assert providers["npi"].is_in(npi["npi"].implode()).all()
    joined = providers.join(npi, on="npi", suffix="_registry")
    assert joined["primary_taxonomy_code"].equals(joined["primary_taxonomy_code_registry"])
    assert providers["primary_taxonomy_description"].null_count() == 0


def test_key_cuts_split_rows_into_ordered_ranges_that_keep_every_row() -> None:
    from itertools import pairwise

    from rcm_assets.gold.builds import _key_range, key_cuts

    keys = [f"P{n:05d}-hos-a" for n in range(2_000)] * 2 + [None]  # two versions a key
    rows = pl.LazyFrame({"patient_key": keys, "version": range(len(keys))})

    cuts = key_cuts(rows, "patient_key", per_range=400)

    assert 8 <= len(cuts) <= 10 and cuts == sorted(set(cuts))  # 11 ranges of 4,001 rows
    edges = [None, *cuts, None]
    parts = [rows.filter(_key_range("patient_key", lo, hi)).collect() for lo, hi in pairwise(edges)]
    assert sum(p.height for p in parts) == len(keys)  # each row in exactly one range
    assert parts[0].get_column("patient_key").null_count() == 1
    assert max(p.height for p in parts) < 600  # about per_range each, a key's rows together
    assert key_cuts(rows, "patient_key", per_range=len(keys)) == []


def test_large_tables_are_rebuilt_in_key_ranges_with_the_same_rows(
    sampled: Project, instance: DagsterInstance, monkeypatch: pytest.MonkeyPatch
) -> None:
    from deltalake import DeltaTable

    from rcm_assets.cli import main
    from rcm_assets.gold import builds

    run_all(instance)  # the sample's tables are small: one part each
    keyed = {"dim_patient": "patient_key", "dim_provider": "provider_key"}
    keyed["fact_transactions"] = "transaction_key"
    whole = {t: gold(sampled, t).drop("refreshed_at") for t in keyed}
    versions = {t: DeltaTable(str(sampled.lake / "gold" / t)).version() for t in keyed}
    monkeypatch.setattr(builds, "RANGE_ROWS", 40)
    monkeypatch.setattr(builds, "SAMPLE_PER_RANGE", 10)
    parts: dict[str, int] = {}
    rebuilt = builds.GoldBuilder._rebuilt

    def counted(self: builds.GoldBuilder, frames: builds.Frames) -> list[pl.LazyFrame]:
        parts[self.table.table] = len(made := rebuilt(self, frames))
        return made

    monkeypatch.setattr(builds.GoldBuilder, "_rebuilt", counted)

    assert main(["lake", "rebuild"]) == 0

    assert parts["dim_patient"] >= 10 and parts["fact_transactions"] >= 10, parts
    assert parts["dim_provider"] >= 3 and parts["kpi_monthly"] == 1, parts
    for table, key in keyed.items():
        assert DeltaTable(str(sampled.lake / "gold" / table)).version() == versions[table] + 1
        rows = gold(sampled, table).drop("refreshed_at")
        assert rows.get_column(key).is_unique().all(), table
        assert_frame_equal(rows, whole[table], check_row_order=False)
