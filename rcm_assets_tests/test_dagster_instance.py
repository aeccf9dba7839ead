"""deploy/dagster.yaml, the production Dagster instance, against a real PostgreSQL.

The instance is loaded from a copy of the file with only DAGSTER_PG_* set, so these tests break
when the file, its variable names or dagster-postgres's schema drift apart.
"""

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlparse

import psycopg2
import pytest
import yaml
from dagster import (
    AssetKey,
    DagsterInstance,
    DagsterRunStatus,
    QueuedRunCoordinator,
    RunsFilter,
    asset,
    materialize,
)
from dagster._core.errors import DagsterInvalidConfigError
from dagster._core.instance.config import dagster_instance_config
from dagster._core.storage.dagster_run import DagsterRun
from dagster._utils.tags import TagConcurrencyLimitsCounter
from dagster_postgres import (
    PostgresEventLogStorage,
    PostgresRunStorage,
    PostgresScheduleStorage,
)

from rcm_assets.settings import REPO_ROOT
from rcm_assets_tests.conftest import fresh_postgres_database

DEPLOY = REPO_ROOT / "deploy"
# Trust auth ignores it; it is distinctive so that a leak into the event log is found.
FAKE_PASSWORD = "not-a-real-password-7f3a"
PG_VARIABLES = (
    "DAGSTER_PG_USERNAME",
    "DAGSTER_PG_PASSWORD",
    "DAGSTER_PG_HOST",
    "DAGSTER_PG_PORT",
    "DAGSTER_PG_DB",
)
PROBE_KEY = AssetKey(["rcm_probe", "instance"])
POOL = "delta:rcm_probe/pooled"


@asset(key=PROBE_KEY)
def probe() -> int:
    return 1


@asset(key=AssetKey(["rcm_probe", "pooled"]), pool=POOL)
def pooled() -> int:
    return 2


@dataclass(frozen=True)
class Database:
    server: str  # the server URI, connected to the maintenance database
    name: str

    @property
    def uri(self) -> str:
        return urlparse(self.server)._replace(path=f"/{self.name}").geturl()

    @property
    def password(self) -> str:
        """The server's real password if the URI has one (CI), else the fake one."""
        return unquote(urlparse(self.server).password or "") or FAKE_PASSWORD


@pytest.fixture(scope="module")
def database() -> Iterator[Database]:
    with fresh_postgres_database("dagster") as (server, name):
        yield Database(server, name)


def _home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, source: str) -> Path:
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(DEPLOY / source, home / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    monkeypatch.delenv("PGSSLMODE", raising=False)
    return home


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, database: Database) -> Path:
    """A DAGSTER_HOME holding deploy/dagster.yaml, with DAGSTER_PG_* naming `database`."""
    parts = urlparse(database.server)
    monkeypatch.setenv("DAGSTER_PG_USERNAME", unquote(parts.username or "postgres"))
    monkeypatch.setenv("DAGSTER_PG_PASSWORD", database.password)
    monkeypatch.setenv("DAGSTER_PG_HOST", parts.hostname or "127.0.0.1")
    monkeypatch.setenv("DAGSTER_PG_PORT", str(parts.port or 5432))
    monkeypatch.setenv("DAGSTER_PG_DB", database.name)
    return _home(tmp_path, monkeypatch, "dagster.yaml")


def _query(database: Database, sql: str, *params: object) -> list[tuple]:
    connection = psycopg2.connect(database.uri)
    try:
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            return cursor.fetchall()
    finally:
        connection.close()


def test_runs_and_events_are_stored_in_postgres(home: Path, database: Database) -> None:
    with DagsterInstance.from_config(str(home)) as instance:
        assert isinstance(instance.run_storage, PostgresRunStorage)
        assert isinstance(instance.event_log_storage, PostgresEventLogStorage)
        assert isinstance(instance.schedule_storage, PostgresScheduleStorage)

        result = materialize([probe], instance=instance)
        assert result.success
        run_id = result.run_id

        (record,) = instance.get_run_records(RunsFilter(run_ids=[run_id]))
        assert record.dagster_run.status == DagsterRunStatus.SUCCESS
        latest = instance.get_latest_materialization_event(PROBE_KEY)
        assert latest is not None and latest.run_id == run_id
        events = instance.all_logs(run_id)
        assert events, "the run wrote no events"
        for event in events:
            assert database.password not in (event.message or "")
            assert database.password not in (event.user_message or "")
            assert database.password not in repr(event.dagster_event)

    # The same facts straight from the tables dagster-postgres writes, after disposal.
    assert _query(database, "SELECT status FROM runs WHERE run_id = %s", run_id) == [("SUCCESS",)]
    materializations = _query(
        database,
        "SELECT count(*) FROM event_logs WHERE run_id = %s AND dagster_event_type = %s "
        "AND asset_key = %s",
        run_id,
        "ASSET_MATERIALIZATION",
        PROBE_KEY.to_string(),
    )
    assert materializations == [(1,)]
    stored = _query(database, "SELECT event FROM event_logs WHERE run_id = %s", run_id)
    assert len(stored) == len(events)
    assert not [row for (row,) in stored if database.password in row]
    (body,) = _query(database, "SELECT run_body FROM runs WHERE run_id = %s", run_id)
    assert database.password not in body[0]
    # Nothing fell back to the SQLite storage an unconfigured instance would create.
    assert not (home / "history").exists()
    assert not (home / "schedules").exists()


def test_queue_pools_and_monitoring_are_configured(home: Path, database: Database) -> None:
    with DagsterInstance.from_config(str(home)) as instance:
        assert isinstance(instance.run_coordinator, QueuedRunCoordinator)
        concurrency = instance.get_concurrency_config()
        queue = concurrency.run_queue_config
        assert queue is not None
        assert queue.max_concurrent_runs == 8
        # While a hos-a run is in progress, another hos-a run waits and a hos-b run may go.
        running = DagsterRun(job_name="j", run_id="r1", tags={"dagster/partition": "hos-a"})
        counter = TagConcurrencyLimitsCounter(queue.tag_concurrency_limits, [running])
        assert counter.is_blocked(DagsterRun(job_name="j", tags={"dagster/partition": "hos-a"}))
        assert not counter.is_blocked(DagsterRun(job_name="j", tags={"dagster/partition": "hos-b"}))
        assert concurrency.pool_config.default_pool_limit == 1
        assert instance.run_monitoring_enabled
        assert instance.run_monitoring_max_resume_run_attempts == 0
        assert not instance.telemetry_enabled

        # A pool nobody configured gets the default limit, in PostgreSQL.
        assert materialize([pooled], instance=instance).success
        info = instance.event_log_storage.get_concurrency_info(POOL)
        assert info.slot_count == 1
        assert info.active_slot_count == 0  # released when the step ended
    (limit,) = _query(
        database, "SELECT count(*) FROM concurrency_limits WHERE concurrency_key = %s", POOL
    )
    assert limit == (1,)


def test_missing_variable_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No database needed: the error comes from config validation, before any connection."""
    home = _home(tmp_path, monkeypatch, "dagster.yaml")
    for name in PG_VARIABLES:
        monkeypatch.setenv(name, FAKE_PASSWORD if name == "DAGSTER_PG_PASSWORD" else "5432")
    monkeypatch.delenv("DAGSTER_PG_HOST")
    with pytest.raises(DagsterInvalidConfigError) as failure:
        DagsterInstance.from_config(str(home))
    message = str(failure.value)
    assert 'environment variable "DAGSTER_PG_HOST" which is not set' in message
    assert FAKE_PASSWORD not in message
    for name in set(PG_VARIABLES) - {"DAGSTER_PG_HOST"}:
        assert f'"{name}" which is not set' not in message


def _without_comments(name: str) -> dict:
    return yaml.safe_load((DEPLOY / name).read_text())


def test_production_files_take_everything_from_the_environment() -> None:
    storage = _without_comments("dagster.yaml")["storage"]["postgres"]["postgres_db"]
    # The driver is the one literal: psycopg2 is what dagster-postgres installs.
    assert storage.pop("scheme") == "postgresql+psycopg2"
    assert {key: value["env"] for key, value in storage.items()} == {
        "username": "DAGSTER_PG_USERNAME",
        "password": "DAGSTER_PG_PASSWORD",
        "hostname": "DAGSTER_PG_HOST",
        "db_name": "DAGSTER_PG_DB",
        "port": "DAGSTER_PG_PORT",
    }
    documented = {
        line.split("=", 1)[0].lstrip("# ").strip()
        for line in (DEPLOY / "env.example").read_text().splitlines()
        if "=" in line and line.lstrip("# ").split("=", 1)[0].isupper()
    }
    assert set(PG_VARIABLES) <= documented
    assert {"RCM_LAKE_ROOT", "RCM_LANDING_ROOT", "RCM_METADATA_DIR", "AZURE_KEY_VAULT_URL"} <= (
        documented
    )


def test_k8s_template_is_the_production_instance_plus_a_launcher(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Schema-checked here; test_deploy_manifests.py validates its launcher with dagster-k8s."""
    home = _home(tmp_path, monkeypatch, "dagster-k8s.yaml")
    config, _ = dagster_instance_config(str(home))
    assert config["run_launcher"]["module"] == "dagster_k8s"
    assert config["run_launcher"]["class"] == "K8sRunLauncher"
    k8s = _without_comments("dagster-k8s.yaml")
    launcher = k8s.pop("run_launcher")
    assert launcher["config"]["instance_config_map"]
    assert k8s == _without_comments("dagster.yaml")

    executor = _without_comments("k8s-executor-job.yaml")["execution"]["config"]
    assert executor["max_concurrent"] >= 1
