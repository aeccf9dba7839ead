"""cli.py and the dg CLI, run as a user runs them: real processes on a throwaway RCM_HOME."""

import json
import os
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest
from dagster import DagsterInstance

from rcm_assets.settings import REPO_ROOT
from rcm_assets_tests.conftest import Project

BIN = Path(sys.executable).parent


def _run(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    # From the project root, where `dg` finds the project (pyproject.toml's [tool.dg]).
    result = subprocess.run(
        args, capture_output=True, text=True, env=os.environ.copy(), timeout=600, cwd=REPO_ROOT
    )
    if check:
        assert result.returncode == 0, result.stdout + result.stderr
    return result


def test_generate_then_run_prints_what_was_built(project: Project) -> None:
    generated = _run(str(BIN / "rcm"), "generate", "--scale", "0.05", "--seed", "9")
    assert "healthcare-rcm-hospital-b" in generated.stdout

    result = _run(str(BIN / "rcm"), "run")

    lines = result.stdout.splitlines()
    assert lines[0].split() == ["asset", "partition", "status", "rows", "seconds"]
    built = [line.split() for line in lines if line.startswith("bronze/")]
    # 5 EMR tables x 2 hospitals, claims x 2, X12 x 2, CPT, CARC, RARC, NPI and ICD codes
    assert len(built) == 19
    assert all(parts[2] == "materialized" and int(parts[3].replace(",", "")) > 0 for parts in built)
    assert " materialized, 0 failed, 0 skipped" in result.stdout
    layers = {
        line.split("/")[0] for line in lines if line.startswith(("bronze/", "silver/", "gold/"))
    }
    assert layers == {
        "bronze",
        "silver",
        "gold",
    }
    logs = pl.read_delta(str(project.lake / "audit" / "load_logs"))
    # one row per EMR load, landing file and reference extract
    x12_files = len(list((project.home / "landing" / "processed" / "x12").glob("*/*.x12")))
    assert x12_files > 2
    assert logs.height == 17 + x12_files
    with DagsterInstance.get() as instance:  # the runs are kept for the UI
        partitions = sorted(run.tags.get("dagster/partition", "-") for run in instance.get_runs())
    assert partitions == ["-", "hos-a", "hos-b"]  # one per datasource, one for CPT codes


def test_mutate_then_run_loads_only_the_change(project: Project) -> None:
    _run(str(BIN / "rcm"), "generate", "--scale", "0.05")
    _run(str(BIN / "rcm"), "run")

    mutated = _run(str(BIN / "rcm"), "generate", "--mutate", "--seed", "4")
    result = _run(str(BIN / "rcm"), "run")

    changed = {
        (line.split()[0], line.split()[1]): int(line.split()[3].replace(",", ""))
        + int(line.split()[5].replace(",", ""))
        for line in mutated.stdout.splitlines()
        if " updated " in line
    }
    loaded = {
        tuple(line.split()[:2]): int(line.split()[3].replace(",", ""))
        for line in result.stdout.splitlines()
        if line.startswith("bronze/")
    }
    assert (
        loaded[("bronze/transactions", "hos-a")]
        == changed[("healthcare-rcm-hospital-a", "transactions")]
    )
    assert (
        loaded[("bronze/patients", "hos-b")] == changed[("healthcare-rcm-hospital-b", "patients")]
    )


def test_run_names_an_unknown_partition(sampled: Project) -> None:
    result = _run(
        str(BIN / "rcm"), "run", "--partition", "hos-a", "--partition", "hos-z", check=False
    )

    assert result.returncode == 2
    assert "unknown partition(s) hos-z; the partitions are hos-a, hos-b" in result.stderr
    assert "Traceback" not in result.stderr


def test_run_prints_the_cause_of_a_failed_step_and_the_checks_that_did_not_pass(
    sampled: Project,
) -> None:
    import gzip
    import sqlite3

    from rcm_assets_tests.landing_corpus import CLAIM_COLUMNS, claim, lines

    source = sampled.home / "sources" / "healthcare-rcm-hospital-b.db"
    with sqlite3.connect(source) as connection:  # the watermark column is renamed at the source
        connection.execute("ALTER TABLE transactions RENAME COLUMN ModifiedDate TO Modified")
    landing = sampled.home / "landing" / "claims"
    (landing / "HOSPITAL1_UPPER.CSV").write_bytes(lines(CLAIM_COLUMNS, claim(1)))  # Windows
    (landing / "notes.txt").write_text("not a claims file")
    (landing / "hospital2_zipped.csv").write_bytes(gzip.compress(lines(CLAIM_COLUMNS, claim(2))))

    result = _run(str(BIN / "rcm"), "run", check=False)

    assert result.returncode == 1
    failed = result.stdout.split("\nFailed:\n")[1].split("\n\n")[0]
    assert failed.startswith(
        "  bronze/transactions [hos-b]: datasource hos-b: watermark column 'ModifiedDate' not "
        "found in dbo.transactions"
    )
    assert "DagsterExecutionStepExecutionError" not in result.stdout
    checks = result.stdout.split("\nChecks that did not pass:\n")[1].split("\n\n")[0]
    # hos-b's silver transactions wait for their bronze; hos-a's and the other tables go on
    statuses = {tuple(line.split()[:3]) for line in result.stdout.splitlines()}
    assert ("silver/transactions", "hos-b", "skipped") in statuses
    assert ("silver/transactions", "hos-a", "materialized") in statuses
    assert ("gold/fact_transactions", "-", "materialized") in statuses
    assert (
        "WARN  bronze/claims [hos-a] no_unmatched_files: 1 file(s) left in landing, not "
        "ingested: claims/notes.txt: the name matches no claims pattern (hospital1_*.csv, "
        "hospital2_*.csv) in metadata/landing_files.csv"
    ) in checks
    assert (
        "ERROR bronze/claims [hos-b] no_rejected_files: claims/hospital2_zipped.csv rejected: "
        "the file is gzip-compressed, not CSV text"
    ) in checks
    claims = pl.read_delta(str(sampled.lake / "bronze" / "claims"))
    assert claims.filter(pl.col("source_file") == "claims/HOSPITAL1_UPPER.CSV").height == 1
    assert " 1 failed, " in result.stdout


@pytest.mark.parametrize("signum", ["SIGTERM", "SIGINT"])
def test_sigterm_stops_rcm_run_and_no_further_run_starts(sampled: Project, signum: str) -> None:
    import signal
    import time

    from dagster import DagsterRunStatus

    child = subprocess.Popen(
        [str(BIN / "rcm"), "run"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    deadline = time.monotonic() + 120
    with DagsterInstance.get() as instance:
        while not instance.get_runs(limit=1) and time.monotonic() < deadline:
            time.sleep(0.2)  # until the first of its three runs (hos-a, hos-b, the rest) starts
        child.send_signal(signal.Signals[signum])
        stdout, stderr = child.communicate(timeout=120)
        runs = instance.get_runs()

    assert child.returncode == 130, stdout + stderr
    assert "rcm run: interrupted; stopped " in stderr
    assert "not started" in stdout
    assert len(runs) < 3  # no run started after the signal
    # the run it stopped is finished in the instance (the UI), not left "not started"
    assert runs[0].status in (
        DagsterRunStatus.FAILURE,
        DagsterRunStatus.CANCELED,
        DagsterRunStatus.SUCCESS,
    )


def test_a_signal_whose_handler_swallowed_it_still_stops_rcm_run() -> None:
    """Dagster replaces the SIGTERM handler during a run, and an exception raised in a
    garbage-collection callback is dropped: the signal itself must still be seen."""
    import signal

    from rcm_assets.cli import _StopSignals

    previous = signal.signal(signal.SIGTERM, lambda *_: None)  # a handler that raises nothing
    try:
        stop = _StopSignals()
        assert not stop()
        os.kill(os.getpid(), signal.SIGTERM)
        assert stop() and stop()  # and it stays seen
    finally:
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGTERM, previous)


def test_no_run_starts_once_a_stop_is_asked(sampled: Project) -> None:
    from rcm_assets.runs import default_instance, load_definitions, materialize_all

    answers = iter([False, True, True])  # asked before each of the three runs
    with default_instance() as instance:
        outcomes = materialize_all(
            load_definitions(), instance, layers=["bronze"], should_stop=lambda: next(answers)
        )
        runs = instance.get_runs()

    assert len(runs) == 1
    statuses = {(o.partition, o.status) for o in outcomes}
    assert ("hos-a", "materialized") in statuses
    assert ("hos-b", "not started") in statuses
    assert ("hos-b", "materialized") not in statuses


def test_metadata_mistake_is_one_clear_line(project: Project) -> None:
    project.edit_metadata("load_config.csv", "dbo.providers,Full", "dbo.providers,Fulll")

    result = _run(str(BIN / "rcm"), "run", check=False)

    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert f"rcm run: {project.metadata / 'load_config.csv'}, line 5, column loadtype" in (
        result.stderr
    )


@pytest.mark.slow
def test_dg_checks_lists_and_launches_one_partition(project: Project) -> None:
    _run(str(BIN / "rcm"), "generate", "--scale", "0.05")
    _run(str(BIN / "dg"), "check", "defs")
    listed = json.loads(_run(str(BIN / "dg"), "list", "defs", "--json").stdout)
    groups = {asset["asset_key"]: asset["group_name"] for asset in listed["assets"]}
    assert groups["audit/load_logs"] == "audit" and groups["silver/patients"] == "silver"
    assert {asset.split("/")[0] for asset in groups} == {"bronze", "silver", "gold", "audit"}

    _run(
        str(BIN / "dg"), "launch", "--assets", "bronze/patients", "--partition", "hos-b",
        "--config-json", '{"execution": {"config": {"in_process": {}}}}',
    )  # fmt: skip

    assert (project.lake / "bronze" / "hosb" / "patients").is_dir()
    assert not (project.lake / "bronze" / "hosa" / "patients").exists()
    with DagsterInstance.get() as instance:  # the project's instance, which the UI shows
        [run] = instance.get_runs()
    assert run.tags["dagster/partition"] == "hos-b" and run.is_success


def test_readme_dg_commands_use_the_projects_instance() -> None:
    """Without DAGSTER_HOME, `dg launch` records its run in a temporary instance."""
    readme = (REPO_ROOT / "README.md").read_text()
    blocks = readme.split("```bash")[1:]
    launching = [b.split("```")[0] for b in blocks if "dg launch" in b.split("```")[0]]
    assert launching
    for block in launching:
        before = block.split("dg launch")[0]
        assert "DAGSTER_HOME=" in before, block


@pytest.mark.parametrize(("args", "port"), [((), "3000"), (("PORT=3123",), "3123")])
def test_make_dev_serves_on_the_port_asked(args: tuple[str, ...], port: str) -> None:
    result = _run("make", "-n", "dev", *args)
    [command] = [line for line in result.stdout.splitlines() if " dev -h 127.0.0.1" in line]
    assert command.endswith(f"-p {port}")
    assert "dg dev" in command
