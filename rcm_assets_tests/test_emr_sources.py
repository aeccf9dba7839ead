"""resources/emr_sources.py: URI resolution, redaction, readable errors from real databases."""

import os
import time

import pytest

from rcm_assets.errors import SourceError
from rcm_assets.metadata import load_metadata
from rcm_assets.resources import EmrSourcesResource
from rcm_assets.resources.emr_sources import SourceDatabase, redact_uri
from rcm_assets_tests.conftest import (
    Project,
    drop_mysql_databases,
    mariadb_or_skip,
    postgres_or_skip,
)


def test_redact_uri_hides_only_the_password() -> None:
    assert redact_uri("postgresql://rcm:p%40ss@db:5432/emr") == "postgresql://rcm:***@db:5432/emr"
    assert redact_uri("sqlite:///tmp/a.db") == "sqlite:///tmp/a.db"


def test_embedded_default_and_environment_override(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = load_metadata().databases["healthcare-rcm-hospital-a"]
    resource = EmrSourcesResource()
    default = resource.open(spec, "hos-a")
    assert default.uri == f"sqlite://{project.home}/sources/healthcare-rcm-hospital-a.db"
    assert default.dialect == "sqlite"
    monkeypatch.setenv(spec.uri_env_var, "postgresql://u:pw@h:5432/db")
    assert resource.open(spec, "hos-a").dialect == "postgres"


def test_missing_sqlite_file_says_how_to_fix(project: Project) -> None:
    source = SourceDatabase("db-x", "hos-x", f"sqlite://{project.home}/nope.db")
    with pytest.raises(
        SourceError, match=r"datasource hos-x: database db-x not found .*rcm generate"
    ):
        source.columns("dbo", "patients")


def test_unsupported_scheme_is_named() -> None:
    with pytest.raises(SourceError, match=r"unsupported URI scheme 'oracle'"):
        _ = SourceDatabase("db-x", "hos-x", "oracle://u:p@h/db").dialect


@pytest.mark.parametrize(
    ("uri", "base"),
    [("mysql+pymysql://u:Hunter2@h/db", "mysql"), ("postgresql+psycopg2://u@h/db", "postgresql")],
)
def test_a_driver_suffix_is_rejected_saying_which_scheme_to_use(uri: str, base: str) -> None:
    with pytest.raises(SourceError) as caught:
        _ = SourceDatabase("db-x", "hos-x", uri).dialect
    message = str(caught.value)
    assert message.startswith("datasource hos-x: database db-x has URI scheme")
    assert f"use {base}:// instead" in message and "Hunter2" not in message


def _mysql_database(server: str, name: str, ddl: str) -> None:
    from rcm_assets.resources.emr_sources import mysql_connect

    connection = mysql_connect(server, autocommit=True)
    with connection.cursor() as cursor:
        cursor.execute(f"DROP DATABASE IF EXISTS `{name}`")
        cursor.execute(f"CREATE DATABASE `{name}`")
        cursor.execute(f"CREATE TABLE `{name}`.{ddl}")
    connection.close()


def test_mysql_wrong_password_fails_at_once_naming_the_source_not_the_password() -> None:
    server = mariadb_or_skip()
    wrong = server.replace("root@", "root:Hunter2@", 1) + "/mysql"
    started = time.monotonic()
    with pytest.raises(SourceError) as caught:
        SourceDatabase("db-x", "hos-x", wrong).columns("dbo", "patients")
    assert time.monotonic() - started < 5  # not connectorx's 30 s pool timeout
    message = str(caught.value)
    assert message.startswith(
        "datasource hos-x: cannot connect to database db-x (mysql://root:***@"
    )
    assert "Access denied" in message and "Hunter2" not in message


def test_mysql_table_reference_means_the_uri_database_table() -> None:
    """`dbo.patients` is `patients` of the URI's database, never database `dbo`, and a
    same-named table of another database on the server is not looked at."""
    server = mariadb_or_skip()
    mine, other = f"rcmtest-{os.getpid()}-mine", f"rcmtest-{os.getpid()}-other"
    try:
        _mysql_database(server, mine, "patients (`ID` VARCHAR(10), `Name` VARCHAR(10))")
        _mysql_database(server, other, "patients (`Other` VARCHAR(10))")
        source = SourceDatabase(mine, "hos-x", f"{server}/{mine}")
        assert source.dialect == "mysql"
        assert source.columns("dbo", "patients") == ["ID", "Name"]
        assert source.columns(None, "patients") == ["ID", "Name"]
        with pytest.raises(SourceError, match=rf"table dbo.nothing not found in database {mine}"):
            source.columns("dbo", "nothing")
    finally:
        drop_mysql_databases(server, [mine, other])


@pytest.mark.postgres
def test_postgres_errors_are_readable_and_redacted() -> None:
    server = postgres_or_skip()
    wrong = server.replace("postgres@", "nobody:Hunter2@", 1).rsplit("/", 1)[0] + "/nodb"
    with pytest.raises(SourceError) as caught:
        SourceDatabase("db-x", "hos-x", wrong).columns("dbo", "patients")
    assert "datasource hos-x" in str(caught.value)
    assert "Hunter2" not in str(caught.value)
    missing = SourceDatabase("db-x", "hos-x", server)
    with pytest.raises(SourceError, match=r"table dbo.no_such_table not found in database db-x"):
        missing.columns("dbo", "no_such_table")
