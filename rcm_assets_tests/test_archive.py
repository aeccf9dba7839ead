"""lake/archive.py: old bronze loads move to the archive; nothing is lost or duplicated."""

from datetime import UTC, datetime, timedelta

import polars as pl
import pytest
from dagster import DagsterInstance

from rcm_assets.cli import main
from rcm_assets.lake import archive, delta
from rcm_assets.sample_data import mutate_sources
from rcm_assets_tests.bronze_helpers import bronze, run_bronze
from rcm_assets_tests.conftest import Project

TOMORROW = datetime.now(UTC) + timedelta(days=1)


@pytest.fixture
def two_loads(sampled: Project, instance: DagsterInstance) -> Project:
    run_bronze(instance, ["hos-a"])
    mutate_sources(sampled.home, seed=2)
    run_bronze(instance, ["hos-a"])
    return sampled


def _paths(project: Project, table: str) -> tuple[str, str]:
    return (
        str(project.lake / "bronze" / "hosa" / table),
        str(project.lake / "archive" / "bronze" / "hosa" / table),
    )


def test_archive_moves_all_but_the_newest_load(
    two_loads: Project, instance: DagsterInstance
) -> None:
    source, target = _paths(two_loads, "transactions")
    before = pl.read_delta(source)
    first, newest = sorted(before.get_column("load_id").unique().to_list())

    moved = archive.archive_loads(source, target, TOMORROW)

    assert moved.load_ids == (first,)
    assert moved.rows == before.filter(pl.col("load_id") == first).height
    kept, archived = pl.read_delta(source), pl.read_delta(target)
    assert kept.get_column("load_id").unique().to_list() == [newest]
    assert archived.get_column("load_id").unique().to_list() == [first]
    assert kept.height + archived.height == before.height
    assert archive.archive_loads(source, target, TOMORROW).load_ids == ()

    outcomes = run_bronze(instance, ["hos-a"])  # the watermark still comes from the newest load
    transactions = [o for o in outcomes if o.asset == "bronze/transactions"]
    assert transactions[0].rows == 0


def test_recent_loads_stay(two_loads: Project) -> None:
    source, target = _paths(two_loads, "patients")
    assert archive.archive_loads(source, target, datetime.now(UTC) - timedelta(days=1)).rows == 0
    assert not delta.exists(target)


def test_crash_between_copy_and_delete_is_finished_without_duplicates(
    two_loads: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    source, target = _paths(two_loads, "encounters")
    total = pl.read_delta(source).height

    def crash(*args: object, **kwargs: object) -> int:
        raise RuntimeError("simulated crash after the archive append")

    delete = archive.delta.delete
    monkeypatch.setattr(archive.delta, "delete", crash)
    with pytest.raises(RuntimeError):
        archive.archive_loads(source, target, TOMORROW)
    monkeypatch.setattr(archive.delta, "delete", delete)
    archive.archive_loads(source, target, TOMORROW)

    archived = pl.read_delta(target)
    assert archived.height + pl.read_delta(source).height == total
    assert archived.select(pl.struct(pl.all()).is_duplicated().any()).item() is False


def test_cli_archive_dry_run_then_move(two_loads: Project, capsys: pytest.CaptureFixture) -> None:
    before = bronze(two_loads, "hosa", "patients").height

    assert main(["archive", "--older-than-days", "0", "--dry-run"]) == 0
    assert "would move 1 load(s)" in capsys.readouterr().out
    assert bronze(two_loads, "hosa", "patients").height == before

    assert main(["archive", "--older-than-days", "0"]) == 0
    out = capsys.readouterr().out
    assert "hos-a    dbo.patients       moved 1 load(s)" in out
    assert "hos-b    dbo.patients       moved 0 load(s)" in out
    assert bronze(two_loads, "hosa", "patients").height < before
