"""Storage ACLs from metadata/storage_access.csv, applied through a recording DataLake client."""

import fnmatch
import re
from collections.abc import Callable
from typing import Any

import pytest
from azure.core.exceptions import HttpResponseError
from azure.storage.filedatalake import (
    AccessControlChangeCounters,
    AccessControlChangeFailure,
    AccessControlChangeResult,
    AccessControlChanges,
)

from rcm_assets import cli, storage_access
from rcm_assets.errors import MetadataError, RcmError
from rcm_assets.metadata import load_metadata
from rcm_assets.resources.azure_storage import CREDENTIAL_ENV
from rcm_assets.settings import REPO_ROOT
from rcm_assets.storage_access import (
    AdlsLocation,
    adls_locations,
    apply_acls,
    effective_permissions,
    plan_acls,
    principals_from_env,
)
from rcm_assets_tests.conftest import Project

ENG = "11111111-1111-1111-1111-111111111111"
ANA = "22222222-2222-2222-2222-222222222222"
AUD = "33333333-3333-3333-3333-333333333333"
IDS = {"RCM_AAD_DATA_ENGINEERS": ENG, "RCM_AAD_RCM_ANALYSTS": ANA, "RCM_AAD_AUDITORS": AUD}
LAKE_ROOT = "abfss://lake@acct.dfs.core.windows.net/"
LANDING_ROOT = "abfss://landing@acct.dfs.core.windows.net/"

BASE = "user::rwx,group::r-x,other::---"
DEFAULT_BASE = "default:user::rwx,default:group::r-x,default:other::---"
# The lake root: no policy of its own, only the way through for every role.
TRAVERSE_ALL = f"{BASE},group:{ENG}:--x,group:{ANA}:--x,group:{AUD}:--x"
ENGINEERS = f"{BASE},group:{ENG}:rwx,{DEFAULT_BASE},default:group:{ENG}:rwx"
AUDITED = (
    f"{BASE},group:{ENG}:rwx,group:{AUD}:r-x,"
    f"{DEFAULT_BASE},default:group:{ENG}:rwx,default:group:{AUD}:r-x"
)
# gold/ and audit/ themselves: analysts may pass through (no default: not inherited).
AUDITED_ANALYSTS_PASS = (
    f"{BASE},group:{ENG}:rwx,group:{ANA}:--x,group:{AUD}:r-x,"
    f"{DEFAULT_BASE},default:group:{ENG}:rwx,default:group:{AUD}:r-x"
)
ANALYSTS_READ = (
    f"{BASE},group:{ENG}:rwx,group:{ANA}:r-x,group:{AUD}:r-x,"
    f"{DEFAULT_BASE},default:group:{ENG}:rwx,default:group:{ANA}:r-x,default:group:{AUD}:r-x"
)
ANALYST_GOLD_TABLES = [  # in plan order (alphabetical below gold/)
    "dim_cpt_code",
    "dim_department",
    "dim_icd_code",
    "dim_npi",
    "dim_patient_masked",
    "dim_provider",
    "kpi_ar_aging",
    "kpi_denials",
    "kpi_map_keys",
    "kpi_monthly",
    "kpi_payer_mix",
    "kpi_payer_scorecard",
    "kpi_provider_department",
]


class FakeService:
    """Records every call a DataLakeServiceClient would get; answers like the SDK does."""

    def __init__(
        self,
        missing: tuple[str, ...] = (),
        failing: dict[str, int] | None = None,
        acls: dict[str, str] | None = None,
    ) -> None:
        self.calls: list[tuple[str, ...]] = []
        self.missing = set(missing)  # "<file system>:<directory>"
        self.failing = failing or {}  # "<file system>:<directory>" → failure count
        self.acls = acls or {}  # current ACLs get_access_control returns

    def get_file_system_client(self, file_system: str) -> "FakeFileSystem":
        self.calls.append(("get_file_system_client", file_system))
        return FakeFileSystem(self, file_system)


class FakeFileSystem:
    def __init__(self, service: FakeService, name: str) -> None:
        self.service, self.name = service, name

    def get_directory_client(self, directory: str) -> "FakeDirectory":
        self.service.calls.append(("get_directory_client", self.name, directory))
        return FakeDirectory(self.service, self.name, directory)


class FakeDirectory:
    def __init__(self, service: FakeService, file_system: str, directory: str) -> None:
        self.service, self.file_system, self.directory = service, file_system, directory
        self.key = f"{file_system}:{directory}"

    def _record(self, name: str, *arguments: str) -> None:
        self.service.calls.append((name, self.file_system, self.directory, *arguments))

    def exists(self) -> bool:
        self._record("exists")
        return self.key not in self.service.missing

    def get_access_control(self) -> dict[str, Any]:
        self._record("get_access_control")
        return {"acl": self.service.acls.get(self.key, BASE), "owner": "$superuser"}

    def set_access_control(self, acl: str) -> dict[str, Any]:
        self._record("set_access_control", acl)
        return {}

    def set_access_control_recursive(
        self, acl: str, progress_hook: Callable[[AccessControlChanges], None] | None = None
    ) -> AccessControlChangeResult:
        self._record("set_access_control_recursive", acl)
        failed = self.service.failing.get(self.key, 0)
        counters = AccessControlChangeCounters(
            directories_successful=3, files_successful=10, failure_count=failed
        )
        if failed and progress_hook is not None:
            failure = AccessControlChangeFailure(
                name=f"{self.directory}/part-0.parquet",
                is_directory=False,
                error_message="This request is not authorized to perform this operation.",
            )
            progress_hook(
                AccessControlChanges(
                    batch_counters=counters,
                    aggregate_counters=counters,
                    batch_failures=[failure],
                    continuation="token-1",
                )
            )
        return AccessControlChangeResult(counters, "token-1" if failed else None)


def directory_calls(file_system: str, directory: str, *calls: tuple[str, ...]) -> list[tuple]:
    return [
        ("get_directory_client", file_system, directory),
        *((name, file_system, directory, *rest) for name, *rest in calls),
    ]


def expected_calls() -> list[tuple]:
    """Every call for the shipped metadata, roots at the top of containers `lake`, `landing`."""

    def recursive(directory: str, acl: str) -> list[tuple]:
        return directory_calls(
            "lake", directory, ("exists",), ("set_access_control_recursive", acl)
        )

    def folder_only(directory: str, acl: str) -> list[tuple]:
        return directory_calls("lake", directory, ("exists",), ("set_access_control", acl))

    return [
        ("get_file_system_client", "lake"),
        *directory_calls("lake", "/", ("set_access_control", TRAVERSE_ALL)),
        *recursive("archive", ENGINEERS),
        *recursive("audit", AUDITED),
        *folder_only("audit", AUDITED_ANALYSTS_PASS),
        *recursive("audit/dq_results", ANALYSTS_READ),
        *recursive("bronze", ENGINEERS),
        *recursive("gold", AUDITED),
        *folder_only("gold", AUDITED_ANALYSTS_PASS),
        # gold/dim_patient and gold/fact_transactions: the same ACL as gold/, set by it.
        *(c for t in ANALYST_GOLD_TABLES for c in recursive(f"gold/{t}", ANALYSTS_READ)),
        *recursive("silver", AUDITED),
        ("get_file_system_client", "landing"),
        *directory_calls("landing", "/", ("set_access_control_recursive", ENGINEERS)),
    ]


@pytest.fixture
def azure_env(project: Project, monkeypatch: pytest.MonkeyPatch) -> Project:
    for name, value in IDS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("RCM_LAKE_ROOT", LAKE_ROOT)
    monkeypatch.setenv("RCM_LANDING_ROOT", LANDING_ROOT)
    return project


def grant(*argv: str) -> int:
    return cli.main(["lake", "grant-access", *argv])


def test_grant_access_sets_exactly_the_planned_acls(
    azure_env: Project, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    service = FakeService()
    accounts: list[str] = []

    def service_for(uri: str) -> FakeService:
        accounts.append(uri)
        return service

    monkeypatch.setattr(storage_access, "datalake_service_for", service_for)

    assert grant("--yes") == 0

    assert accounts == [LAKE_ROOT]  # one client: both stores live in account acct
    assert service.calls == expected_calls()
    output = capsys.readouterr().out
    assert "set recursively" in output and "23 ACL(s) set or checked" in output


def test_dry_run_prints_the_plan_and_calls_nothing(
    azure_env: Project, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def no_service(uri: str) -> None:
        raise AssertionError("dry run built a client")

    monkeypatch.setattr(storage_access, "datalake_service_for", no_service)

    assert grant("--dry-run") == 0

    lines = capsys.readouterr().out.splitlines()
    masked = lines.index(
        "lake:/gold/dim_patient_masked  ->  "
        "abfss://lake@acct.dfs.core.windows.net/gold/dim_patient_masked  (recursive)"
    )
    assert lines[masked + 1] == f"  {ANALYSTS_READ}"
    root = lines.index("lake:/  ->  abfss://lake@acct.dfs.core.windows.net/  (folder only)")
    assert lines[root + 1] == f"  {TRAVERSE_ALL}"
    assert lines[-1] == "23 ACL(s) would be set (dry run, nothing changed)"
    assert not any("dim_patient  ->" in line or "fact_transactions" in line for line in lines)


def test_without_yes_and_without_a_terminal_it_refuses(
    azure_env: Project, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    service = FakeService()
    monkeypatch.setattr(storage_access, "datalake_service_for", lambda uri: service)

    assert grant() == 2

    assert "pass --yes" in capsys.readouterr().err
    assert service.calls == []


def test_local_roots_are_refused(
    project: Project, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name, value in IDS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("RCM_LAKE_ROOT", raising=False)
    monkeypatch.setenv("RCM_LANDING_ROOT", LANDING_ROOT)

    assert grant("--dry-run") == 2

    error = capsys.readouterr().err
    assert "ACLs apply only to ADLS Gen2" in error
    assert f"lake root '{project.home / 'lake'}'" in error and "landing root" not in error


def test_a_missing_env_var_is_named(azure_env: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RCM_AAD_AUDITORS")
    monkeypatch.setenv("RCM_AAD_RCM_ANALYSTS", "analysts")

    with pytest.raises(RcmError) as caught:
        principals_from_env(load_metadata())

    message = str(caught.value)
    assert "RCM_AAD_AUDITORS not set" in message
    assert "RCM_AAD_RCM_ANALYSTS='analysts' not an object id" in message
    assert "RCM_AAD_DATA_ENGINEERS" not in message
    assert "storage_roles.csv" in message


def test_a_failed_recursive_set_names_the_folder_and_stops(azure_env: Project) -> None:
    metadata = load_metadata()
    plans = plan_acls(metadata, principals_from_env(metadata))
    service = FakeService(failing={"lake:gold/dim_patient_masked": 2})

    with pytest.raises(RcmError) as caught:
        apply_acls(service, plans, {"lake": ("lake", ""), "landing": ("landing", "")})

    message = str(caught.value)
    assert message.startswith(
        "lake:/gold/dim_patient_masked (file system lake, directory gold/dim_patient_masked): "
        "the ACL could not be set on 2 path(s), e.g. gold/dim_patient_masked/part-0.parquet: "
        "This request is not authorized"
    )
    assert "token-1" in message
    assert service.calls[-1][:3] == (
        "set_access_control_recursive",
        "lake",
        "gold/dim_patient_masked",
    )


def test_an_azure_error_names_the_folder(azure_env: Project) -> None:
    metadata = load_metadata()
    plans = plan_acls(metadata, principals_from_env(metadata))

    class NoNamespace(FakeService):
        def get_file_system_client(self, file_system: str) -> Any:
            raise HttpResponseError(message="This operation is not permitted on a non-HNS account")

    with pytest.raises(RcmError, match=r"^lake:/ \(file system lake, directory /\): This oper"):
        apply_acls(NoNamespace(), plans, {"lake": ("lake", ""), "landing": ("landing", "")})


def test_roots_below_the_container_merge_traversal_above_and_skip_missing(
    azure_env: Project,
) -> None:
    metadata = load_metadata()
    plans = plan_acls(metadata, principals_from_env(metadata))
    existing = f"user::rwx,group::r-x,mask::r--,other::---,group:{ENG}:r--"
    service = FakeService(missing=("rcm:data/lake/archive",), acls={"rcm:/": existing})

    results = apply_acls(
        service, plans, {"lake": ("rcm", "data/lake"), "landing": ("rcm", "data/landing")}
    )

    calls = service.calls
    assert calls[:3] == [
        ("get_file_system_client", "rcm"),
        ("get_directory_client", "rcm", "data/lake"),
        ("exists", "rcm", "data/lake"),
    ]
    assert ("set_access_control", "rcm", "data/lake", TRAVERSE_ALL) in calls
    assert not any(c[0].startswith("set") and c[2] == "data/lake/archive" for c in calls)
    assert [(r.directory, r.action) for r in results if r.action != "set recursively"] == [
        ("data/lake", "set"),
        ("data/lake/archive", "missing"),
        ("data/lake/audit", "set"),
        ("data/lake/gold", "set"),
        ("/", "merged"),
        ("data", "merged"),
    ]
    # Above the roots the entries are merged in, nothing removed; the mask lets --x through.
    merged = [c for c in calls if c[0] == "set_access_control" and c[2] in ("/", "data")]
    assert merged == [
        (
            "set_access_control",
            "rcm",
            "/",
            f"user::rwx,group::r-x,mask::r-x,other::---,group:{ENG}:r-x,"
            f"group:{ANA}:--x,group:{AUD}:--x",
        ),
        (
            "set_access_control",
            "rcm",
            "data",
            f"{BASE},group:{ENG}:--x,group:{ANA}:--x,group:{AUD}:--x",
        ),
    ]


def test_overlapping_and_malformed_roots_are_refused() -> None:
    with pytest.raises(RcmError, match=r"landing root .* is inside the lake root"):
        adls_locations(
            {
                "lake": "abfss://rcm@a.dfs.core.windows.net/",
                "landing": "abfss://rcm@a.dfs.core.windows.net/in",
            },
            ["lake", "landing"],
        )
    with pytest.raises(RcmError, match="names no container or account"):
        AdlsLocation.parse("abfss://acct.dfs.core.windows.net/lake")
    location = AdlsLocation.parse("abfss://lake@acct.dfs.core.windows.net/rcm/lake/")
    assert location == AdlsLocation(
        "abfss://lake@acct.dfs.core.windows.net/rcm/lake/", "acct", "lake", "rcm/lake"
    )
    assert location.account_url == "https://acct.dfs.core.windows.net"
    assert location.url("gold") == "abfss://lake@acct.dfs.core.windows.net/rcm/lake/gold"
    assert AdlsLocation.parse("/var/rcm/lake") is None


@pytest.mark.parametrize(
    ("name", "line", "pattern"),
    [
        (
            "storage_access.csv",
            "lake,gold/kpi_monthly,auditors,rwz,",
            r"line 28, column permissions: String should match pattern.*'rwz'",
        ),
        ("storage_access.csv", "lake,gold,interns,r-x,", r"line 28, column role: unknown role"),
        (
            "storage_access.csv",
            "lake,gold/../bronze,auditors,r-x,",
            r"line 28, column path: .*`\.\.`",
        ),
        (
            "storage_access.csv",
            "lake,gold/dim_patinet,auditors,r-x,",
            r"line 28, column path: unknown gold table 'dim_patinet'",
        ),
        (
            "storage_access.csv",
            "lake,staging,auditors,r-x,",
            r"line 28, column path: 'staging' is not a lake folder",
        ),
        (
            "storage_access.csv",
            "sftp,.,auditors,r-x,",
            r"line 28, column store: .*'lake' or 'landing'",
        ),
        (
            "storage_access.csv",
            "lake,silver,auditors,---,",
            r"line 28, column role: duplicate of line 6",
        ),
        (
            "storage_roles.csv",
            "interns,rcm_aad_interns,group,",
            r"line 5, column principal_env_var",
        ),
    ],
    ids=[
        "bad-permissions",
        "unknown-role",
        "climbs-out",
        "unknown-gold-table",
        "unknown-lake-folder",
        "unknown-store",
        "duplicate",
        "bad-env-var-name",
    ],
)
def test_a_metadata_defect_names_file_line_and_column(
    project: Project, name: str, line: str, pattern: str
) -> None:
    project.append_metadata(name, line)

    with pytest.raises(MetadataError) as caught:
        load_metadata()

    message = str(caught.value)
    assert message.startswith(f"{project.metadata / name}, "), message
    assert re.search(pattern, message), message


def _doc_table() -> list[list[str]]:
    text = (REPO_ROOT / "docs" / "governance.md").read_text()
    section = text[text.index("## How the lake maps onto storage ACLs") :]
    rows = [line for line in section.splitlines() if line.startswith("| ")]
    header = rows.index(next(r for r in rows if r.startswith("| path |")))
    table = []
    for row in rows[header + 1 :]:
        if row.startswith("| file |"):
            break
        table.append([cell.strip() for cell in row.strip("|").split("|")])
    return table


def test_the_governance_table_matches_the_metadata() -> None:
    metadata = load_metadata(REPO_ROOT / "metadata")
    roles = list(metadata.storage_roles)
    covered = set()
    for path_cell, *permissions in _doc_table():
        assert len(permissions) == len(roles), path_cell
        expected = {r: p for r, p in zip(roles, permissions, strict=True) if p != "none"}
        for token in re.findall(r"`([^`]+)`", path_cell):
            store, path = ("landing", "") if token == "landing/" else ("lake", token.strip("/"))
            if "*" in path:
                layer, pattern = path.split("/")
                paths = [f"{layer}/{t}" for t in fnmatch.filter(metadata.gold_tables, pattern)]
                assert paths, token
            else:
                paths = [path]
            for one in paths:
                assert effective_permissions(metadata, store, one) == expected, (store, one)
                covered.add((store, one))
    listed = {(row.store, row.path) for row in metadata.storage_access}
    assert listed <= covered, f"rows the governance table does not show: {listed - covered}"


def test_every_gold_table_s_access_is_decided() -> None:
    """Analysts read a gold table only by a row of its own; the PHI ones have none."""
    metadata = load_metadata(REPO_ROOT / "metadata")
    readable = {
        table
        for table in metadata.gold_tables
        if "rcm_analysts" in effective_permissions(metadata, "lake", f"gold/{table}")
    }
    assert readable == set(ANALYST_GOLD_TABLES)
    assert {"dim_patient", "fact_transactions", "kpi_denied_claims"}.isdisjoint(readable)
    assert effective_permissions(metadata, "lake", "gold/some_new_table") == {
        "data_engineers": "rwx",
        "auditors": "r-x",
    }


def test_plans_go_parents_first(azure_env: Project) -> None:
    metadata = load_metadata()
    plans = plan_acls(metadata, principals_from_env(metadata))

    for index, plan in enumerate(plans):
        for later in plans[index + 1 :]:
            above = later.path == "" or plan.path.startswith(later.path + "/")
            assert not (later.store == plan.store and above), f"{later.label} after {plan.label}"
    assert [(p.label, p.recursive) for p in plans if p.path == ""] == [
        ("lake:/", False),
        ("landing:/", True),
    ]


def test_the_client_uses_the_account_key_when_set_else_entra_id(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from azure.identity import DefaultAzureCredential

    for name in CREDENTIAL_ENV.values():
        monkeypatch.delenv(name, raising=False)
    service = storage_access.datalake_service_for(LAKE_ROOT + "rcm/lake")
    assert service.url == "https://acct.dfs.core.windows.net/"
    assert isinstance(service.credential, DefaultAzureCredential)

    monkeypatch.setenv("AZURE_STORAGE_ACCOUNT_KEY", "a2V5")
    assert storage_access.datalake_service_for(LAKE_ROOT).credential.account_name == "acct"

    with pytest.raises(RcmError, match="ACLs exist only on ADLS Gen2"):
        storage_access.datalake_service_for("/var/rcm/lake")
