"""A real `dagster dev` (webserver + daemon + code server) for end-to-end tests.

Usage::

    with DagsterDevServer(env={"RCM_HOME": str(home), "DAGSTER_HOME": str(dagster_home)}) as server:
        server.graphql("query { assetNodes { assetKey { path } } }")
        run_id = server.launch_assets([["bronze", "patients"]], partition="hos-a")
        assert server.wait_for_run(run_id) == "SUCCESS"

or, in a test, the `dagster_server_factory` fixture, which stops every server it started.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Self, TypeVar

import httpx
import pytest

from rcm_assets.settings import REPO_ROOT

LOCATION_NAME = "rcm_assets"
REPOSITORY_NAME = "__repository__"
ASSET_JOB = "__ASSET_JOB"
FINISHED_RUN_STATUSES = frozenset({"SUCCESS", "FAILURE", "CANCELED"})

T = TypeVar("T")

# `dagster dev` maps SIGTERM to whatever handles SIGINT (dagster._utils.interrupts). A parent
# without job control (a background shell, some CI runners) starts it with SIGINT ignored, and
# Python then keeps it ignored, so SIGTERM would be ignored too. Restoring SIGINT's default
# before exec makes SIGTERM stop the whole tree in about 2 s.
_SIGINT_DEFAULT_EXEC = (
    "import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); "
    "os.execv(sys.argv[1], sys.argv[1:])"
)

_WORKSPACE_QUERY = """
query {
  workspaceOrError {
    __typename
    ... on Workspace {
      locationEntries {
        name
        loadStatus
        locationOrLoadError {
          __typename
          ... on PythonError { message stack errorChain { error { message stack } } }
        }
      }
    }
    ... on PythonError { message }
  }
}
"""

_LAUNCH_RUN = """
mutation Launch($executionParams: ExecutionParams!) {
  launchRun(executionParams: $executionParams) {
    __typename
    ... on LaunchRunSuccess { run { runId } }
    ... on PythonError { message stack }
    ... on InvalidSubsetError { message }
    ... on RunConfigValidationInvalid { errors { message } }
    ... on Error { message }
  }
}
"""

_RUN_STATUS = """
query Run($runId: ID!) {
  runOrError(runId: $runId) {
    __typename
    ... on Run { status }
    ... on Error { message }
  }
}
"""

_DAEMON_HEALTH = """
query {
  instance {
    daemonHealth { allDaemonStatuses { daemonType required healthy } }
  }
}
"""


class DagsterServerError(RuntimeError):
    """The server did not start, answered with GraphQL errors, or would not stop."""


def free_port() -> int:
    """A port nobody listens on now; the OS may hand it out again, so use it at once."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class DagsterDevServer:
    """`dagster dev -w workspace.yaml` on a free port, with its own process group and log file.

    `env` overrides `os.environ` for the server; its `DAGSTER_HOME` (or the current one) must
    be an existing folder, which receives `dagster.yaml` (telemetry off, unless one exists) and
    `dagster-dev.log` (the server's stdout and stderr). The daemon runs too, so sensors and
    schedules tick as they would in production.
    """

    def __init__(
        self,
        env: Mapping[str, str] | None = None,
        *,
        workspace: Path = REPO_ROOT / "workspace.yaml",
        cwd: Path = REPO_ROOT,
        startup_timeout: float = 120.0,
        stop_timeout: float = 15.0,
    ) -> None:
        self.env = {**os.environ, **(env or {})}
        if not self.env.get("DAGSTER_HOME"):
            raise DagsterServerError("DAGSTER_HOME must be set (in env or os.environ)")
        self.dagster_home = Path(self.env["DAGSTER_HOME"]).resolve()
        if not self.dagster_home.is_dir():
            raise DagsterServerError(f"DAGSTER_HOME {self.dagster_home} is not a folder")
        self.env["DAGSTER_HOME"] = str(self.dagster_home)
        self.workspace = workspace
        self.cwd = cwd
        self.startup_timeout = startup_timeout
        self.stop_timeout = stop_timeout
        self.log_path = self.dagster_home / "dagster-dev.log"
        self.port: int | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._client = httpx.Client(timeout=30.0)

    # -- lifecycle -------------------------------------------------------------------------

    @property
    def url(self) -> str:
        if self.port is None:
            raise DagsterServerError("the server was not started")
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        if self._process is None:
            raise DagsterServerError("the server was not started")
        return self._process.pid

    def start(self) -> Self:
        """Start the server and return once the code location has loaded."""
        if self._process is not None:
            raise DagsterServerError("the server was already started")
        config = self.dagster_home / "dagster.yaml"
        if not config.exists():
            config.write_text("telemetry:\n  enabled: false\n")
        self.port = free_port()
        if self._client.is_closed:  # a restart after stop()
            self._client = httpx.Client(timeout=30.0)
        dagster = Path(sys.executable).parent / "dagster"
        command = [
            sys.executable, "-c", _SIGINT_DEFAULT_EXEC, str(dagster), "dev",
            "-w", str(self.workspace), "-h", "127.0.0.1", "-p", str(self.port),
        ]  # fmt: skip
        with self.log_path.open("ab") as log:
            # A new session makes the server the leader of its own process group, so stop()
            # can reach the webserver, daemon, code server and run workers in one killpg.
            self._process = subprocess.Popen(
                command,
                cwd=self.cwd,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            self._wait_until_loaded()
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_until_loaded(self) -> None:
        deadline = time.monotonic() + self.startup_timeout
        last_state = "no answer from /server_info"
        while time.monotonic() < deadline:
            assert self._process is not None
            if self._process.poll() is not None:
                raise DagsterServerError(
                    f"dagster dev exited with {self._process.returncode}\n{self.log_tail()}"
                )
            try:
                self._client.get(f"{self.url}/server_info", timeout=5.0).raise_for_status()
                workspace = self.graphql(_WORKSPACE_QUERY)["workspaceOrError"]
            except (httpx.HTTPError, DagsterServerError) as error:
                last_state = f"{type(error).__name__}: {error}"
                time.sleep(0.5)
                continue
            entries = workspace.get("locationEntries") or []
            if not entries:
                last_state = f"no code location yet: {workspace}"
            for entry in entries:
                location = entry.get("locationOrLoadError") or {}
                if location.get("__typename") == "PythonError":
                    raise DagsterServerError(
                        f"code location {entry['name']} failed to load:\n"
                        + _format_python_error(location)
                    )
                last_state = f"location {entry['name']}: {entry['loadStatus']}"
            if entries and all(
                entry["loadStatus"] == "LOADED"
                and (entry.get("locationOrLoadError") or {}).get("__typename")
                == "RepositoryLocation"
                for entry in entries
            ):
                return
            time.sleep(0.5)
        raise DagsterServerError(
            f"dagster dev not ready after {self.startup_timeout:.0f} s ({last_state})\n"
            f"{self.log_tail()}"
        )

    def stop(self) -> None:
        """SIGTERM the server, SIGKILL whatever of its process group is left; idempotent."""
        process = self._process
        if process is None:
            return
        pgid = process.pid  # the session leader's pid is its group id
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=self.stop_timeout)
        # Children can outlive the leader (a run worker mid-step), so the group is always swept.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGKILL)
        process.wait(timeout=10)
        deadline = time.monotonic() + 10
        while True:
            try:
                os.killpg(pgid, 0)
            except ProcessLookupError:
                break
            if time.monotonic() > deadline:
                raise DagsterServerError(
                    f"process group {pgid} still has members after SIGKILL: {_group_members(pgid)}"
                )
            time.sleep(0.1)
        self._process = None
        self._client.close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def log_tail(self, lines: int = 60) -> str:
        """The end of the server's log, for failure messages."""
        if not self.log_path.exists():
            return "(no dagster dev log)"
        text = self.log_path.read_text(errors="replace").splitlines()[-lines:]
        return f"--- last {len(text)} lines of {self.log_path} ---\n" + "\n".join(text)

    # -- GraphQL ---------------------------------------------------------------------------

    def graphql(self, query: str, variables: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """The `data` of a GraphQL answer; raises DagsterServerError when it has `errors`."""
        response = self._client.post(
            f"{self.url}/graphql", json={"query": query, "variables": dict(variables or {})}
        )
        try:
            body = response.json()
        except ValueError as error:
            raise DagsterServerError(
                f"HTTP {response.status_code} from /graphql: {response.text[:500]}"
            ) from error
        if body.get("errors"):
            raise DagsterServerError(f"GraphQL errors: {body['errors']}")
        response.raise_for_status()
        return body["data"]

    def launch_assets(
        self,
        asset_keys: Sequence[Sequence[str]],
        *,
        partition: str | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> str:
        """Launch a run of the implicit asset job for these keys; returns the run id."""
        all_tags = dict(tags or {})
        if partition is not None:
            all_tags["dagster/partition"] = partition
        params = {
            "selector": {
                "repositoryLocationName": LOCATION_NAME,
                "repositoryName": REPOSITORY_NAME,
                "pipelineName": ASSET_JOB,
                "assetSelection": [{"path": list(key)} for key in asset_keys],
            },
            "runConfigData": {},
            "executionMetadata": {
                "tags": [{"key": key, "value": value} for key, value in all_tags.items()]
            },
        }
        result = self.graphql(_LAUNCH_RUN, {"executionParams": params})["launchRun"]
        if result["__typename"] != "LaunchRunSuccess":
            raise DagsterServerError(f"launchRun: {result}")
        return str(result["run"]["runId"])

    def run_status(self, run_id: str) -> str:
        result = self.graphql(_RUN_STATUS, {"runId": run_id})["runOrError"]
        if result["__typename"] != "Run":
            raise DagsterServerError(f"runOrError({run_id}): {result}")
        return str(result["status"])

    def wait_for_run(self, run_id: str, timeout: float = 120.0) -> str:
        """Poll until the run finishes; returns SUCCESS, FAILURE or CANCELED."""

        def finished() -> str | None:
            status = self.run_status(run_id)
            return status if status in FINISHED_RUN_STATUSES else None

        return self.wait_until(finished, timeout, f"run {run_id} to finish")

    def wait_for_daemons(self, timeout: float = 60.0) -> None:
        """Wait until every required daemon (sensor, scheduler, run queue...) is healthy.

        Sensor ticks only start once the daemon has its first heartbeat, a few seconds after
        the webserver answers.
        """

        def healthy() -> bool:
            data = self.graphql(_DAEMON_HEALTH)
            statuses = data["instance"]["daemonHealth"]["allDaemonStatuses"]
            return all(status["healthy"] for status in statuses if status["required"])

        self.wait_until(healthy, timeout, "the daemons to be healthy")

    def wait_until(self, check: Callable[[], T], timeout: float, what: str) -> T:
        """Poll `check` until it returns something truthy; fail with the server log if not."""
        deadline = time.monotonic() + timeout
        while True:
            value = check()
            if value:
                return value
            if time.monotonic() > deadline:
                raise DagsterServerError(
                    f"timed out after {timeout:.0f} s waiting for {what}\n{self.log_tail()}"
                )
            if self._process is not None and self._process.poll() is not None:
                raise DagsterServerError(
                    f"dagster dev exited while waiting for {what}\n{self.log_tail()}"
                )
            time.sleep(0.5)


def _format_python_error(error: Mapping[str, Any]) -> str:
    """A GraphQL PythonError as Python prints it: the root cause is usually in the chain."""
    parts = [f"{error.get('message', '')}{''.join(error.get('stack') or [])}"]
    for link in error.get("errorChain") or []:
        cause = link["error"]
        parts.append(f"caused by: {cause.get('message', '')}{''.join(cause.get('stack') or [])}")
    return "\n".join(parts)


def _group_members(pgid: int) -> list[str]:
    """`pid (command) state` of each process still in the group, read from /proc."""
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError):
            text = stat.read_text()
            fields = text[text.rindex(")") + 2 :].split()
            if int(fields[2]) == pgid:
                members.append(f"{text[: text.rindex(')') + 1]} {fields[0]}")
    return members


@pytest.fixture
def dagster_server_factory() -> Iterator[Callable[..., DagsterDevServer]]:
    """`start(env=None, **kwargs)` -> a started DagsterDevServer; all are stopped at teardown.

    Call it after the test's environment is ready (e.g. after the `project` fixture set
    RCM_HOME / DAGSTER_HOME), since the server copies `os.environ` when it starts.
    """
    servers: list[DagsterDevServer] = []

    def start(env: Mapping[str, str] | None = None, **kwargs: Any) -> DagsterDevServer:
        server = DagsterDevServer(env, **kwargs)
        servers.append(server)
        return server.start()

    yield start
    errors = []
    for server in servers:
        try:
            server.stop()
        except DagsterServerError as error:
            errors.append(error)
    if errors:
        raise DagsterServerError(f"could not stop every server: {errors}")
