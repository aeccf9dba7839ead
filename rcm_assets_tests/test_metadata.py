"""rcm_assets.metadata: the shipped metadata loads; each defect fails with file, line and column."""

import re
import subprocess
import sys

import polars as pl
import pytest
from pydantic import TypeAdapter, ValidationError

from rcm_assets.errors import MetadataError
from rcm_assets.metadata import ColumnType, LoadType, Severity, load_metadata
from rcm_assets.metadata.fields import (
    Flag,
    FlagEmptyIsFalse,
    Identifier,
    NoneIfEmpty,
    OptionalText,
    Words,
)
from rcm_assets_tests.conftest import Project

HOS_A_PATIENTS = "healthcare-rcm-hospital-a,hos-a,dbo.patients,Incremental,ModifiedDate,1,hosa"


def test_shipped_metadata_has_ten_loads_over_two_hospitals(project: Project) -> None:
    metadata = load_metadata()
    assert len(metadata.active_loads) == 10
    tables = metadata.bronze_tables()
    assert sorted(tables) == ["departments", "encounters", "patients", "providers", "transactions"]
    assert all(sorted(by_ds) == ["hos-a", "hos-b"] for by_ds in tables.values())
    assert tables["patients"]["hos-b"].watermark == "Updated_Date"
    assert tables["providers"]["hos-a"].loadtype is LoadType.FULL
    assert tables["patients"]["hos-a"].schema_name == "dbo"


def test_inactive_row_is_not_a_partition(project: Project) -> None:
    project.edit_metadata("load_config.csv", HOS_A_PATIENTS, HOS_A_PATIENTS[:-6] + "0,hosa")
    tables = load_metadata().bronze_tables()
    assert sorted(tables["patients"]) == ["hos-b"]
    assert sorted(tables["encounters"]) == ["hos-a", "hos-b"]


def _fails(project: Project, line: str, pattern: str, name: str = "load_config.csv") -> None:
    project.append_metadata(name, line)
    with pytest.raises(MetadataError) as caught:
        load_metadata()
    message = str(caught.value)
    assert str(project.metadata / name) in message
    assert re.search(pattern, message), message


@pytest.mark.parametrize(
    ("line", "pattern"),
    [
        (
            "healthcare-rcm-hospital-a,hos-a,dbo.claims,Incremantal,ModifiedDate,1,hosa",
            r"line 12, column loadtype: .*'Full' or 'Incremental'.*'Incremantal'",
        ),
        (
            "healthcare-rcm-hospital-a,hos-a,dbo.claims,Incremental,,1,hosa",
            r"line 12, column watermark: an Incremental load needs a watermark column",
        ),
        (HOS_A_PATIENTS, r"line 12, column tablename: duplicate of line 3"),
        (
            "healthcare-rcm-hospital-z,hos-z,dbo.claims,Full,,1,hosz",
            r"line 12, column database: unknown database 'healthcare-rcm-hospital-z'",
        ),
        (
            "healthcare-rcm-hospital-a,hos-a,dbo.claims; DROP TABLE x,Full,,1,hosa",
            r"line 12, column tablename: String should match pattern",
        ),
        (
            "healthcare-rcm-hospital-a,hos-a,dbo.claims,Incremental,Modified Date,1,hosa",
            r"line 12, column watermark: String should match pattern",
        ),
        (
            "healthcare-rcm-hospital-a,hos-a,dbo.claims,Full,,maybe,hosa",
            r"line 12, column is_active: .*'maybe' is not a flag",
        ),
        (
            "healthcare-rcm-hospital-a,hos-a,dbo.claims,Full,,1,hosb",
            r"line 12, column targetpath: datasource 'hos-a' already uses targetpath 'hosa'",
        ),
        (
            "healthcare-rcm-hospital-b,hos-a,dbo.claims,Full,,1,hosa",
            r"line 12, column database: datasource 'hos-a' already uses database",
        ),
        ("a,b,c", r"line 12, column datasource: String should match pattern|line 12, column"),
    ],
    ids=[
        "unknown-loadtype",
        "incremental-without-watermark",
        "duplicate",
        "unknown-database",
        "identifier-injection",
        "bad-watermark-identifier",
        "bad-flag",
        "targetpath-conflict",
        "database-conflict",
        "short-row",
    ],
)
def test_load_config_defect_names_file_line_and_column(
    project: Project, line: str, pattern: str
) -> None:
    _fails(project, line, pattern)


def test_bad_database_env_var_name(project: Project) -> None:
    _fails(project, "extra-db,lower_case_var,x", r"line 4, column uri_env_var", "databases.csv")


def test_missing_header_column(project: Project) -> None:
    (project.metadata / "load_config.csv").write_text("database,datasource,tablename\n")
    with pytest.raises(
        MetadataError, match=r"line 1: header must be .*missing column\(s\) loadtype"
    ):
        load_metadata()


KPIS = ("kpi_ar_aging", "kpi_monthly", "kpi_payer_mix", "kpi_provider_department")


def test_quality_rules_carry_severity_and_impacted_gold_tables(project: Project) -> None:
    rules = {(r.table, r.rule): r for r in load_metadata().quality_rules}
    patient_id = rules["patients", "patient_id_missing"]
    assert patient_id.severity is Severity.ERROR
    assert patient_id.impacts == ("dim_patient", "dim_patient_masked")
    negative = rules["transactions", "negative_amount"]
    assert negative.severity is Severity.WARN
    assert negative.impacts == ("fact_transactions", *KPIS)
    assert rules["encounters", "patient_id_missing"].impacts == ()  # no gold table reads it
    assert all(
        r.severity is (Severity.ERROR if r.action == "quarantine" else Severity.WARN)
        for r in rules.values()
    )


@pytest.mark.parametrize(
    ("line", "pattern"),
    [
        (
            "patients,ssn_missing,not_null,ssn,flag,warn,dim_patient dim_nope,ssn is null",
            r"line {line}, column impacts: unknown gold table\(s\) 'dim_nope'; see gold_tables.csv",
        ),
        (
            "patients,ssn_missing,not_null,ssn,flag,fatal,dim_patient,ssn is null",
            r"line {line}, column severity: .*'error' or 'warn'.*'fatal'",
        ),
        (
            "patients,ssn_missing,not_null,ssn,flag,,dim_patient,ssn is null",
            r"line {line}, column severity: ",
        ),
    ],
    ids=["unknown-impacted-table", "unknown-severity", "empty-severity"],
)
def test_quality_rule_defect_names_file_line_and_column(
    project: Project, line: str, pattern: str
) -> None:
    appended = len((project.metadata / "quality_rules.csv").read_text().splitlines()) + 1
    _fails(project, line, pattern.format(line=appended), "quality_rules.csv")


@pytest.mark.parametrize(
    "cron",
    ["0 2 * *", "61 2 * * *", "0 2 * * * *", "0 0 30 2 *", "every night"],
    ids=["four-fields", "minute-61", "seconds-field", "30-february", "words"],
)
def test_bad_cron_names_file_line_and_column(project: Project, cron: str) -> None:
    _fails(
        project,
        f"nightly,{cron},UTC,x",
        rf"line 3, column cron: .*{re.escape(repr(cron))} is not a cron expression",
        "schedules.csv",
    )


def test_unknown_time_zone(project: Project) -> None:
    _fails(project, "nightly,0 3 * * *,Mars/Olympus,x", r"line 3, column timezone", "schedules.csv")


@pytest.mark.parametrize(
    ("cell", "expected"),
    [("1", True), (" Yes ", True), ("TRUE", True), ("0", False), ("no", False), ("False", False)],
)
def test_flag_reads_one_zero_true_false_yes_no(cell: str, expected: bool) -> None:
    assert TypeAdapter(Flag).validate_python(cell) is expected
    assert TypeAdapter(FlagEmptyIsFalse).validate_python(cell) is expected


@pytest.mark.parametrize("cell", ["", "  ", "maybe", "2"])
def test_flag_refuses_anything_else(cell: str) -> None:
    with pytest.raises(ValidationError, match=r"is not a flag; use 1 or 0"):
        TypeAdapter(Flag).validate_python(cell)


def test_flag_empty_is_false_takes_an_empty_cell_as_no(project: Project) -> None:
    assert TypeAdapter(FlagEmptyIsFalse).validate_python("  ") is False
    with pytest.raises(ValidationError, match=r"'maybe' is not a flag; use 1 or 0"):
        TypeAdapter(FlagEmptyIsFalse).validate_python("maybe")
    tables = load_metadata().silver_tables
    assert tables["providers"].retire_absent is False  # the cell is empty
    assert tables["cpt_codes"].retire_absent is True


def test_empty_text_is_none() -> None:
    assert TypeAdapter(OptionalText).validate_python("") is None
    assert TypeAdapter(OptionalText).validate_python("   ") is None
    assert TypeAdapter(OptionalText).validate_python(" a b ") == "a b"
    identifier = TypeAdapter(NoneIfEmpty[Identifier])
    assert identifier.validate_python(" ") is None
    assert identifier.validate_python(" watermark ") == "watermark"
    with pytest.raises(ValidationError, match="String should match pattern"):
        identifier.validate_python("Modified Date")


def test_words_split_on_whitespace() -> None:
    assert TypeAdapter(Words).validate_python(" a  b\tc ") == ("a", "b", "c")
    assert TypeAdapter(Words).validate_python("") == ()


def test_column_type_knows_its_polars_and_sql_types() -> None:
    assert {t.value: (t.polars_type, t.sql_type) for t in ColumnType} == {
        "string": (pl.String, "string"),
        "key": (pl.String, "string"),
        "date": (pl.Date, "date"),
        "datetime": (pl.Datetime("us"), "timestamp"),
        "decimal": (pl.Decimal(18, 2), "decimal(18,2)"),
        "integer": (pl.Int64, "bigint"),
    }


def test_metadata_does_not_import_dagster() -> None:
    check = (
        "import sys, rcm_assets.metadata; "
        "sys.exit(sorted(m for m in sys.modules if m.startswith('dagster'))[:3] or None)"
    )
    result = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_a_byte_order_mark_is_not_part_of_the_header(project: Project) -> None:
    path = project.metadata / "databases.csv"
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())  # Excel's "CSV UTF-8"

    assert load_metadata().databases  # read as if there were no mark


def test_metadata_not_in_utf8_names_the_file_and_line(project: Project) -> None:
    path = project.metadata / "databases.csv"
    lines = path.read_text().splitlines(keepends=True)
    lines[2] = lines[2].rstrip("\n") + " café\n"
    path.write_bytes("".join(lines).encode("latin-1"))  # saved as Latin-1

    with pytest.raises(MetadataError) as raised:
        load_metadata()

    assert str(raised.value).startswith(f"{path}, line 3: not UTF-8 (byte 0xe9 at offset ")
    assert str(raised.value).endswith("save the file as UTF-8")


@pytest.mark.parametrize(
    ("name", "line", "pattern"),
    [
        (
            "kpi_targets.csv",
            "kpi_monthly_typo,days_in_ar,Days in A/R,days,40,lower,",
            r"line 10, column mart: 'kpi_monthly_typo' is not a kpi table of gold_tables.csv",
        ),
        (
            "kpi_targets.csv",
            "kpi_monthly,days_in_ar,Days in A/R,weeks,40,lower,",
            r"line 10, column unit: .*'percent', 'days', 'currency' or 'count'",
        ),
        ("denial_reasons.csv", "*,16,billing,1,again", r"line 21, column reason_code: duplicate"),
        ("denial_reasons.csv", "XX,16,billing,1,", r"line 21, column group_code"),
    ],
)
def test_report_and_denial_metadata_mistakes_name_file_line_and_column(
    project: Project, name: str, line: str, pattern: str
) -> None:
    _fails(project, line, pattern, name)


def test_a_hospital_without_a_display_name_is_shown_by_its_slug(project: Project) -> None:
    metadata = load_metadata()
    assert metadata.display_name("hos-a") == "Hospital A"
    assert metadata.display_name("hos-z") == "hos-z"
