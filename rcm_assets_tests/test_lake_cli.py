"""`rcm lake ...` through its own argparse wiring, on small real Delta tables (no Dagster run)."""

import argparse
import hashlib
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import polars as pl
import pytest
from deltalake import DeltaTable

from rcm_assets.errors import RcmError
from rcm_assets.lake import delta
from rcm_assets.lake.safe_filter import where_expression
from rcm_assets.lake_cli import add_lake_commands, show_frame
from rcm_assets_tests.conftest import Project

DEMO = "bronze/demo"


def parse(*argv: str) -> argparse.Namespace:
    root = argparse.ArgumentParser(prog="rcm")
    add_lake_commands(root.add_subparsers(dest="command", required=True))
    return root.parse_args(["lake", *argv])


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    args = parse(*argv)
    assert args.handler(args) == 0
    return capsys.readouterr().out


def rows_of(output: str) -> list[list[str]]:
    """The aligned table's data lines, split on runs of two or more spaces."""
    import re

    return [re.split(r"\s{2,}", line.strip()) for line in output.strip().splitlines()[1:]]


def write_demo(project: Project, writes: Sequence[list[str]] = (["a"], ["b", "c"], ["d"])) -> str:
    """One append per entry, each with its own run and load id (versions 0, 1, 2, ...)."""
    uri = str(project.lake / DEMO)
    for number, names in enumerate(writes):
        frame = pl.DataFrame({"name": names, "batch": [number] * len(names)})
        delta.append(
            uri,
            frame,
            {"operation": "load", "run_id": f"run-{number}", "load_id": f"load-{number}"},
        )
    return uri


def test_history_shows_every_write_with_its_run_id(
    project: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    write_demo(project)

    lines = rows_of(run(capsys, "history", DEMO))

    assert [line[0] for line in lines] == ["2", "1", "0"]  # newest first
    for line, number in zip(lines, (2, 1, 0), strict=True):
        assert f"run-{number}" in line and f"load-{number}" in line
        assert "WRITE" in line and "load" in line
    assert lines[1][4] == "2"  # rows added by the second write


def test_show_version_reads_the_old_rows(project: Project) -> None:
    write_demo(project)

    old = show_frame(parse("show", DEMO, "--version", "1"))
    now = show_frame(parse("show", DEMO))

    assert sorted(old.get_column("name")) == ["a", "b", "c"]
    assert sorted(now.get_column("name")) == ["a", "b", "c", "d"]


def test_show_as_of_a_time_reads_the_version_then(project: Project) -> None:
    uri = write_demo(project)
    first_commit = DeltaTable(uri).history()[-1]["timestamp"]
    just_after = datetime.fromtimestamp(first_commit / 1000, tz=UTC) + timedelta(milliseconds=1)

    frame = show_frame(parse("show", DEMO, "--as-of", just_after.isoformat()))

    assert frame.get_column("name").to_list() == ["a"]
    with pytest.raises(RcmError, match="did not exist"):
        show_frame(parse("show", DEMO, "--as-of", "2000-01-01T00:00:00"))


def test_show_where_filters_and_limits(
    project: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    write_demo(project)

    frame = show_frame(parse("show", DEMO, "--where", "batch >= 1 AND name <> 'c'"))
    assert sorted(frame.get_column("name")) == ["b", "d"]
    assert show_frame(parse("show", DEMO, "--limit", "2")).height == 2
    assert "│ d" in run(capsys, "show", DEMO, "--where", "lower(name) IN ('d')")


@pytest.mark.parametrize(
    ("condition", "reason"),
    [
        ("1=1; DROP TABLE demo", "exactly one condition"),
        ("name IN (SELECT name FROM demo)", "SUBQUERY"),
        ("read_csv('/etc/passwd') IS NULL", "READCSV"),
        ("read_parquet('x.parquet') IS NULL", "READPARQUET"),
        ("batch = 1 UNION SELECT 1", "UNION"),
        ("pg_sleep(5) IS NULL", "ANONYMOUS"),
        ("demo.name = 'a'", "plain column names"),
        ("secret = 1", "unknown column"),
        ('name = "a"', "single quotes"),
        ("batch + 1", "not a condition"),
        ("", "empty"),
    ],
)
def test_show_where_refuses_anything_but_a_plain_condition(
    project: Project, condition: str, reason: str
) -> None:
    write_demo(project)

    with pytest.raises(RcmError, match=reason):
        show_frame(parse("show", DEMO, "--where", condition))


def test_where_allow_list_accepts_typical_conditions() -> None:
    frame = pl.DataFrame(
        {"d": [datetime(2024, 1, 1).date(), datetime(2025, 1, 1).date()], "s": ["a", None]}
    )
    for condition, expected in [
        ("d >= DATE '2024-06-01'", 1),
        ("s IS NULL", 1),
        ("coalesce(s, 'x') = 'x' OR d BETWEEN DATE '2023-01-01' AND DATE '2024-01-01'", 2),
        ("NOT (s LIKE 'a%')", 0),  # NULL is not true
    ]:
        assert frame.filter(where_expression(condition, frame.columns)).height == expected


def test_restore_brings_back_the_old_rows_as_a_new_version_and_audits_it(
    project: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    uri = write_demo(project)

    output = run(capsys, "restore", DEMO, "--version", "1")

    assert "restored version 1 as version 3" in output
    assert sorted(pl.read_delta(uri).get_column("name")) == ["a", "b", "c"]
    newest = DeltaTable(uri).history(limit=1)[0]
    assert newest["operation"] == "RESTORE"
    assert newest["rcm.operation"] == "restore" and newest["rcm.restored_version"] == "1"
    history = rows_of(run(capsys, "history", DEMO, "--limit", "1"))
    assert history[0][:4] == ["3", history[0][1], "RESTORE", "restore"]
    logs = pl.read_delta(str(project.lake / "audit" / "load_logs"))
    assert logs.select("tablename", "status", "load_type", "numberofrowscopied").rows() == [
        (DEMO, "restored", "Restore", 3)
    ]
    assert logs.item(0, "load_id") == newest["rcm.load_id"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["history", "silver/nothing"], "unknown table 'silver/nothing'"),
        (["history", "../../etc"], "not a table name"),
        (["show", DEMO, "--version", "7"], "versions 0 to 2; there is no version 7"),
        (["restore", DEMO, "--version", "2"], "already at version 2"),
        (["restore", DEMO, "--version", "-1"], "cannot restore to version -1"),
        (["erase-patient", "HOSP1-000001"], "known datasources"),
    ],
)
def test_user_mistakes_name_the_table_or_version(
    project: Project, argv: list[str], message: str
) -> None:
    write_demo(project)
    args = parse(*argv)

    with pytest.raises(RcmError, match=message):
        args.handler(args)


def test_tables_lists_each_table_with_version_rows_and_size(
    project: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    write_demo(project)
    delta.append(str(project.lake / "silver" / "people"), pl.DataFrame({"x": [1, 2]}), {})
    (project.lake / "not_a_table").mkdir()

    lines = rows_of(run(capsys, "tables"))

    assert [line[:4] for line in lines] == [
        ["bronze", DEMO, "2", "4"],
        ["silver", "silver/people", "0", "2"],
    ]
    assert all(int(line[5].replace(",", "")) > 0 for line in lines)  # bytes


def test_vacuum_and_optimize_report_per_table(
    project: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    uri = write_demo(project)

    optimized = rows_of(run(capsys, "optimize"))
    assert optimized == [[DEMO, "3", "1", "3"]]  # files removed, added, version
    with pytest.raises(RcmError, match=f"{DEMO}: .*retention.*--force"):
        args = parse("vacuum", "--retention-hours", "0")
        args.handler(args)
    planned = run(capsys, "vacuum", "--retention-hours", "0", "--force", "--dry-run")
    assert rows_of(planned)[0] == [DEMO, "3"] and "3 file(s) would be removed" in planned
    assert "3 file(s) removed" in run(capsys, "vacuum", "--retention-hours", "0", "--force")

    assert sorted(pl.read_delta(uri).get_column("name")) == ["a", "b", "c", "d"]
    assert len(list((project.lake / DEMO).glob("*.parquet"))) == 1


def test_erase_patient_dry_run_prints_counts_without_the_key(
    project: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    key = "HOSP1-000001-hos-a"
    silver = project.lake / "silver" / "patients"
    frame = pl.DataFrame({"patient_key": [key, "HOSP1-000002-hos-a"], "datasource": ["hos-a"] * 2})
    delta.append(str(silver), frame, {})

    output = run(capsys, "erase-patient", key, "--dry-run")

    assert rows_of(output)[0][:2] == ["silver/patients", "1"]
    assert key not in output and hashlib.sha256(key.encode()).hexdigest()[:16] in output
    assert pl.read_delta(str(silver)).height == 2
