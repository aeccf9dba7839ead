"""deploy/: the Kubernetes manifests, the k8s_job_executor run config and the two instance files,
checked against the real schemas (the kubernetes client's API models, dagster-k8s's config
schemas, Dagster's instance schema), and the parity of the two production executors: a Celery
worker (deploy/celery-workers.yaml) is one k8s_job_executor step pod (deploy/k8s-executor-job.yaml)
that stays up, with the same size, the same conventions, and the same pools.

No cluster is needed: kubeconform is not installable here, so the models stand in for the API
server's schema validation. Each check returns a list of problems, so that the negative tests
below can show that a broken manifest is reported.
"""

import copy
import json
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import kubernetes.client
import pytest
import yaml
from dagster._config import process_config
from dagster._core.errors import DagsterInvalidConfigError
from dagster._core.instance.config import dagster_instance_config
from dagster_k8s import K8sRunLauncher, k8s_job_executor
from dagster_k8s.job import DAGSTER_PG_PASSWORD_SECRET_KEY
from kubernetes.utils import parse_quantity

from rcm_assets import cli
from rcm_assets.settings import REPO_ROOT

DEPLOY = REPO_ROOT / "deploy"
WORKERS = "celery-workers.yaml"
PG_ENVIRONMENT = {
    "DAGSTER_PG_USERNAME": "rcm",
    "DAGSTER_PG_PASSWORD": "not-a-real-password",
    "DAGSTER_PG_HOST": "127.0.0.1",
    "DAGSTER_PG_PORT": "5432",
    "DAGSTER_PG_DB": "dagster",
}
# An env variable whose name says it holds a credential must come from a Secret.
SECRET_NAME = re.compile(r"PASSWORD|SECRET|TOKEN|KEY|BROKER|_URI$")
Manifest = dict[str, Any]


# --- Loading -------------------------------------------------------------------------------


def load(name: str) -> Any:
    """A fresh copy of the single YAML document in deploy/<name> (tests may mutate it)."""
    return yaml.safe_load((DEPLOY / name).read_text())


def manifests() -> Iterator[tuple[str, Manifest]]:
    """Every Kubernetes object in deploy/*.yaml: the documents with `apiVersion` and `kind`."""
    for path in sorted(DEPLOY.glob("*.yaml")):
        for index, document in enumerate(yaml.safe_load_all(path.read_text())):
            if isinstance(document, dict) and "apiVersion" in document and "kind" in document:
                yield f"{path.name}#{index}", document


def worker_deployment() -> Manifest:
    (document,) = yaml.safe_load_all((DEPLOY / WORKERS).read_text())
    return document


def executor_run_config() -> dict[str, Any]:
    return load("k8s-executor-job.yaml")


# --- Kubernetes objects --------------------------------------------------------------------


class _Response:
    """What `ApiClient.deserialize` reads from an API response: the JSON body in `data`."""

    def __init__(self, body: object) -> None:
        self.data = json.dumps(body)


def model_name(api_version: str, kind: str) -> str:
    """The kubernetes client's model for an object: apps/v1 Deployment -> V1Deployment."""
    version = api_version.rsplit("/", 1)[-1]
    return version[:1].upper() + version[1:] + kind


def _differences(original: object, parsed: object, path: str) -> list[str]:
    if isinstance(original, dict) and isinstance(parsed, dict):
        problems = [f"{path}.{key}: unknown field" for key in original if key not in parsed]
        problems += [f"{path}.{key}: not in the manifest" for key in parsed if key not in original]
        for key in original.keys() & parsed.keys():
            problems += _differences(original[key], parsed[key], f"{path}.{key}")
        return problems
    if isinstance(original, list) and isinstance(parsed, list) and len(original) == len(parsed):
        return [
            problem
            for index, (left, right) in enumerate(zip(original, parsed, strict=True))
            for problem in _differences(left, right, f"{path}[{index}]")
        ]
    if type(original) is not type(parsed) or original != parsed:
        return [f"{path}: {original!r} is read as {parsed!r} (wrong type?)"]
    return []


def model_problems(document: Manifest) -> list[str]:
    """Why the API server would reject `document`'s shape, as far as the client's models know.

    Deserializing into the model raises on a missing required field or a value of the wrong
    kind, and silently drops a field the model does not have; serializing the model again and
    comparing with the manifest finds those. Strict: a number or boolean where the API takes a
    string (label values, env values, quantities) is a problem too, so quote them.
    """
    name = model_name(str(document.get("apiVersion")), str(document.get("kind")))
    if not hasattr(kubernetes.client, name):
        return [f"no Kubernetes model {name} for {document.get('apiVersion')} {document['kind']}"]
    return model_problems_of(document, name, name)


def resources_problems(resources: dict[str, Any], where: str) -> list[str]:
    """Requests and limits are valid quantities, and no request exceeds its limit."""
    problems = model_problems_of(resources, "V1ResourceRequirements", where)
    quantities: dict[str, dict[str, Any]] = {"requests": {}, "limits": {}}
    for part in quantities:
        for resource, value in (resources.get(part) or {}).items():
            try:
                quantities[part][resource] = parse_quantity(value)
            except ValueError as error:
                problems.append(f"{where}.{part}.{resource}: {error}")
    for resource, limit in quantities["limits"].items():
        request = quantities["requests"].get(resource)
        if request is not None and request > limit:
            problems.append(f"{where}: {resource} request {request} above its limit {limit}")
    return problems


def model_problems_of(value: object, model: str, where: str) -> list[str]:
    """`model_problems` for a part of an object, e.g. a container's resources."""
    with kubernetes.client.ApiClient() as client:
        try:
            round_trip = client.sanitize_for_serialization(
                client.deserialize(_Response(value), model)
            )
        except (ValueError, TypeError, AttributeError, KeyError) as error:
            return [f"{where}: {error}"]
    return _differences(value, round_trip, where)


def workload_problems(document: Manifest) -> list[str]:
    """What the models do not check but the API server (or the pod at start) would reject:
    a selector that does not select the template, a mount of a missing volume, a $(VAR) in a
    command that no env entry defines, invalid quantities."""
    template = (document.get("spec") or {}).get("template")
    if template is None:
        return []
    problems = []
    selector = document["spec"].get("selector", {}).get("matchLabels", {})
    labels = template.get("metadata", {}).get("labels", {})
    if not selector or selector.items() - labels.items():
        problems.append(f"selector {selector} does not select the template labels {labels}")
    pod = template["spec"]
    volumes = {volume["name"] for volume in pod.get("volumes", [])}
    for container in pod["containers"]:
        name = container["name"]
        defined = {entry["name"] for entry in container.get("env", [])}
        for word in [*container.get("command", []), *container.get("args", [])]:
            for variable in re.findall(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", word):
                if variable not in defined:
                    problems.append(f"{name}: $({variable}) is not in env, it stays literal")
        for mount in container.get("volumeMounts", []):
            if mount["name"] not in volumes:
                problems.append(f"{name}: mounts {mount['name']}, which is not a volume")
        problems += resources_problems(container.get("resources", {}), f"{name}.resources")
    return problems


# --- The k8s_job_executor run config and the instances -------------------------------------


@dg.op
def _step() -> None:
    pass


@dg.job(executor_def=k8s_job_executor)
def _on_k8s() -> None:
    _step()


def executor_problems(run_config: dict[str, Any]) -> list[str]:
    """The run config against dagster_k8s.k8s_job_executor's schema, and its step resources
    against the Kubernetes model."""
    try:
        dg.validate_run_config(_on_k8s, run_config)
    except DagsterInvalidConfigError as error:
        return [str(error)]
    resources = run_config["execution"]["config"].get("resources") or {}
    return resources_problems(resources, "execution.config.resources")


def launcher_problems(instance: dict[str, Any]) -> list[str]:
    """The run launcher's config against its class's schema (dagster_instance_config checks
    only module/class/config; the class's own schema is applied when the launcher is built,
    which needs a cluster)."""
    launcher = instance["run_launcher"]
    if (launcher["module"], launcher["class"]) != ("dagster_k8s", "K8sRunLauncher"):
        return [f"run launcher {launcher['module']}.{launcher['class']}, not K8sRunLauncher"]
    result = process_config(K8sRunLauncher.config_type(), launcher["config"])
    return [error.message for error in result.errors or []]


def _home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str) -> Path:
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(DEPLOY / name, home / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    for variable, value in PG_ENVIRONMENT.items():
        monkeypatch.setenv(variable, value)
    return home


# --- Parity between the Celery workers and k8s_job_executor --------------------------------


def _env(container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {entry["name"]: entry for entry in container.get("env", [])}


def _secret_ref(entry: dict[str, Any] | None) -> dict[str, Any] | None:
    if entry is None or "value" in entry:
        return None
    return (entry.get("valueFrom") or {}).get("secretKeyRef")


def parity_problems(
    workers: Manifest,
    run_config: dict[str, Any],
    instance_k8s: dict[str, Any],
    instance: dict[str, Any],
) -> list[str]:
    """Where the Celery workers and k8s_job_executor's step pods would differ: size, count,
    conventions, pools, or how the worker starts and finds its broker."""
    executor = run_config["execution"]["config"]
    launcher = instance_k8s["run_launcher"]["config"]
    pod = workers["spec"]["template"]["spec"]
    pod_labels = workers["spec"]["template"]["metadata"].get("labels", {})
    (container,) = pod["containers"]
    env = _env(container)
    problems = []

    def differs(what: str, worker: object, reference: object) -> None:
        if worker != reference:
            problems.append(f"{what}: workers {worker!r}, k8s {reference!r}")

    differs("resources", container.get("resources"), executor.get("resources"))
    differs(
        "replicas vs max_concurrent",
        workers["spec"].get("replicas"),
        executor.get("max_concurrent"),
    )
    differs("namespace", workers["metadata"].get("namespace"), executor.get("job_namespace"))
    differs(
        "namespace (launcher)", workers["metadata"].get("namespace"), launcher.get("job_namespace")
    )
    differs("service account", pod.get("serviceAccountName"), executor.get("service_account_name"))
    env_from = container.get("envFrom", [])
    config_maps = [
        source["configMapRef"]["name"] for source in env_from if "configMapRef" in source
    ]
    secrets = [source["secretRef"]["name"] for source in env_from if "secretRef" in source]
    differs("env config maps", config_maps, executor.get("env_config_maps"))
    differs("env secrets", secrets, executor.get("env_secrets"))
    missing_labels = dict(executor.get("labels", {}).items() - pod_labels.items())
    if missing_labels:
        problems.append(f"pod labels lack {missing_labels} (workload identity)")
    differs("concurrency", instance_k8s.get("concurrency"), instance.get("concurrency"))
    if not (instance.get("concurrency") or {}).get("pools"):
        problems.append("deploy/dagster.yaml has no concurrency.pools: gold would have no pools")

    command = [*container.get("command", []), *container.get("args", [])]
    if command[:2] != ["rcm", "worker"]:
        problems.append(f"the container runs {command}, not `rcm worker`")
    else:
        try:
            arguments = cli.parser().parse_args(command[1:])
        except SystemExit:
            problems.append(f"`rcm` rejects {command[1:]}")
        else:
            if arguments.handler is not cli._worker:
                problems.append(f"{command} does not start a worker")
    executor_env = env.get("RCM_EXECUTOR", {})
    if executor_env.get("value") != "celery":
        problems.append(f"RCM_EXECUTOR is {executor_env.get('value')!r}, not 'celery'")
    broker = _secret_ref(env.get("RCM_CELERY_BROKER"))
    if broker is None:
        problems.append("RCM_CELERY_BROKER does not come from a secretKeyRef")
    elif broker.get("name") not in (launcher.get("env_secrets") or []):
        problems.append(f"run pods do not get Secret {broker.get('name')}, so cannot send steps")
    differs("DAGSTER_HOME", env.get("DAGSTER_HOME", {}).get("value"), launcher.get("dagster_home"))
    differs(
        "DAGSTER_PG_PASSWORD",
        _secret_ref(env.get("DAGSTER_PG_PASSWORD")),
        {"name": launcher.get("postgres_password_secret"), "key": DAGSTER_PG_PASSWORD_SECRET_KEY},
    )
    for name, entry in env.items():
        if SECRET_NAME.search(name) and _secret_ref(entry) is None:
            problems.append(f"{name} is a literal: credentials come from a Secret")
    return problems


def _parity(workers: Manifest | None = None, **changes: dict[str, Any]) -> list[str]:
    return parity_problems(
        workers if workers is not None else worker_deployment(),
        changes.get("run_config", executor_run_config()),
        changes.get("instance_k8s", load("dagster-k8s.yaml")),
        load("dagster.yaml"),
    )


# --- Tests ---------------------------------------------------------------------------------


MANIFESTS = dict(manifests())


def test_deploy_holds_the_worker_deployment() -> None:
    kinds = {(name.split("#")[0], document["kind"]) for name, document in MANIFESTS.items()}
    assert (WORKERS, "Deployment") in kinds
    # The run config and the instances are not Kubernetes objects: checked below instead.
    assert not {name for name, _ in kinds} & {"k8s-executor-job.yaml", "dagster-k8s.yaml"}


@pytest.mark.parametrize("name", sorted(MANIFESTS))
def test_manifest_matches_the_kubernetes_api(name: str) -> None:
    document = MANIFESTS[name]
    assert model_problems(copy.deepcopy(document)) == []
    assert workload_problems(document) == []


def test_k8s_executor_run_config_matches_dagster_k8s() -> None:
    run_config = executor_run_config()
    assert executor_problems(run_config) == []
    # Resolved by the executor named `k8s`, with every field read (none dropped or renamed).
    (resolved,) = dg.validate_run_config(_on_k8s, run_config)["execution"].values()
    assert resolved.items() >= run_config["execution"]["config"].items()
    assert resolved["max_concurrent"] == 6


@pytest.mark.parametrize("name", ["dagster.yaml", "dagster-k8s.yaml"])
def test_instance_files_are_valid_instances(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config, _ = dagster_instance_config(str(_home(tmp_path, monkeypatch, name)))
    assert config["concurrency"]["pools"] == {"default_limit": 1, "granularity": "op"}
    if name == "dagster-k8s.yaml":
        assert launcher_problems(load(name)) == []


def test_celery_workers_match_the_k8s_step_pods() -> None:
    assert _parity() == []
    # Spelled out, as the issue asks for it.
    (container,) = worker_deployment()["spec"]["template"]["spec"]["containers"]
    executor = executor_run_config()["execution"]["config"]
    assert container["resources"] == executor["resources"]
    assert worker_deployment()["spec"]["replicas"] == executor["max_concurrent"]
    assert load("dagster-k8s.yaml")["concurrency"] == load("dagster.yaml")["concurrency"]


# --- The checks fail when they should ------------------------------------------------------


def _container(document: Manifest) -> dict[str, Any]:
    return document["spec"]["template"]["spec"]["containers"][0]


def _misspell_resources(document: Manifest) -> None:
    _container(document)["resource"] = _container(document).pop("resources")


def _misspell_replicas(document: Manifest) -> None:
    document["spec"]["replica"] = document["spec"].pop("replicas")


def _boolean_label(document: Manifest) -> None:
    document["spec"]["template"]["metadata"]["labels"]["azure.workload.identity/use"] = True


def _nameless_container(document: Manifest) -> None:
    del _container(document)["name"]


def _string_replicas(document: Manifest) -> None:
    document["spec"]["replicas"] = "six"


def _unknown_kind(document: Manifest) -> None:
    document["kind"] = "Deploymnet"


@pytest.mark.parametrize(
    ("mutate", "reported"),
    [
        (_misspell_resources, "containers[0].resource: unknown field"),
        (_misspell_replicas, "spec.replica: unknown field"),
        (_boolean_label, "True is read as 'True'"),
        (_nameless_container, "`name`, must not be `None`"),
        (_string_replicas, "six"),
        (_unknown_kind, "no Kubernetes model V1Deploymnet"),
    ],
)
def test_model_check_rejects_a_broken_manifest(mutate: Any, reported: str) -> None:
    document = worker_deployment()
    mutate(document)
    problems = model_problems(document)
    assert any(reported in problem for problem in problems), problems


def test_workload_check_rejects_what_the_models_accept() -> None:
    document = worker_deployment()
    document["spec"]["selector"]["matchLabels"]["app.kubernetes.io/name"] = "other"
    container = _container(document)
    container["command"] = ["rcm", "worker", "--name", "rcm-$(POD)@%h"]
    container["volumeMounts"][0]["name"] = "dagster-hom"
    container["resources"] = {
        "requests": {"cpu": "2", "memory": "32Gi"},
        "limits": {"memory": "8GB"},
    }
    problems = workload_problems(document)
    assert model_problems(document) == []
    for reported in ["does not select", "$(POD)", "dagster-hom", "limits.memory"]:
        assert any(reported in problem for problem in problems), (reported, problems)
    container["resources"]["limits"]["memory"] = "16Gi"
    assert any("above its limit" in problem for problem in workload_problems(document))


def test_run_config_check_rejects_a_broken_executor_config() -> None:
    run_config = executor_run_config()
    run_config["execution"]["config"]["max_concurent"] = 6
    assert any("max_concurent" in problem for problem in executor_problems(run_config))
    run_config = executor_run_config()
    resources = run_config["execution"]["config"]["resources"]
    resources["limit"] = resources.pop("limits")
    assert any("limit" in problem for problem in executor_problems(run_config))
    run_config = executor_run_config()
    run_config["execution"]["config"]["resources"]["requests"]["cpu"] = "two"
    assert any("requests.cpu" in problem for problem in executor_problems(run_config))


def test_instance_checks_reject_a_broken_instance(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    instance = load("dagster-k8s.yaml")
    instance["run_launcher"]["config"]["job_namespac"] = "rcm"
    assert any("job_namespac" in problem for problem in launcher_problems(instance))
    del instance["run_launcher"]["config"]["instance_config_map"]
    assert any("instance_config_map" in problem for problem in launcher_problems(instance))

    home = _home(tmp_path, monkeypatch, "dagster-k8s.yaml")
    text = (home / "dagster.yaml").read_text()
    (home / "dagster.yaml").write_text(text.replace("default_limit:", "default_limt:"))
    with pytest.raises(DagsterInvalidConfigError, match="default_limt"):
        dagster_instance_config(str(home))


def test_parity_check_rejects_drift() -> None:
    workers = worker_deployment()
    _container(workers)["resources"]["requests"]["cpu"] = "4"
    workers["spec"]["replicas"] = 3
    workers["spec"]["template"]["metadata"]["labels"].pop("azure.workload.identity/use")
    problems = _parity(workers)
    for reported in ["resources:", "replicas vs max_concurrent", "workload identity"]:
        assert any(reported in problem for problem in problems), (reported, problems)

    workers = worker_deployment()
    env = _env(_container(workers))
    env["RCM_CELERY_BROKER"].pop("valueFrom")
    env["RCM_CELERY_BROKER"]["value"] = "amqp://rcm:literal@rabbitmq:5672//"
    env["RCM_EXECUTOR"]["value"] = "multiprocess"
    _container(workers)["command"] = ["celery", "-A", "rcm_assets.celery_app", "worker"]
    problems = _parity(workers)
    for reported in ["secretKeyRef", "is a literal", "RCM_EXECUTOR", "not `rcm worker`"]:
        assert any(reported in problem for problem in problems), (reported, problems)

    workers = worker_deployment()
    _container(workers)["command"] = ["rcm", "worker", "--nmae", "rcm-$(POD_NAME)@%h"]
    assert any("rejects" in problem for problem in _parity(workers))

    instance_k8s = load("dagster-k8s.yaml")
    instance_k8s["concurrency"]["pools"]["default_limit"] = 2
    assert any(problem.startswith("concurrency") for problem in _parity(instance_k8s=instance_k8s))
    run_config = executor_run_config()
    run_config["execution"]["config"]["env_secrets"] = ["rcm-other"]
    assert any(problem.startswith("env secrets") for problem in _parity(run_config=run_config))
