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
    assert len(built) == 15  # 5 EMR tables x 2 hospitals, claims x 2, CPT, NPI and ICD codes
    assert all(parts[2] == "materialized" and int(parts[3].replace(",", "")) > 0 for parts in built)
    assert " materialized, 0 failed or skipped" in result.stdout
    layers = {
        line.split("/")[0] for line in lines if line.startswith(("bronze/", "silver/", "gold/"))
    }
    assert layers == {
        "bronze",
        "silver",
        "gold",
    }
    logs = pl.read_delta(str(project.lake / "audit" / "load_logs"))
    assert logs.height == 15  # one row per EMR load, landing file and reference extract
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
