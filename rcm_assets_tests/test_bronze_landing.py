"""bronze/landing.py through Dagster: file lifecycle, rejects, once-per-content, crash safety."""

from pathlib import Path

import polars as pl
import pytest
from dagster import AssetKey, DagsterInstance, ExecuteInProcessResult

from rcm_assets.lake import audit
from rcm_assets.resources.landing import LandingPathError, LandingStoreResource
from rcm_assets.runs import load_definitions
from rcm_assets_tests.bronze_helpers import run_all
from rcm_assets_tests.conftest import Project, execute
from rcm_assets_tests.landing_corpus import CASES, CLAIM_COLUMNS, Case, claim, lines

CLAIMS = AssetKey(["bronze", "claims"])


def ingest(
    instance: DagsterInstance,
    files: list[str],
    partition: str | None = "hos-a",
    table: str = "claims",
) -> ExecuteInProcessResult:
    key = AssetKey(["bronze", table])
    config = {"ops": {key.to_python_identifier(): {"config": {"files": files}}}}
    return execute(instance, [key], partition, config)


def drop(project: Project, path: str, data: bytes) -> str:
    local = project.home / "landing" / path
    local.parent.mkdir(parents=True, exist_ok=True)
    local.write_bytes(data)
    return path


def claims_from(project: Project, path: str) -> pl.DataFrame:
    uri = project.lake / "bronze" / "claims"
    if not uri.exists():
        return pl.DataFrame()
    return pl.read_delta(str(uri)).filter(pl.col("source_file") == path)


def rejected_rows(project: Project, path: str) -> pl.DataFrame:
    uri = project.lake / "audit" / "rejected_rows"
    if not uri.exists():
        return pl.DataFrame(schema={"line_number": pl.Int64, "reason": pl.String})
    return pl.read_delta(str(uri)).filter(pl.col("source_file") == path)


def moved(project: Project, state: str, name: str) -> list[Path]:
    return sorted((project.home / "landing" / state / "claims").glob(f"*/{name}"))


def check_passed(result: ExecuteInProcessResult, name: str) -> bool:
    evaluations = [
        e.asset_check_evaluation_data
        for e in result.all_events
        if e.event_type_value == "ASSET_CHECK_EVALUATION"
        and e.asset_check_evaluation_data.check_name == name
    ]
    return evaluations[-1].passed


@pytest.mark.parametrize("name", CASES)
def test_bad_input_corpus_loses_no_record(
    project: Project, instance: DagsterInstance, name: str
) -> None:
    case: Case = CASES[name]
    path = drop(project, f"claims/hospital1_{name}.csv", case.data)

    result = ingest(instance, [path])

    assert result.success
    assert not (project.home / "landing" / path).exists()
    logs = audit.read_logs(str(project.lake / "audit" / "load_logs"))
    if case.rejected_file:
        [kept] = moved(project, "rejected", f"hospital1_{name}.csv")
        assert kept.read_bytes() == case.data
        report = Path(f"{kept}.error.txt").read_text()
        assert case.rejected_file in report and path in report
        assert logs["status"].to_list() == ["rejected"]
        assert case.rejected_file in logs["error"][0]
        assert claims_from(project, path).height == 0
        assert not check_passed(result, "no_rejected_files")
        return
    [kept] = moved(project, "processed", f"hospital1_{name}.csv")
    assert kept.read_bytes() == case.data
    landed, rejected = claims_from(project, path), rejected_rows(project, path)
    assert landed.height == case.landed
    assert landed.height + rejected.height == case.records
    assert (
        dict(zip(rejected["line_number"], rejected["reason"], strict=True)).keys()
        == (case.rejected or {}).keys()
    )
    assert check_passed(result, "no_rejected_rows") == (not case.rejected)
    assert logs["status"].to_list() == ["success"]
    if landed.height:
        assert landed["datasource"].unique().to_list() == ["hos-a"]
        assert landed["line_number"].min() >= 2


def test_sample_files_land_completely(sampled: Project, instance: DagsterInstance) -> None:
    landing = sampled.home / "landing"
    lines = {
        name: len((landing / "claims" / name).read_text().splitlines()) - 1
        for name in ("hospital1_claim_data.csv", "hospital2_claim_data.csv")
    }

    outcomes = run_all(instance)

    loaded = {(o.asset, o.partition): o.rows for o in outcomes if o.status == "materialized"}
    assert loaded[("bronze/claims", "hos-a")] == lines["hospital1_claim_data.csv"]
    assert loaded[("bronze/claims", "hos-b")] == lines["hospital2_claim_data.csv"]
    cpt = pl.read_delta(str(sampled.lake / "bronze" / "cpt_codes"))
    assert {"procedure_code_category", "cpt_codes", "procedure_code_descriptions"} <= set(
        cpt.columns
    )
    assert cpt.schema["cpt_codes"] == pl.String
    assert "0585T" in cpt["cpt_codes"].to_list()
    assert not list((landing / "claims").glob("*.csv"))
    processed = {path.name for path in (landing / "processed").rglob("*.csv")}
    assert processed == {*lines, "cptcodes.csv", "carc_codes.csv", "rarc_codes.csv"}

    again = run_all(instance)  # nothing pending: the assets run and load nothing
    assert {o.rows for o in again if o.asset in ("bronze/claims", "bronze/cpt_codes")} == {0}


def test_same_content_is_ingested_once_and_a_change_again(
    project: Project, instance: DagsterInstance
) -> None:
    data = (CLAIM_COLUMNS + "\n" + claim(1) + "\n" + claim(2) + "\n").encode()
    path = drop(project, "claims/hospital1_batch.csv", data)
    ingest(instance, [path])
    drop(project, path, data)  # the clearing house sends the same file again

    result = ingest(instance, [path])

    assert result.success
    assert claims_from(project, path).height == 2
    assert len(moved(project, "processed", "hospital1_batch.csv")) == 2
    logs = audit.read_logs(str(project.lake / "audit" / "load_logs")).sort("loaddate")
    statuses = logs["status"].to_list()
    assert statuses == ["success", "duplicate"]

    drop(project, path, data + (claim(3) + "\n").encode())  # a corrected version
    ingest(instance, [path])
    assert claims_from(project, path).height == 5


def test_file_of_another_partition_unknown_name_or_escaping_path_fails_clearly(
    project: Project, instance: DagsterInstance
) -> None:
    drop(project, "claims/hospital2_x.csv", b"")
    for files, message in [
        (["claims/hospital2_x.csv"], "belongs to partition hos-b, not hos-a"),
        (["claims/payer_x.csv"], "matching one of hospital1_*.csv, hospital2_*.csv"),
        (["claims/../../etc/passwd"], "is not a plain path inside the landing store"),
    ]:
        result = ingest(instance, files)
        assert not result.success
        failure = next(e for e in result.all_events if e.is_step_failure)
        assert message in failure.step_failure_data.user_failure_data.description
    assert (project.home / "landing" / "claims" / "hospital2_x.csv").exists()


def test_landing_store_refuses_paths_outside_its_root(tmp_path: Path) -> None:
    store = LandingStoreResource(root=str(tmp_path / "landing"))
    (tmp_path / "secret.txt").write_text("x")
    for path in ("../secret.txt", "claims/../../secret.txt", "/etc/passwd", ""):
        with pytest.raises(LandingPathError):
            store.read_bytes(path)


def test_crash_after_bronze_commit_does_not_ingest_twice(
    project: Project, instance: DagsterInstance, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = (CLAIM_COLUMNS + "\n" + claim(1) + "\n").encode()
    path = drop(project, "claims/hospital1_crash.csv", data)
    real_append = audit.append_logs

    def crash_on_success(uri: str, logs: list, options: object = None) -> None:
        if logs[0].status == "success":
            raise RuntimeError("simulated crash after the bronze commit")
        real_append(uri, logs, options)

    monkeypatch.setattr(audit, "append_logs", crash_on_success)
    assert not ingest(instance, [path]).success
    monkeypatch.setattr(audit, "append_logs", real_append)
    assert (project.home / "landing" / path).exists()  # never moved

    assert ingest(instance, [path]).success

    assert claims_from(project, path).height == 1
    logs = audit.read_logs(str(project.lake / "audit" / "load_logs")).sort("loaddate")
    statuses = logs["status"].to_list()
    assert statuses == ["recovered", "duplicate"]
    assert moved(project, "processed", "hospital1_crash.csv")


def test_cpt_codes_are_not_partitioned(sampled: Project, instance: DagsterInstance) -> None:
    folder = sampled.home / "landing" / "cptcodes"
    update = (folder / "cptcodes.csv").read_text() + "Category III,0999T,New code,Active\n"
    (folder / "cpt_2026.csv").write_text(update)
    result = ingest(instance, [], partition=None, table="cpt_codes")
    assert result.success
    cpt = pl.read_delta(str(sampled.lake / "bronze" / "cpt_codes"))
    assert "datasource" not in cpt.columns
    assert cpt["source_file"].n_unique() == 2


def test_a_re_sent_older_claim_never_becomes_current_again(
    project: Project, instance: DagsterInstance
) -> None:
    silver = AssetKey(["silver", "claims"])
    job = load_definitions().resolve_implicit_global_asset_job_def()

    def land(name: str, amount: str, modified: str) -> ExecuteInProcessResult:
        row = claim(1).replace("100.00", amount).replace("2025-01-06 10:00:00", modified)
        ingest(instance, [drop(project, f"claims/{name}", lines(CLAIM_COLUMNS, row))])
        return job.execute_in_process(
            instance=instance, asset_selection=[silver], partition_key="hos-a"
        )

    land("hospital1_jan.csv", "100.00", "2025-01-06 10:00:00")
    land("hospital1_feb.csv", "150.00", "2025-02-01 10:00:00")
    again = land("hospital1_jan_resent.csv", "120.00", "2025-01-06 10:00:00")  # older: stale

    [materialization] = again.get_asset_materialization_events()
    assert materialization.step_materialization_data.materialization.metadata["stale"].value == 1
    rows = pl.read_delta(str(project.lake / "silver" / "claims"))
    [current] = rows.filter(pl.col("is_current")).to_dicts()
    assert float(current["claim_amount"]) == 150.0
    assert rows.height == 2  # January's first version (closed) and February's
