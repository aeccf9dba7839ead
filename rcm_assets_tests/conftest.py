"""Shared fixtures: a throwaway RCM_HOME and metadata folder, sample sources, PostgreSQL,
MariaDB."""

import itertools
import os
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import psycopg2
import pymysql
import pytest
from dagster import AssetKey, DagsterInstance, ExecuteInProcessResult, instance_for_test

from rcm_assets.settings import REPO_ROOT
from rcm_assets_tests.azurite import Azurite, run_azurite
from rcm_assets_tests.dagster_server import dagster_server_factory  # noqa: F401 (a fixture)

if TYPE_CHECKING:
    from rcm_assets_tests.bronze_helpers import Sources

POSTGRES_SERVER = os.environ.get(
    "RCM_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres"
)
MARIADB_SERVER = os.environ.get("RCM_TEST_MARIADB", "mysql://root@127.0.0.1:3306")
SAMPLE_SCALE = 0.1


def execute(
    instance: DagsterInstance,
    selection: list[AssetKey],
    partition: str | None = None,
    run_config: dict | None = None,
) -> ExecuteInProcessResult:
    """Materialize `selection` in process, as one run of the project's Definitions."""
    from rcm_assets.runs import load_definitions  # reads the test's RCM_* settings

    return (
        load_definitions()
        .resolve_implicit_global_asset_job_def()
        .execute_in_process(
            instance=instance,
            partition_key=partition,
            asset_selection=selection,
            run_config=run_config or {},
            raise_on_error=False,
        )
    )


def postgres_or_skip() -> str:
    """The test server URI; skip when it is absent, but fail in CI, where it must be present."""
    try:
        psycopg2.connect(POSTGRES_SERVER, connect_timeout=3).close()
    except psycopg2.OperationalError as error:
        if os.environ.get("CI"):
            pytest.fail(f"PostgreSQL must be reachable in CI at {POSTGRES_SERVER}: {error}")
        pytest.skip(f"PostgreSQL not reachable at {POSTGRES_SERVER}")
    return POSTGRES_SERVER


def mariadb_or_skip() -> str:
    """The MariaDB/MySQL test server URI; skip when it is absent, but fail in CI."""
    from rcm_assets.resources.emr_sources import mysql_connect

    try:
        mysql_connect(MARIADB_SERVER, connect_timeout=3).close()
    except pymysql.err.OperationalError as error:
        if os.environ.get("CI"):
            pytest.fail(f"MariaDB must be reachable in CI at {MARIADB_SERVER}: {error}")
        pytest.skip(f"MariaDB not reachable at {MARIADB_SERVER}")
    return MARIADB_SERVER


@contextmanager
def fresh_postgres_database(suffix: str) -> Iterator[tuple[str, str]]:
    """(server URI, name) of an empty database of this test session, dropped afterwards."""
    server = postgres_or_skip()
    name = f"{PG_PREFIX}-{suffix}"
    connection = psycopg2.connect(server)
    connection.autocommit = True
    with connection.cursor() as cursor:
        cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        cursor.execute(f'CREATE DATABASE "{name}"')
    try:
        yield server, name
    finally:
        with connection.cursor() as cursor:
            cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        connection.close()


@dataclass
class Project:
    """A throwaway RCM_HOME and metadata folder, wired through the environment."""

    home: Path
    metadata: Path

    @property
    def lake(self) -> Path:
        return self.home / "lake"

    def edit_metadata(self, name: str, old: str, new: str) -> None:
        path = self.metadata / name
        text = path.read_text()
        assert old in text, f"{old!r} not in {name}"
        path.write_text(text.replace(old, new))

    def append_metadata(self, name: str, line: str) -> None:
        with (self.metadata / name).open("a") as handle:
            handle.write(line.rstrip("\n") + "\n")


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Project:
    home, metadata = tmp_path / "rcm", tmp_path / "metadata"
    shutil.copytree(REPO_ROOT / "metadata", metadata)
    home.mkdir()
    (tmp_path / "dagster").mkdir()
    monkeypatch.setenv("RCM_HOME", str(home))
    monkeypatch.setenv("RCM_METADATA_DIR", str(metadata))
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster"))
    for name in ("RCM_DB_URI_HOSPITAL_A", "RCM_DB_URI_HOSPITAL_B"):
        monkeypatch.delenv(name, raising=False)
    return Project(home, metadata)


@pytest.fixture(scope="session")
def sample_sources(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Sample EMR databases generated once per session; tests copy them."""
    from rcm_assets.sample_data import generate_sources
    from rcm_assets.sample_data.api_replay import sample_providers, write_api_replay

    home = tmp_path_factory.mktemp("sample")
    generate_sources(home, scale=SAMPLE_SCALE, seed=7)
    write_api_replay(home, sample_providers(home, None))
    return home


@pytest.fixture
def sampled(project: Project, sample_sources: Path) -> Project:
    """A project whose sources/ and landing/ hold a fresh copy of the sample data."""
    for folder in ("sources", "landing", "replay"):
        shutil.copytree(sample_sources / folder, project.home / folder)
    return project


# Per test session, so that two sessions on one server (a developer's and CI's) never collide.
PG_PREFIX = f"rcmtest-{os.getpid()}"


def _drop_databases(server: str, names: list[str]) -> None:
    connection = psycopg2.connect(server)
    connection.autocommit = True
    with connection.cursor() as cursor:
        for name in names:
            cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    connection.close()


def drop_mysql_databases(server: str, names: list[str]) -> None:
    connection = _mysql_admin(server)
    with connection.cursor() as cursor:
        for name in names:
            cursor.execute(f"DROP DATABASE IF EXISTS `{name}`")
    connection.close()


def _mysql_admin(server: str) -> "pymysql.connections.Connection":
    from rcm_assets.resources.emr_sources import mysql_connect

    return mysql_connect(server, connect_timeout=10, autocommit=True)


def _server_templates(
    sample_sources: Path, server: str, drop: Callable[[str, list[str]], None]
) -> Iterator[tuple[str, tuple]]:
    """The sample hospitals generated once into template databases on `server`, copied per
    test; `drop` removes them and the per-test copies at the end of the session."""
    from rcm_assets.sample_data import SAMPLE_HOSPITALS, generate_sources

    templates = tuple(
        replace(profile, database=f"{PG_PREFIX}-template-{profile.database[-1]}")
        for profile in SAMPLE_HOSPITALS
    )
    folder = sample_sources / urlsplit(server).scheme
    generate_sources(folder, scale=SAMPLE_SCALE, seed=7, target=server, hospitals=templates)
    yield server, templates
    drop(server, [t.database for t in templates] + [f"{PG_PREFIX}-hosa", f"{PG_PREFIX}-hosb"])


@pytest.fixture(scope="session")
def postgres_templates(sample_sources: Path) -> Iterator[tuple[str, tuple]]:
    yield from _server_templates(sample_sources, postgres_or_skip(), _drop_databases)


@pytest.fixture(scope="session")
def mariadb_templates(sample_sources: Path) -> Iterator[tuple[str, tuple]]:
    yield from _server_templates(sample_sources, mariadb_or_skip(), drop_mysql_databases)


def _mysql_sources(request: pytest.FixtureRequest, project: Project) -> "Sources":
    """Fresh copies of the MariaDB template databases (MariaDB has no CREATE DATABASE TEMPLATE:
    CREATE TABLE ... LIKE plus INSERT ... SELECT per table)."""
    from rcm_assets.sample_data import database_uri
    from rcm_assets_tests.bronze_helpers import Sources

    server, templates = request.getfixturevalue("mariadb_templates")
    monkeypatch = request.getfixturevalue("monkeypatch")
    connection = _mysql_admin(server)
    hospitals = {}
    with connection.cursor() as cursor:
        for target, template, spec in zip(("hosa", "hosb"), templates, ("A", "B"), strict=True):
            database = f"{PG_PREFIX}-{target}"
            cursor.execute(f"DROP DATABASE IF EXISTS `{database}`")
            cursor.execute(f"CREATE DATABASE `{database}` CHARACTER SET utf8mb4")
            cursor.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = %s",
                (template.database,),
            )
            for (table,) in cursor.fetchall():
                new, old = f"`{database}`.`{table}`", f"`{template.database}`.`{table}`"
                cursor.execute(f"CREATE TABLE {new} LIKE {old}")
                cursor.execute(f"INSERT INTO {new} SELECT * FROM {old}")
            hospitals[target] = replace(template, database=database)
            monkeypatch.setenv(f"RCM_DB_URI_HOSPITAL_{spec}", database_uri(server, database))
    connection.close()
    return Sources(project, "mysql", hospitals, server)


@pytest.fixture(params=["sqlite", "postgres", "mysql"])
def sources(request: pytest.FixtureRequest, project: Project, sample_sources: Path) -> "Sources":
    """The sample hospitals behind a fresh project, on SQLite files, PostgreSQL databases or
    MariaDB (MySQL) databases."""
    from rcm_assets.sample_data import SAMPLE_HOSPITALS, database_uri
    from rcm_assets_tests.bronze_helpers import Sources

    shutil.copytree(sample_sources / "landing", project.home / "landing")
    shutil.copytree(sample_sources / "replay", project.home / "replay")
    if request.param == "sqlite":
        shutil.copytree(sample_sources / "sources", project.home / "sources")
        return Sources(
            project, "sqlite", dict(zip(("hosa", "hosb"), SAMPLE_HOSPITALS, strict=True))
        )
    if request.param == "mysql":
        return _mysql_sources(request, project)
    server, templates = request.getfixturevalue("postgres_templates")
    monkeypatch = request.getfixturevalue("monkeypatch")
    connection = psycopg2.connect(server)
    connection.autocommit = True
    hospitals = {}
    with connection.cursor() as cursor:
        for target, template, spec in zip(("hosa", "hosb"), templates, ("A", "B"), strict=True):
            database = f"{PG_PREFIX}-{target}"
            cursor.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
            cursor.execute(f'CREATE DATABASE "{database}" TEMPLATE "{template.database}"')
            hospitals[target] = replace(template, database=database)
            monkeypatch.setenv(f"RCM_DB_URI_HOSPITAL_{spec}", database_uri(server, database))
    connection.close()
    return Sources(project, "postgres", hospitals, server)


@pytest.fixture
def instance() -> Iterator[DagsterInstance]:
    with instance_for_test() as test_instance:
        yield test_instance


@pytest.fixture(scope="session")
def azurite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Azurite]:
    """One Azurite blob service per test session (skips outside CI when it is not installed)."""
    yield from run_azurite(tmp_path_factory.mktemp("azurite"))


@pytest.fixture
def azure_project(project: Project, azurite: Azurite, monkeypatch: pytest.MonkeyPatch) -> Project:
    """A project whose lake and landing store are fresh containers on Azurite."""
    suffix = f"{os.getpid()}-{next(_containers)}"
    for name, variable in (("lake", "RCM_LAKE_ROOT"), ("landing", "RCM_LANDING_ROOT")):
        azurite.create_container(f"{name}-{suffix}")
        monkeypatch.setenv(variable, azurite.uri(f"{name}-{suffix}", "rcm"))
    for name, value in azurite.env().items():
        monkeypatch.setenv(name, value)
    return project


_containers = itertools.count()
