"""`rcm lake ...` through its own argparse wiring, on small real Delta tables (no Dagster run)."""

import argparse
import builtins
import hashlib
import io
import sys
from collections.abc import Callable, Sequence
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
PATIENT = "HOSP1-000001-hos-a"
LAKE_COMMANDS = [
    "tables",
    "history",
    "show",
    "restore",
    "vacuum",
    "optimize",
    "rebuild",
    "describe",
    "erase-patient",
    "grant-access",
]


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="rcm")
    add_lake_commands(root.add_subparsers(dest="command", required=True))
    return root


def parse(*argv: str) -> argparse.Namespace:
    return parser().parse_args(["lake", *argv])


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

    output = run(capsys, "restore", DEMO, "--version", "1", "--yes")

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
        (["show", "silver/nothing"], "unknown table 'silver/nothing'"),
        (["show", DEMO, "--version", "7"], "versions 0 to 2; there is no version 7"),
        (["show", DEMO, "--version", "-1"], "versions 0 to 2; there is no version -1"),
        (
            ["restore", "silver/nothing", "--version", "0", "--yes"],
            "unknown table 'silver/nothing'",
        ),
        (["restore", DEMO, "--version", "2", "--yes"], "already at version 2"),
        (["restore", DEMO, "--version", "-1", "--yes"], "cannot restore to version -1"),
        (
            ["restore", DEMO, "--version", "7", "--yes"],
            "versions 0 to 2; cannot restore to version 7",
        ),
        (["optimize", "silver/nothing"], "unknown table 'silver/nothing'"),
        (["erase-patient", "HOSP1-000001", "--yes"], "known datasources"),
        # Without --yes the mistake is named before any confirmation is asked for.
        (["restore", "silver/nothing", "--version", "0"], "unknown table 'silver/nothing'"),
        (["restore", DEMO, "--version", "7"], "cannot restore to version 7"),
        (["erase-patient", "HOSP1-000001"], "known datasources"),
    ],
)
def test_user_mistakes_name_the_table_or_version(
    project: Project, no_terminal: None, argv: list[str], message: str
) -> None:
    uri = write_demo(project)
    args = parse(*argv)

    with pytest.raises(RcmError, match=message):
        args.handler(args)
    assert DeltaTable(uri).version() == 2


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
        args = parse("vacuum", "--retention-hours", "0", "--yes")
        args.handler(args)
    planned = run(capsys, "vacuum", "--retention-hours", "0", "--force", "--dry-run")
    assert rows_of(planned)[0] == [DEMO, "3"] and "3 file(s) would be removed" in planned
    removed = run(capsys, "vacuum", "--retention-hours", "0", "--force", "--yes")
    assert "3 file(s) removed" in removed

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


def write_patients(project: Project) -> str:
    uri = str(project.lake / "silver" / "patients")
    frame = pl.DataFrame(
        {"patient_key": [PATIENT, "HOSP1-000002-hos-a"], "datasource": ["hos-a"] * 2}
    )
    delta.append(uri, frame, {})
    return uri


def lake_files(project: Project) -> set[str]:
    """Every file under the lake, Delta logs included: equal before and after = nothing changed."""
    return {str(path.relative_to(project.lake)) for path in project.lake.rglob("*")}


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture
def no_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    """stdin is not a terminal (as in CI), and nothing may wait for input."""
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))

    def never(prompt: str = "") -> str:
        raise AssertionError(f"asked {prompt!r} without a terminal")

    monkeypatch.setattr(builtins, "input", never)


@pytest.fixture
def terminal(monkeypatch: pytest.MonkeyPatch) -> Callable[[str], list[str]]:
    """stdin is a terminal; the returned function sets the answer and gives the prompts asked."""
    prompts: list[str] = []
    monkeypatch.setattr(sys, "stdin", Terminal())

    def answer_with(answer: str) -> list[str]:
        def ask(prompt: str = "") -> str:
            prompts.append(prompt)
            return answer

        monkeypatch.setattr(builtins, "input", ask)
        return prompts

    return answer_with


DESTRUCTIVE = [
    ["restore", DEMO, "--version", "1"],
    ["restore", DEMO, "--version", "1", "--cascade"],
    ["vacuum", "--retention-hours", "0", "--force"],
    ["erase-patient", PATIENT],
    ["erase-patient", PATIENT, "--include-raw"],
]


@pytest.mark.parametrize("argv", DESTRUCTIVE)
def test_destructive_commands_refuse_without_yes_when_stdin_is_not_a_terminal(
    project: Project, no_terminal: None, argv: list[str]
) -> None:
    uri = write_demo(project)
    write_patients(project)
    before = lake_files(project)
    args = parse(*argv)

    with pytest.raises(RcmError, match=f"{argv[0]} changes the lake.*pass --yes"):
        args.handler(args)

    assert DeltaTable(uri).version() == 2
    assert lake_files(project) == before


@pytest.mark.parametrize(
    "argv",
    [
        ["vacuum", "--retention-hours", "0", "--force", "--dry-run"],
        ["erase-patient", PATIENT, "--dry-run"],
        ["optimize"],
    ],
)
def test_dry_runs_and_optimize_need_no_confirmation(
    project: Project, no_terminal: None, capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    write_demo(project)
    write_patients(project)

    run(capsys, *argv)


@pytest.mark.parametrize("answer", ["y", "YES", " yes "])
def test_restore_on_a_terminal_shows_the_plan_and_goes_ahead_on_yes(
    project: Project,
    terminal: Callable[[str], list[str]],
    capsys: pytest.CaptureFixture[str],
    answer: str,
) -> None:
    uri = write_demo(project)
    prompts = terminal(answer)

    output = run(capsys, "restore", DEMO, "--version", "1")

    assert prompts == ["Proceed? [y/N] "]
    summary = " ".join(output.split("restored version")[0].split())
    assert f"{DEMO} goes back from version 2 to the content of version 1 (3 rows)" in summary
    assert "No downstream table is stale." in summary
    assert "restored version 1 as version 3" in output
    assert sorted(pl.read_delta(uri).get_column("name")) == ["a", "b", "c"]


@pytest.mark.parametrize("answer", ["n", "", "no", "yes please"])
def test_restore_on_a_terminal_aborts_on_anything_but_yes(
    project: Project,
    terminal: Callable[[str], list[str]],
    capsys: pytest.CaptureFixture[str],
    answer: str,
) -> None:
    uri = write_demo(project)
    before = lake_files(project)
    prompts = terminal(answer)
    args = parse("restore", DEMO, "--version", "1")

    with pytest.raises(SystemExit) as aborted:
        args.handler(args)

    assert aborted.value.code == 1 and prompts == ["Proceed? [y/N] "]
    assert "nothing changed" in capsys.readouterr().err
    assert DeltaTable(uri).version() == 2
    assert lake_files(project) == before


def test_end_of_input_at_the_question_aborts(
    project: Project, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    uri = write_demo(project)
    monkeypatch.setattr(sys, "stdin", Terminal())

    def closed(prompt: str = "") -> str:
        raise EOFError

    monkeypatch.setattr(builtins, "input", closed)
    args = parse("vacuum", "--retention-hours", "0", "--force")

    with pytest.raises(SystemExit) as aborted:
        args.handler(args)

    assert aborted.value.code == 1 and "nothing changed" in capsys.readouterr().err
    assert DeltaTable(uri).version() == 2


def test_erase_patient_on_a_terminal_shows_the_counts_first(
    project: Project, terminal: Callable[[str], list[str]], capsys: pytest.CaptureFixture[str]
) -> None:
    uri = write_patients(project)
    terminal("n")
    args = parse("erase-patient", PATIENT)

    with pytest.raises(SystemExit):
        args.handler(args)
    refused = capsys.readouterr()
    summary = " ".join(refused.out.split())
    digest = hashlib.sha256(PATIENT.encode()).hexdigest()[:16]
    assert f"deletes 1 row(s) of subject sha256:{digest}… from 1 table(s): silver/patients (1)" in (
        summary
    )
    assert PATIENT not in refused.out
    assert DeltaTable(uri).version() == 0
    assert not (project.lake / "audit" / "erasures").exists()  # the summary records no dry run

    terminal("y")
    output = run(capsys, "erase-patient", PATIENT)

    assert "deleted 1 row(s)" in output
    assert pl.read_delta(uri).get_column("patient_key").to_list() == ["HOSP1-000002-hos-a"]


def test_vacuum_on_a_terminal_counts_the_files_first(
    project: Project, terminal: Callable[[str], list[str]], capsys: pytest.CaptureFixture[str]
) -> None:
    write_demo(project)
    run(capsys, "optimize")
    terminal("y")

    output = run(capsys, "vacuum", "--retention-hours", "0", "--force")

    summary = " ".join(output.split())
    assert "permanently deletes 3 data file(s)" in summary and f"{DEMO} (3)" in summary
    assert "--force" in summary and "3 file(s) removed" in output


@pytest.mark.parametrize("command", LAKE_COMMANDS)
def test_every_lake_command_has_help(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as shown:
        parse(command, "--help")

    assert shown.value.code == 0
    assert capsys.readouterr().out.startswith(f"usage: rcm lake {command}")


def test_the_help_test_covers_every_lake_command() -> None:
    lake = next(
        a for a in parser()._subparsers._group_actions if isinstance(a, argparse._SubParsersAction)
    ).choices["lake"]
    commands = next(
        a for a in lake._subparsers._group_actions if isinstance(a, argparse._SubParsersAction)
    )
    assert sorted(commands.choices) == sorted(LAKE_COMMANDS)


def test_through_rcm_main_a_refusal_exits_2_and_an_abort_exits_1(
    project: Project,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from rcm_assets.cli import main

    uri = write_demo(project)
    argv = ["lake", "restore", DEMO, "--version", "1"]
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))

    assert main(argv) == 2
    assert "rcm lake: restore changes the lake" in capsys.readouterr().err

    monkeypatch.setattr(sys, "stdin", Terminal())
    monkeypatch.setattr(builtins, "input", lambda prompt="": "n")
    with pytest.raises(SystemExit) as aborted:
        main(argv)
    assert aborted.value.code == 1
    assert "rcm lake restore: aborted, nothing changed" in capsys.readouterr().err
    assert DeltaTable(uri).version() == 2
