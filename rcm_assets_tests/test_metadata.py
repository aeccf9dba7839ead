"""metadata.py: the shipped metadata loads; each defect fails with file, line and column."""

import re

import pytest

from rcm_assets.errors import MetadataError
from rcm_assets.metadata import LoadType, load_metadata
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
