"""The whole graph for N hospitals per executor: in-process, multiprocess, Celery (1, 2 workers).

    .venv/bin/python bench/scale_out.py [--hospitals 8] [--scale 10]
        [--configs in_process multiprocess celery1 celery2] [--keep DIR]

Hospitals beyond the two samples are added through metadata only: the repository's metadata
folder is copied and, for each new hospital, the rows of hos-a (patient layout a) or hos-b
(layout b) are mirrored in databases.csv, load_config.csv, landing_files.csv and
silver_columns.csv under the new database and datasource names (hos-c, hos-d, ...). No code
changes; the project reads the copy through RCM_METADATA_DIR.

The sample data is generated once (every hospital at `--scale`, plus the API replay) and copied
for each configuration, which then runs `rcm run --executor <executor>` from scratch against a
Dagster instance in a fresh PostgreSQL database (deploy/dagster.yaml; in-process too, so every
configuration pays the same event-log cost). Celery configurations first start their workers
(`rcm worker`, RabbitMQ on localhost, a queue of their own) and wait until they are ready.

Per configuration: rows (silver transactions), wall time of `rcm run`, CPU time (user + system)
of the `rcm run` process tree plus the workers' CPU while the run ran (their start-up is printed
apart), peak RSS of the largest single process, and the speed-up over in-process. A run that
exits non-zero or leaves a datasource without silver transactions stops the benchmark.
"""

from __future__ import annotations

import argparse
import csv
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from string import ascii_lowercase

import polars as pl
import psycopg2

from rcm_assets.sample_data import generate_sources
from rcm_assets.sample_data.api_replay import sample_providers, write_api_replay
from rcm_assets.sample_data.generator import HospitalProfile

REPO = Path(__file__).resolve().parents[1]
RCM = Path(sys.executable).parent / "rcm"
CONFIGS = {"in_process": 0, "multiprocess": 0, "celery1": 1, "celery2": 2}  # name: workers
POSTGRES = {"host": "127.0.0.1", "port": 5432, "user": "postgres", "password": ""}
BROKER = "pyamqp://guest:guest@127.0.0.1:5672//"
WORKER_READY_SECONDS = 120
TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Hospital:
    number: int  # 1-based

    @property
    def letter(self) -> str:
        return ascii_lowercase[self.number - 1]

    @property
    def datasource(self) -> str:
        return f"hos-{self.letter}"

    @property
    def profile(self) -> HospitalProfile:
        layout = "a" if self.number % 2 else "b"
        return HospitalProfile(
            f"healthcare-rcm-hospital-{self.letter}",
            f"HOSP{self.number}",
            f"hospital{self.number}",
            layout,
        )

    @property
    def template(self) -> Hospital:
        """The sample hospital (a or b, same patient layout) whose metadata rows it mirrors."""
        return Hospital(1 if self.profile.patient_layout == "a" else 2)


@dataclass(frozen=True)
class Figures:
    config: str
    rows: int
    wall: float
    cpu: float
    rss_mib: float
    worker_start_cpu: float


# --- metadata only: a hospital is rows in four CSV files ------------------------------------


def _append_rows(path: Path, key: str, template: str, values: dict[str, str]) -> None:
    """Append a copy of each row whose `key` column is `template`, with `values` replaced."""
    with path.open(newline="") as file:
        reader = csv.DictReader(file)
        fields, rows = list(reader.fieldnames or []), list(reader)
    mirrored = [{**row, **values} for row in rows if row[key] == template]
    text = path.read_text()
    with path.open("a", newline="") as file:
        if text and not text.endswith("\n"):
            file.write("\n")
        csv.DictWriter(file, fields, lineterminator="\n").writerows(mirrored)


def write_metadata(target: Path, hospitals: list[Hospital]) -> Path:
    """The repository's metadata plus the hospitals it does not name yet (hos-c onwards)."""
    shutil.copytree(REPO / "metadata", target)
    for hospital in hospitals[2:]:
        profile, template = hospital.profile, hospital.template.datasource
        names = {"database": profile.database, "datasource": hospital.datasource}
        letter = hospital.letter.upper()
        _append_rows(
            target / "databases.csv",
            "database",
            hospital.template.profile.database,
            {
                "database": profile.database,
                "uri_env_var": f"RCM_DB_URI_HOSPITAL_{letter}",
                "description": f"Hospital {letter} EMR (bench/scale_out.py)",
            },
        )
        _append_rows(
            target / "load_config.csv",
            "datasource",
            template,
            {**names, "targetpath": hospital.datasource.replace("-", "")},
        )
        _append_rows(
            target / "landing_files.csv",
            "datasource",
            template,
            {"pattern": f"{profile.claims_file_prefix}_*.csv", "datasource": hospital.datasource},
        )
        _append_rows(
            target / "silver_columns.csv",
            "datasource",
            template,
            {"datasource": hospital.datasource},
        )
    return target


# --- one configuration ------------------------------------------------------------------------


@contextmanager
def postgres_database(name: str) -> Iterator[str]:
    """A fresh, empty PostgreSQL database for one configuration's Dagster instance."""
    admin = psycopg2.connect(dbname="postgres", **POSTGRES)
    admin.autocommit = True
    try:
        with admin.cursor() as cursor:
            cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            cursor.execute(f'CREATE DATABASE "{name}"')
        yield name
    finally:
        with admin.cursor() as cursor:
            cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


def _proc_cpu(pid: int) -> float:
    """CPU seconds of a live process and of its children it has waited for."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(value) for value in fields[11:15]) / TICKS  # utime stime cutime cstime


def _wait(process: subprocess.Popen[bytes]) -> tuple[int, float, float]:
    """Exit code, CPU seconds and peak RSS (MiB) of a child and the children it waited for."""
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    return process.returncode, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024


def _start_worker(env: dict[str, str], name: str, log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        worker = subprocess.Popen(
            [str(RCM), "worker", "--name", f"{name}@%h"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    deadline = time.monotonic() + WORKER_READY_SECONDS
    while " ready." not in log.read_text(errors="replace"):
        if worker.poll() is not None or time.monotonic() > deadline:
            _stop(worker)
            raise RuntimeError(f"worker {name} did not become ready:\n{log.read_text()[-3000:]}")
        time.sleep(0.2)
    return worker


def _stop(process: subprocess.Popen[bytes]) -> tuple[int, float, float]:
    """SIGTERM to the process group, then its exit code, CPU and peak RSS as `_wait` gives."""
    if process.returncode is not None:  # already reaped by poll(): its usage is lost
        return process.returncode, 0.0, 0.0
    os.killpg(process.pid, signal.SIGTERM)
    return _wait(process)


def _silver_transactions(home: Path) -> tuple[int, set[str]]:
    frame = pl.read_delta(str(home / "lake" / "silver" / "transactions"), columns=["datasource"])
    return frame.height, set(frame["datasource"].unique().to_list())


def run_config(
    config: str, source: Path, metadata: Path, root: Path, expected: set[str]
) -> Figures:
    """Copy the generated data, run the whole graph with this executor, check and measure it."""
    home = root / config
    shutil.copytree(source, home)
    dagster = home / "dagster"
    dagster.mkdir()
    shutil.copy(REPO / "deploy" / "dagster.yaml", dagster / "dagster.yaml")
    executor = "celery" if config.startswith("celery") else config
    with postgres_database(f"rcmbench-scaleout-{config}-{uuid.uuid4().hex[:8]}") as database:
        env = {k: v for k, v in os.environ.items() if not k.startswith("RCM_DB_URI_")}
        env |= {
            "RCM_HOME": str(home),
            "RCM_METADATA_DIR": str(metadata),
            "DAGSTER_HOME": str(dagster),
            "DAGSTER_PG_USERNAME": POSTGRES["user"],
            "DAGSTER_PG_PASSWORD": POSTGRES["password"],
            "DAGSTER_PG_HOST": POSTGRES["host"],
            "DAGSTER_PG_PORT": str(POSTGRES["port"]),
            "DAGSTER_PG_DB": database,
            "RCM_CELERY_BROKER": BROKER,
            "RCM_CELERY_QUEUE": f"rcm-bench-{uuid.uuid4()}",
        }
        workers: list[subprocess.Popen[bytes]] = []
        try:
            for n in range(1, CONFIGS[config] + 1):
                workers.append(_start_worker(env, f"w{n}", home / f"worker-{n}.log"))
            ready_cpu = sum(_proc_cpu(worker.pid) for worker in workers)
            log = home / "rcm-run.log"
            started = time.perf_counter()
            with log.open("wb") as out:
                run = subprocess.Popen(
                    [str(RCM), "run", "--executor", executor],
                    env=env,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            code, cpu, rss = _wait(run)
            wall = time.perf_counter() - started
        finally:
            stopped = [_stop(worker) for worker in workers]
    if code != 0:
        raise RuntimeError(f"{config}: rcm run exited {code}:\n{log.read_text()[-5000:]}")
    rows, datasources = _silver_transactions(home)
    if datasources != expected:
        raise RuntimeError(
            f"{config}: silver transactions hold {sorted(datasources)}, expected {sorted(expected)}"
        )
    workers_cpu = sum(cpu for _, cpu, _ in stopped)
    return Figures(
        config=config,
        rows=rows,
        wall=wall,
        cpu=cpu + workers_cpu - ready_cpu,
        rss_mib=max([rss, *(peak for _, _, peak in stopped)]),
        worker_start_cpu=ready_cpu,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hospitals", type=int, default=8, choices=range(2, 27))
    parser.add_argument("--scale", type=float, default=10)
    parser.add_argument("--configs", nargs="+", choices=list(CONFIGS), default=list(CONFIGS))
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--keep", type=Path, help="work in this (new) folder and keep it")
    args = parser.parse_args()

    root = args.keep or Path(tempfile.mkdtemp(prefix="rcm-scale-out-"))
    root.mkdir(parents=True, exist_ok=bool(args.keep is None))
    hospitals = [Hospital(n) for n in range(1, args.hospitals + 1)]
    try:
        metadata = write_metadata(root / "metadata", hospitals)
        source = root / "generated"
        started = time.perf_counter()
        profiles = [hospital.profile for hospital in hospitals]
        generate_sources(source, scale=args.scale, seed=args.seed, hospitals=profiles)
        write_api_replay(source, sample_providers(source, None, profiles))
        print(
            f"generated {args.hospitals} hospitals at scale {args.scale:g} in "
            f"{time.perf_counter() - started:.0f} s; metadata in {metadata}; "
            f"{os.cpu_count()} cores; Dagster instance: PostgreSQL (deploy/dagster.yaml)",
            flush=True,
        )
        expected = {hospital.datasource for hospital in hospitals}
        print(
            f"{'config':<13} {'hospitals':>9} {'scale':>6} {'transactions':>13} {'wall s':>8} "
            f"{'cpu s':>8} {'peak MiB':>9} {'speed-up':>8}",
            flush=True,
        )
        results: list[Figures] = []
        for config in args.configs:
            figures = run_config(config, source, metadata, root, expected)
            results.append(figures)
            baseline = next((r.wall for r in results if r.config == "in_process"), None)
            speed_up = f"{baseline / figures.wall:.2f}" if baseline else "-"
            print(
                f"{config:<13} {args.hospitals:>9} {args.scale:>6g} {figures.rows:>13,} "
                f"{figures.wall:>8.1f} {figures.cpu:>8.1f} {figures.rss_mib:>9.0f} "
                f"{speed_up:>8}",
                flush=True,
            )
        for figures in results:
            if figures.worker_start_cpu:
                print(
                    f"{figures.config}: the workers' start-up ({figures.worker_start_cpu:.1f} s "
                    "CPU, before the run) is not counted"
                )
    finally:
        if args.keep is None:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
