"""The whole graph on Dagster's Celery executor: RabbitMQ as broker, two workers as separate
processes, the PostgreSQL instance of deploy/dagster.yaml, and `rcm run --executor celery`."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlparse

import polars as pl
import pytest
from dagster import DagsterEventType, DagsterInstance
from deltalake import DeltaTable

from rcm_assets.lake.scd2 import consumed_load_ids
from rcm_assets.resources import LakeResource
from rcm_assets.settings import REPO_ROOT
from rcm_assets_tests.bronze_helpers import sqlite_sources
from rcm_assets_tests.conftest import Project, fresh_postgres_database
from rcm_assets_tests.lake_fingerprint import fingerprint

BIN = Path(sys.executable).parent
BROKER = os.environ.get("RCM_TEST_BROKER", "pyamqp://guest:guest@127.0.0.1:5672//")


def broker_or_skip() -> str:
    """The RabbitMQ broker; skip when it is absent, but fail in CI, where it must be present."""
    parts = urlparse(BROKER)
    try:
        socket.create_connection((parts.hostname, parts.port or 5672), timeout=3).close()
    except OSError as error:
        if os.environ.get("CI"):
            pytest.fail(f"RabbitMQ must be reachable in CI at {parts.hostname}: {error}")
        pytest.skip(f"RabbitMQ not reachable at {parts.hostname}:{parts.port}")
    return BROKER


@dataclass
class Workers:
    names: list[str]
    processes: list[subprocess.Popen]


@pytest.fixture
def celery_env(
    sampled: Project, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[dict[str, str]]:
    """The environment of the run and the workers: the sample project, a PostgreSQL instance
    (deploy/dagster.yaml), the broker and a queue of this test's own."""
    broker = broker_or_skip()
    with fresh_postgres_database("celery") as (server, name):
        yield _instance_env(server, name, broker, tmp_path, monkeypatch)


def _instance_env(
    server: str, name: str, broker: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> dict[str, str]:
    home = tmp_path / "dagster_pg"
    home.mkdir()
    shutil.copy(REPO_ROOT / "deploy" / "dagster.yaml", home / "dagster.yaml")
    parts = urlparse(server)
    settings = {
        "DAGSTER_HOME": str(home),
        "DAGSTER_PG_USERNAME": unquote(parts.username or "postgres"),
        "DAGSTER_PG_PASSWORD": unquote(parts.password or ""),
        "DAGSTER_PG_HOST": parts.hostname or "127.0.0.1",
        "DAGSTER_PG_PORT": str(parts.port or 5432),
        "DAGSTER_PG_DB": name,
        "RCM_CELERY_BROKER": broker,
        "RCM_CELERY_QUEUE": f"rcm-test-{uuid.uuid4().hex[:8]}",
    }
    for key, value in settings.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("PGSSLMODE", raising=False)
    return os.environ.copy()


def start_workers(env: dict[str, str], count: int, logs: Path) -> Workers:
    """`count` Celery workers as `make workers` starts them: one process each, solo pool."""
    names = [f"rcm-{uuid.uuid4().hex[:6]}-{n}@{socket.gethostname()}" for n in range(count)]
    processes = []
    for name in names:
        log = (logs / f"{name}.log").open("w")
        command = [str(BIN / "rcm"), "worker", "--name", name]
        processes.append(
            subprocess.Popen(
                command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        )
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if all(" ready." in (logs / f"{n}.log").read_text() for n in names):
            return Workers(names, processes)
        assert all(p.poll() is None for p in processes), "a worker exited while starting"
        time.sleep(0.5)
    raise AssertionError(f"workers not ready after 90 s: see {logs}")


def stop(workers: Workers) -> None:
    for process in workers.processes:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
    for process in workers.processes:
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


@dataclass(frozen=True)
class Step:
    run_partition: str | None
    key: str
    worker: str
    pid: int
    started: float
    ended: float


def steps_of(instance: DagsterInstance) -> list[Step]:
    """Every step of every run: which worker (host name) and process ran it, and when."""
    found = []
    for run in instance.get_runs():
        events = instance.all_logs(run.run_id)
        worker: dict[str, str] = {}
        started: dict[str, tuple[float, int]] = {}
        for event in events:
            dagster_event = event.dagster_event
            if dagster_event is None or not event.step_key:
                continue
            if dagster_event.event_type is DagsterEventType.ENGINE_EVENT:
                metadata = dagster_event.engine_event_data.metadata
                if "Celery worker" in metadata:
                    worker[event.step_key] = metadata["Celery worker"].value
            elif dagster_event.event_type is DagsterEventType.STEP_START:
                started[event.step_key] = (event.timestamp, dagster_event.pid)
            elif dagster_event.event_type is DagsterEventType.STEP_SUCCESS:
                begun, pid = started[event.step_key]
                found.append(
                    Step(
                        run.tags.get("dagster/partition"),
                        event.step_key,
                        worker.get(event.step_key, ""),
                        pid,
                        begun,
                        event.timestamp,
                    )
                )
    return found


def rcm_run(env: dict[str, str], *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [str(BIN / "rcm"), "run", "--executor", "celery", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=REPO_ROOT,
    )


def test_whole_graph_on_two_celery_workers_equals_an_in_process_run(
    sampled: Project, celery_env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    reference = tmp_path / "in_process"  # the same sample data, run in one process
    shutil.copytree(sampled.home, reference)
    for home in (sampled.home, reference):  # silver merges of a second or two per hospital
        for target in ("hosa", "hosb"):
            sqlite_sources(Project(home, sampled.metadata)).copy_transactions(
                target, 20, "2026-03-01 00:00:00"
            )
    # The two hospitals' runs at once, as the daemon launches them (one run per partition),
    # queued before any worker takes a step, so the workers interleave them; then the rest.
    hospitals = [rcm_run(celery_env, "--partition", p) for p in ("hos-a", "hos-b")]
    with DagsterInstance.get() as instance:
        deadline = time.monotonic() + 120
        while len(instance.get_runs()) < 2:
            assert time.monotonic() < deadline, "the hospitals' runs never started"
            time.sleep(0.2)
    time.sleep(3)  # both runs submit their first steps
    workers = start_workers(celery_env, 2, tmp_path)
    try:
        for run in hospitals:
            output = run.communicate(timeout=600)[0]
            assert run.returncode == 0, output[-4000:]
        rest = rcm_run(celery_env)
        output = rest.communicate(timeout=600)[0]
        assert rest.returncode == 0, output[-4000:]
    finally:
        stop(workers)

    with DagsterInstance.get() as instance:
        steps = steps_of(instance)
    assert {step.worker for step in steps} == set(workers.names)  # every step on a worker
    assert len({step.pid for step in steps}) == 2  # the two worker processes, nothing else
    silver = {
        partition: [s for s in steps if s.run_partition == partition and "silver__" in s.key]
        for partition in ("hos-a", "hos-b")
    }
    assert all(silver.values())
    assert any(  # the two hospitals' silver steps ran at the same time
        a.started < b.ended and b.started < a.ended
        for a in silver["hos-a"]
        for b in silver["hos-b"]
    ), silver
    on_celery = fingerprint(LakeResource().addresses, ("silver", "gold"))

    env = {**celery_env, "RCM_HOME": str(reference), "DAGSTER_HOME": str(tmp_path / "local")}
    local = subprocess.run(
        [str(BIN / "rcm"), "run"], env=env, capture_output=True, text=True, cwd=REPO_ROOT
    )
    assert local.returncode == 0, local.stdout[-3000:] + local.stderr[-3000:]
    monkeypatch.setenv("RCM_HOME", str(reference))
    in_process = fingerprint(LakeResource().addresses, ("silver", "gold"))
    assert {"silver/patients", "gold/kpi_monthly", "gold/fact_remittance_lines"} <= set(on_celery)
    assert on_celery == in_process


def test_a_worker_killed_mid_merge_leaves_silver_whole_and_the_step_runs_again_elsewhere(
    sampled: Project, celery_env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A step's message is acknowledged only when the step ends: the broker hands a killed
    worker's step to the next worker, and the Delta commit makes the half-done merge invisible."""
    reference = Project(tmp_path / "in_process", sampled.metadata)
    shutil.copytree(sampled.home, reference.home)
    [first] = start_workers(celery_env, 1, tmp_path).processes
    baseline = rcm_run(celery_env)
    assert baseline.wait(timeout=600) == 0, baseline.communicate()[0][-4000:]
    for project in (sampled, reference):  # seconds of merge work for hos-a's transactions
        sqlite_sources(project).copy_transactions("hosa", 300, "2026-03-01 00:00:00")
    table = sampled.lake / "silver" / "transactions"
    version, consumed = DeltaTable(str(table)).version(), consumed_load_ids(str(table), "hos-a")
    existing = files_of(table)

    run = rcm_run(celery_env, "--partition", "hos-a")
    deadline = time.monotonic() + 300
    while not files_of(table) - existing and time.monotonic() < deadline:
        time.sleep(0.005)
    os.killpg(first.pid, signal.SIGKILL)  # while the merge writes its files
    first.wait()

    pending = set(pl.read_delta(str(sampled.lake / "bronze" / "hosa" / "transactions"))["load_id"])
    after = (DeltaTable(str(table)).version(), consumed_load_ids(str(table), "hos-a"))
    assert after in [(version, consumed), (version + 1, pending)]  # never a state in between
    time.sleep(5)
    assert run.poll() is None  # the run waits for the step, neither lost nor failed
    second = start_workers(celery_env, 1, tmp_path)
    try:
        output = run.communicate(timeout=600)[0]
        assert run.returncode == 0, output[-4000:]
        rest = rcm_run(celery_env)
        assert rest.wait(timeout=600) == 0, rest.communicate()[0][-4000:]
    finally:
        stop(second)

    with DagsterInstance.get() as instance:
        merges = [s for s in steps_of(instance) if s.key == "silver__transactions"]
    latest = max((s for s in merges if s.run_partition == "hos-a"), key=lambda s: s.started)
    assert latest.worker == second.names[0]  # the step ran again, on the worker left
    assert consumed_load_ids(str(table), "hos-a") == pending
    on_celery = fingerprint(LakeResource().addresses, ("silver", "gold"))
    env = {**celery_env, "RCM_HOME": str(reference.home), "DAGSTER_HOME": str(tmp_path / "local")}
    local = subprocess.run(
        [str(BIN / "rcm"), "run"], env=env, capture_output=True, text=True, cwd=REPO_ROOT
    )
    assert local.returncode == 0, local.stdout[-3000:] + local.stderr[-3000:]
    monkeypatch.setenv("RCM_HOME", str(reference.home))
    assert fingerprint(LakeResource().addresses, ("silver", "gold")) == on_celery


def files_of(folder: Path) -> set[str]:
    """The data files of a Delta table (not its log)."""
    return {str(path) for path in folder.rglob("*.parquet")}
