"""POSIX ACLs of the lake and landing store on ADLS Gen2, from metadata/storage_access.csv.

The model, and why it is safe to run again at any time:

- **Planning is pure.** `plan_acls` turns the metadata rows and the roles' Entra ID object ids
  into `AclPlan`s. Each plan is the *complete* ACL of one folder: the base entries
  `user::rwx,group::r-x,other::---`, one `<type>:<object id>:<permissions>` entry per role with
  access (a role with `---` is not listed), and the same again as `default:` entries, so that
  files and folders created later inherit them. A folder inherits each role from its nearest
  listed ancestor; a row overrides that role there (`---` takes it away).
- **Every call is a full set, never a merge.** A policy folder is written with
  `set_access_control_recursive` (mode "set": the folder and everything below it get exactly
  that ACL, whatever they had). Plans are ordered parents before children, so a child's set
  overrides what its parent's recursive set wrote below it. A child whose ACL equals its
  parent's is not planned: the parent's recursive set already wrote it.
- **Traversal.** A role with access below a folder needs execute (`--x`) on every folder above
  it up to the store's root, or it cannot reach it. Those folders get a second, non-recursive
  `set_access_control` with their own full ACL plus `--x` access entries (no `default:` ones,
  so new sub-folders do not inherit them). A non-recursive set replaces the folder's ACL only;
  it leaves everything below alone.
- **Above the store's root.** When a root URI has a path (`abfss://c@a.dfs.core.windows.net/rcm/
  lake`), its parent folders are shared with whatever else lives in the container: there the
  `--x` entries are merged into the existing ACL (read, add, write back), nothing is removed.
- **Folders that do not exist yet are skipped** (and reported); nothing is created. Until a later
  run covers them they get their parent's `default:` entries when they are created.

`update_access_control_recursive` (mode "modify") is not used: it would keep stray entries
someone added by hand, and on the ancestors it would push `--x` onto every file below.

ACLs exist only on storage accounts with a hierarchical namespace (ADLS Gen2); blob-only accounts
and Azurite have none. The caller needs to be the owning user of the folders or hold the
"Storage Blob Data Owner" role (or use the account key).
"""

from __future__ import annotations

import os
import re
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Literal, Protocol

from rcm_assets.errors import RcmError
from rcm_assets.metadata import STORAGE_ACCESS_FILE, STORAGE_ROLES_FILE, Metadata
from rcm_assets.resources.azure_storage import AzureLocation, StorageResource

if TYPE_CHECKING:
    from azure.storage.filedatalake import DataLakeServiceClient

NONE = "---"
BASE_ENTRIES = ("user::rwx", "group::r-x", "other::---")
OBJECT_ID = re.compile(r"^[0-9a-fA-F]{8}(-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}$")


@dataclass(frozen=True)
class AclPlan:
    """The complete ACL one folder gets; `recursive`: the folder and everything below it."""

    store: str  # lake | landing
    path: str  # relative to the store's root; "" is the root
    acl: str
    recursive: bool

    @property
    def label(self) -> str:
        return f"{self.store}:/{self.path}"

    @property
    def scope(self) -> str:
        return "recursive" if self.recursive else "folder only"


@dataclass(frozen=True)
class AclResult:
    store: str
    path: str
    file_system: str
    directory: str
    action: Literal["set", "set recursively", "merged", "unchanged", "missing"]
    directories: int = 0
    files: int = 0


def _permissions(rows: dict[str, str]) -> dict[str, str]:
    return {role: permissions for role, permissions in rows.items() if permissions != NONE}


def _with_execute(permissions: str) -> str:
    return permissions[:2] + "x"


def _ancestors(path: str) -> list[str]:
    """The folders above a path, from the store's root ("") down to its parent."""
    parts = path.split("/") if path else []
    return ["/".join(parts[:depth]) for depth in range(len(parts))]


class _StorePolicy:
    """The rows of one store, and each role's effective permissions on any folder of it."""

    def __init__(self, rows: Mapping[str, Mapping[str, str]]) -> None:
        self.rows = rows  # path → {role: permissions}

    def governed(self, path: str) -> bool:
        """Whether a listed folder is at or above the path (its recursive set reaches it)."""
        return any(p in self.rows for p in [*_ancestors(path), path])

    def effective(self, path: str) -> dict[str, str]:
        """role → permissions at the path; the nearest listed folder wins per role."""
        result: dict[str, str] = {}
        for folder in [*_ancestors(path), path]:
            result.update(self.rows.get(folder, {}))
        return _permissions(result)

    def parent_policy(self, path: str) -> str | None:
        listed = [folder for folder in _ancestors(path) if folder in self.rows]
        return listed[-1] if listed else None


def _policies(metadata: Metadata) -> dict[str, _StorePolicy]:
    by_store: dict[str, dict[str, dict[str, str]]] = defaultdict(lambda: defaultdict(dict))
    for row in metadata.storage_access:
        by_store[row.store][row.path][row.role] = row.permissions
    return {store: _StorePolicy(rows) for store, rows in sorted(by_store.items())}


def effective_permissions(metadata: Metadata, store: str, path: str) -> dict[str, str]:
    """role → permissions on a folder (`""` the store's root); roles without access left out."""
    policy = _policies(metadata).get(store)
    return policy.effective(path.strip("/")) if policy else {}


def _acl(
    roles: Sequence[str],
    entry: Callable[[str, str], str],
    access: Mapping[str, str],
    default: Mapping[str, str] | None,
) -> str:
    """The ACL text: base, named access entries, then (if given) the default entries."""
    entries = [*BASE_ENTRIES, *(entry(r, access[r]) for r in roles if r in access)]
    if default is not None:
        entries += [f"default:{base}" for base in BASE_ENTRIES]
        entries += [f"default:{entry(r, default[r])}" for r in roles if r in default]
    return ",".join(entries)


def plan_acls(metadata: Metadata, principals: Mapping[str, str]) -> list[AclPlan]:
    """Every ACL to set, parents before children, from the metadata and role → object id.

    Ordered by store, then folder tree (a folder before the folders inside it); a folder's
    recursive set comes before its non-recursive (traversal) one. See the module docstring.
    """
    roles = list(metadata.storage_roles)
    needed = {row.role for row in metadata.storage_access if row.permissions != NONE}
    unknown = sorted(role for role in needed if role not in principals)
    if unknown:
        raise RcmError(f"no object id for role(s) {', '.join(unknown)} ({STORAGE_ROLES_FILE})")

    def entry(role: str, permissions: str) -> str:
        spec = metadata.storage_roles[role]
        return f"{spec.principal_type}:{principals[role]}:{permissions}"

    plans: list[AclPlan] = []
    for store, policy in _policies(metadata).items():
        traverse: dict[str, set[str]] = defaultdict(set)
        for path in policy.rows:
            for role in policy.effective(path):
                for folder in _ancestors(path):
                    if "x" not in policy.effective(folder).get(role, NONE):
                        traverse[folder].add(role)
        for path in policy.rows:
            effective = policy.effective(path)
            acl = _acl(roles, entry, effective, effective)
            parent = policy.parent_policy(path)
            inherited = policy.effective(parent) if parent is not None else None
            if inherited is None or _acl(roles, entry, inherited, inherited) != acl:
                plans.append(AclPlan(store, path, acl, recursive=True))
        for path, travellers in traverse.items():
            effective = policy.effective(path)
            access = dict(effective)
            for role in travellers:
                access[role] = _with_execute(effective.get(role, NONE))
            default = effective if policy.governed(path) else None
            plans.append(AclPlan(store, path, _acl(roles, entry, access, default), False))
    return sorted(
        plans,
        key=lambda p: (p.store, tuple(p.path.split("/")) if p.path else (), not p.recursive),
    )


def principals_from_env(
    metadata: Metadata, environ: Mapping[str, str] = os.environ
) -> dict[str, str]:
    """role → Entra ID object id, read from the variable storage_roles.csv names for the role."""
    principals: dict[str, str] = {}
    missing: list[str] = []
    invalid: list[str] = []
    for role, spec in metadata.storage_roles.items():
        value = environ.get(spec.principal_env_var, "").strip()
        if not value:
            missing.append(spec.principal_env_var)
        elif not OBJECT_ID.fullmatch(value):
            invalid.append(f"{spec.principal_env_var}={value!r}")
        else:
            principals[role] = value.lower()
    problems = []
    if missing:
        problems.append(f"{', '.join(missing)} not set")
    if invalid:
        problems.append(f"{', '.join(invalid)} not an object id")
    if problems:
        raise RcmError(
            f"{'; '.join(problems)}: set each to the Entra ID object id (a GUID) of the role's "
            f"{'/'.join(sorted({s.principal_type for s in metadata.storage_roles.values()}))} "
            f"(variables named in {metadata.folder / STORAGE_ROLES_FILE})"
        )
    return principals


@dataclass(frozen=True)
class AdlsLocation:
    """Where a store's root lives: account, file system (container) and the folder in it."""

    uri: str
    account: str
    file_system: str
    base_path: str  # "" for the file system's root

    @classmethod
    def parse(cls, uri: str) -> AdlsLocation | None:
        """The location of an abfss://, abfs:// or az:// root, or None for a local folder."""
        location = AzureLocation.parse(uri)
        if location is None:
            return None
        return cls(uri, location.account, location.container, location.path)

    @property
    def account_url(self) -> str:
        return f"https://{self.account}.dfs.core.windows.net"

    def url(self, path: str, base: bool = True) -> str:
        """abfss://<fs>@<host>/<dir> of a store-relative path (`base=False`: of `path` as is)."""
        directory = (self.directory(path) if base else path).strip("/")
        return f"abfss://{self.file_system}@{self.account}.dfs.core.windows.net/{directory}"

    def contains(self, other: AdlsLocation) -> bool:
        """Whether the other root is this one or a folder below it."""
        same = (self.account_url, self.file_system) == (other.account_url, other.file_system)
        return same and f"/{other.base_path}/".startswith(f"/{self.base_path}/".replace("//", "/"))

    def directory(self, path: str) -> str:
        """The directory name in the file system for a store-relative path; "/" for its root."""
        return _directory(self.base_path, path)


def _directory(base_path: str, path: str) -> str:
    return "/".join(part for part in (base_path.strip("/"), path) if part) or "/"


class DirectoryClient(Protocol):
    def exists(self, **kwargs: Any) -> bool: ...
    def get_access_control(self, **kwargs: Any) -> Mapping[str, Any]: ...
    def set_access_control(self, **kwargs: Any) -> Any: ...
    def set_access_control_recursive(self, acl: str, **kwargs: Any) -> Any: ...


class FileSystemClient(Protocol):
    def get_directory_client(self, directory: Any) -> DirectoryClient: ...


class DataLakeService(Protocol):
    """What apply_acls uses of azure.storage.filedatalake.DataLakeServiceClient."""

    def get_file_system_client(self, file_system: Any) -> FileSystemClient: ...


def _named_access(acl: str) -> list[str]:
    """`<type>:<id>` of the named access entries of an ACL (not defaults, masks or base)."""
    named = []
    for entry in acl.split(","):
        parts = entry.split(":")
        if len(parts) == 3 and parts[0] in ("user", "group") and parts[1]:
            named.append(f"{parts[0]}:{parts[1]}")
    return named


def outside_traversal(
    plans: Sequence[AclPlan], file_systems: Mapping[str, tuple[str, str]]
) -> dict[tuple[str, str], list[str]]:
    """(file system, directory) above a store's root → `<type>:<id>` that need `--x` there.

    Those are the principals named in the access entries of the store root's plans.
    """
    needs: dict[tuple[str, str], list[str]] = {}
    for store, (file_system, base_path) in file_systems.items():
        principals = [
            name
            for plan in plans
            if (plan.store, plan.path) == (store, "")
            for name in _named_access(plan.acl)
        ]
        if not base_path.strip("/") or not principals:
            continue
        for folder in _ancestors(base_path.strip("/")):
            key = (file_system, folder or "/")
            needs[key] = list(dict.fromkeys([*needs.get(key, []), *principals]))
    return dict(sorted(needs.items(), key=lambda item: (item[0][0], _depth(item[0][1]))))


def _depth(directory: str) -> int:
    """0 for the file system's root ("/" or ""), 1 for `a`, 2 for `a/b`."""
    directory = directory.strip("/")
    return directory.count("/") + 1 if directory else 0


def _merge_execute(acl: str, principals: Sequence[str]) -> str:
    """The ACL with `--x` added for each principal (and to the mask, which caps them)."""
    entries = acl.split(",")
    for principal in principals:
        prefix = f"{principal}:"
        index = next((i for i, e in enumerate(entries) if e.startswith(prefix)), None)
        if index is None:
            entries.append(f"{principal}:--x")
        else:
            entries[index] = prefix + _with_execute(entries[index][len(prefix) :])
    return ",".join(
        "mask::" + _with_execute(e[len("mask::") :]) if e.startswith("mask::") else e
        for e in entries
    )


def _check(result: Any, plan: AclPlan, where: str, failures: list[str]) -> tuple[int, int]:
    counters = getattr(result, "counters", None)
    failed = getattr(counters, "failure_count", 0) or 0
    continuation = getattr(result, "continuation", None)
    if failed or continuation:
        examples = f", e.g. {'; '.join(failures[:3])}" if failures else ""
        raise RcmError(
            f"{plan.label} ({where}): the ACL could not be set on {failed} path(s){examples}; "
            "fix the cause and run `rcm lake grant-access` again"
            + (f" (stopped at continuation token {continuation})" if continuation else "")
        )
    return (
        getattr(counters, "directories_successful", 0) or 0,
        getattr(counters, "files_successful", 0) or 0,
    )


def apply_acls(
    service: DataLakeService,
    plans: Sequence[AclPlan],
    file_systems: Mapping[str, tuple[str, str]],
) -> list[AclResult]:
    """Set the planned ACLs through a DataLakeServiceClient, in plan order.

    `file_systems` maps each store to (file system, base path of its root in it). Folders above
    the roots get `--x` merged in last (so no full set can undo it); a folder that does not exist
    is skipped, and so is everything planned below it. A recursive set that fails on any path
    raises RcmError naming the folder (the SDK stops at the first failure; running again sets
    everything afresh).
    """
    from azure.core.exceptions import AzureError

    unplaced = sorted({plan.store for plan in plans} - set(file_systems))
    if unplaced:
        raise RcmError(f"no file system given for store(s) {', '.join(unplaced)}")
    clients: dict[str, FileSystemClient] = {}

    def directory_client(file_system: str, directory: str) -> DirectoryClient:
        if file_system not in clients:
            clients[file_system] = service.get_file_system_client(file_system)
        return clients[file_system].get_directory_client(directory)

    results: list[AclResult] = []
    missing: set[tuple[str, str]] = set()
    for plan in plans:
        file_system, base_path = file_systems[plan.store]
        directory = _directory(base_path, plan.path)
        where = f"file system {file_system}, directory {directory}"
        failures: list[str] = []

        def collect(changes: Any, failures: list[str] = failures) -> None:
            failures.extend(
                f"{f.name}: {_first_line(f.error_message)}" for f in changes.batch_failures or ()
            )

        above = [_directory(base_path, p) for p in [*_ancestors(plan.path), plan.path]]
        if any((file_system, d) in missing for d in above):
            results.append(_result(plan, file_system, directory, "missing"))
            continue
        outcome: Any = None
        try:
            client = directory_client(file_system, directory)
            if directory != "/" and not client.exists():
                missing.add((file_system, directory))
                results.append(_result(plan, file_system, directory, "missing"))
                continue
            if plan.recursive:
                outcome = client.set_access_control_recursive(acl=plan.acl, progress_hook=collect)
            else:
                client.set_access_control(acl=plan.acl)
        except AzureError as error:
            raise RcmError(
                f"{plan.label} ({where}): {_first_line(error)} (ACLs need a storage account "
                "with a hierarchical namespace, and the caller must own the folder or hold "
                "Storage Blob Data Owner)"
            ) from None
        if plan.recursive:
            counts = _check(outcome, plan, where, failures)
            results.append(_result(plan, file_system, directory, "set recursively", *counts))
        else:
            results.append(_result(plan, file_system, directory, "set", 1, 0))
    for (file_system, directory), principals in outside_traversal(plans, file_systems).items():
        where = f"file system {file_system}, directory {directory}"
        try:
            client = directory_client(file_system, directory)
            current = str(client.get_access_control()["acl"])
            merged = _merge_execute(current, principals)
            if merged != current:
                client.set_access_control(acl=merged)
        except AzureError as error:
            raise RcmError(f"{where}: adding --x failed: {_first_line(error)}") from None
        action = "merged" if merged != current else "unchanged"
        results.append(AclResult("-", "", file_system, directory, action))
    return results


def _result(
    plan: AclPlan,
    file_system: str,
    directory: str,
    action: Literal["set", "set recursively", "missing"],
    directories: int = 0,
    files: int = 0,
) -> AclResult:
    return AclResult(plan.store, plan.path, file_system, directory, action, directories, files)


def _file_systems(locations: Mapping[str, AdlsLocation]) -> dict[str, tuple[str, str]]:
    return {store: (loc.file_system, loc.base_path) for store, loc in locations.items()}


def _first_line(error: object) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def datalake_service_for(uri: str) -> DataLakeServiceClient:
    """A DataLakeServiceClient for the account of an Azure root URI.

    Built by the shared StorageResource, so the credentials are the lake's: the account key
    (AZURE_STORAGE_ACCOUNT_KEY), a SAS, a client secret, else DefaultAzureCredential.
    """
    if AdlsLocation.parse(uri) is None:
        raise RcmError(f"{uri!r} is not an abfss:// URI; ACLs exist only on ADLS Gen2")
    return StorageResource(root=uri).datalake_service()


def adls_locations(roots: Mapping[str, str], stores: Iterable[str]) -> dict[str, AdlsLocation]:
    """store → location of its root URI; RcmError naming every store whose root is local."""
    locations: dict[str, AdlsLocation] = {}
    local: list[str] = []
    for store in sorted(set(stores)):
        location = AdlsLocation.parse(roots[store])
        if location is None:
            local.append(f"{store} root {roots[store]!r}")
        else:
            locations[store] = location
    if local:
        raise RcmError(
            f"storage ACLs apply only to ADLS Gen2 (abfss:// roots with a hierarchical "
            f"namespace); the {' and the '.join(local)} "
            f"{'is a local folder' if len(local) == 1 else 'are local folders'}: nothing to grant "
            "there (set RCM_LAKE_ROOT and RCM_LANDING_ROOT to abfss:// URIs)"
        )
    for store, outer in locations.items():
        for other, inner in locations.items():
            if store != other and outer.contains(inner):
                raise RcmError(
                    f"the {other} root {inner.uri!r} is inside the {store} root {outer.uri!r}; "
                    "give each store its own folder (or file system)"
                )
    return locations


def _by_account(
    plans: Sequence[AclPlan], locations: Mapping[str, AdlsLocation]
) -> list[tuple[AdlsLocation, list[AclPlan], dict[str, tuple[str, str]]]]:
    """Per storage account: a location in it, its stores' plans, their (file system, base)."""
    accounts: dict[str, list[str]] = defaultdict(list)
    for store, location in sorted(locations.items()):
        accounts[location.account_url].append(store)
    return [
        (
            locations[stores[0]],
            [plan for plan in plans if plan.store in stores],
            _file_systems({store: locations[store] for store in stores}),
        )
        for stores in accounts.values()
    ]


def grant_access(
    plans: Sequence[AclPlan],
    locations: Mapping[str, AdlsLocation],
    service_for: Callable[[str], DataLakeService] | None = None,
) -> list[AclResult]:
    """apply_acls per storage account (the lake and the landing store may live in two).

    `service_for(uri)` builds the client of the account of a root URI; datalake_service_for
    unless given.
    """
    service_for = service_for or datalake_service_for
    results: list[AclResult] = []
    for location, account_plans, file_systems in _by_account(plans, locations):
        results += apply_acls(service_for(location.uri), account_plans, file_systems)
    return results


def describe_plan(plans: Sequence[AclPlan], locations: Mapping[str, AdlsLocation]) -> str:
    """The plan as text: what is set where, with the ACLs in full (what --dry-run prints)."""
    lines = []
    for plan in plans:
        location = locations[plan.store]
        lines.append(f"{plan.label}  ->  {location.url(plan.path)}  ({plan.scope})")
        lines.append(f"  {plan.acl}")
    for location, account_plans, file_systems in _by_account(plans, locations):
        for (file_system, directory), principals in outside_traversal(
            account_plans, file_systems
        ).items():
            url = replace(location, file_system=file_system).url(directory, base=False)
            lines.append(f"above a store's root  ->  {url}  (merged into its ACL, nothing removed)")
            lines.append(f"  add --x for {', '.join(principals)}")
    return "\n".join(lines)


def plan_summary(plans: Sequence[AclPlan], locations: Mapping[str, AdlsLocation]) -> str:
    """One paragraph for the confirmation question of `rcm lake grant-access`."""
    recursive = [plan.label for plan in plans if plan.recursive]
    named = ", ".join(recursive[:8]) + (f" and {len(recursive) - 8} more" if recursive[8:] else "")
    where = ", ".join(
        f"{store} ({location.account_url}, file system {location.file_system}"
        f"{', under ' + location.base_path if location.base_path else ''})"
        for store, location in sorted(locations.items())
    )
    return (
        f"grant-access replaces the ACLs of {len(recursive)} folder(s) and everything below "
        f"them ({named}) and of {len(plans) - len(recursive)} folder(s) on their "
        f"own (traversal) in {where}, from {STORAGE_ACCESS_FILE}: entries added by hand there "
        "are removed. Run it with --dry-run to see every ACL."
    )
