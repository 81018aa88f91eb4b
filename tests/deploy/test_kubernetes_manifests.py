"""deploy/kubernetes/: valid for Kubernetes 1.31, and every pod locked down the same way."""

from __future__ import annotations

import copy
import shlex
from pathlib import Path
from typing import Any

import click
import kubernetes_validate
import pytest
import yaml

from service.fronts.cli import main as command_line
from service.settings import ENVIRONMENT_PREFIX, Settings

KUBERNETES_DIRECTORY = Path(__file__).resolve().parents[2] / "deploy" / "kubernetes"
KUBERNETES_VERSION = "1.31.0"
WORKLOAD_KINDS = ("Deployment", "Job", "StatefulSet", "DaemonSet", "CronJob")

Manifest = dict[str, Any]


def manifests() -> list[tuple[str, Manifest]]:
    found = []
    for path in sorted(KUBERNETES_DIRECTORY.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        found += [(path.name, document) for document in yaml.safe_load_all(path.read_text())]
    return found


def workloads() -> list[tuple[str, Manifest]]:
    return [(name, m) for name, m in manifests() if m["kind"] in WORKLOAD_KINDS]


def named(kind: str, name: str) -> Manifest:
    (found,) = [m for _, m in manifests() if m["kind"] == kind and m["metadata"]["name"] == name]
    return found


def pod_spec(workload: Manifest) -> dict[str, Any]:
    template = workload["spec"]["template"]
    spec: dict[str, Any] = template["spec"]
    return spec


def environment(container: dict[str, Any]) -> dict[str, Any]:
    return {variable["name"]: variable for variable in container.get("env", [])}


def security_problems(workload: Manifest) -> list[str]:
    """What a pod of this workload lacks of the baseline every pod here must have."""
    spec = pod_spec(workload)
    pod = spec.get("securityContext", {})
    problems = []
    if pod.get("runAsNonRoot") is not True:
        problems.append("pod runAsNonRoot is not true")
    if not isinstance(pod.get("runAsUser"), int) or pod["runAsUser"] == 0:
        problems.append("pod runAsUser is not a non-zero number")
    if spec.get("automountServiceAccountToken") is not False:
        problems.append("a service account token is mounted")
    for container in spec.get("initContainers", []) + spec["containers"]:
        context = container.get("securityContext", {})
        name = container["name"]
        seccomp = context.get("seccompProfile", pod.get("seccompProfile", {}))
        if seccomp.get("type") != "RuntimeDefault":
            problems.append(f"{name}: seccompProfile is not RuntimeDefault")
        if context.get("allowPrivilegeEscalation") is not False:
            problems.append(f"{name}: allowPrivilegeEscalation is not false")
        if context.get("readOnlyRootFilesystem") is not True:
            problems.append(f"{name}: readOnlyRootFilesystem is not true")
        if context.get("capabilities", {}).get("drop") != ["ALL"]:
            problems.append(f"{name}: capabilities do not drop ALL")
        if context.get("privileged"):
            problems.append(f"{name}: privileged")
        resources = container.get("resources", {})
        for bound in ("requests", "limits"):
            if set(resources.get(bound, {})) != {"cpu", "memory"}:
                problems.append(f"{name}: {bound} do not set cpu and memory")
        image = container["image"]
        tag = image.rsplit(":", 1)[-1] if ":" in image.rsplit("/", 1)[-1] else ""
        if tag in ("", "latest") and "@sha256:" not in image:
            problems.append(f"{name}: image {image} is not pinned to a tag or digest")
    return problems


@pytest.mark.parametrize(
    ("file_name", "manifest"),
    manifests(),
    ids=lambda value: value if isinstance(value, str) else value["metadata"]["name"],
)
def test_every_manifest_is_valid_for_kubernetes_1_31_with_no_unknown_field(
    file_name: str, manifest: Manifest
) -> None:
    kubernetes_validate.validate(manifest, KUBERNETES_VERSION, strict=True)
    assert "namespace" not in manifest["metadata"], f"{file_name} names a namespace"


def test_an_invalid_manifest_is_refused_by_the_validator() -> None:
    server = copy.deepcopy(named("Deployment", "invoice-ledger"))
    server["spec"]["replicas"] = "two"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(server, KUBERNETES_VERSION, strict=True)


@pytest.mark.parametrize(
    "workload", [m for _, m in workloads()], ids=lambda m: str(m["metadata"]["name"])
)
def test_every_pod_runs_non_root_read_only_without_capabilities_under_seccomp(
    workload: Manifest,
) -> None:
    assert security_problems(workload) == []


@pytest.mark.parametrize(
    "weaken",
    [
        lambda spec: (
            spec["securityContext"].pop("seccompProfile")
            and spec["containers"][0]["securityContext"].pop("seccompProfile")
        ),
        lambda spec: spec["containers"][0]["securityContext"].pop("readOnlyRootFilesystem"),
        lambda spec: spec["containers"][0]["resources"].pop("limits"),
        lambda spec: spec["containers"][0].update(image="invoice-ledger:latest"),
        lambda spec: spec["securityContext"].update(runAsNonRoot=False),
    ],
    ids=["no seccomp", "writable root", "no limits", "latest tag", "root allowed"],
)
def test_a_pod_that_drops_a_protection_is_caught(weaken: Any) -> None:
    server = copy.deepcopy(named("Deployment", "invoice-ledger"))
    weaken(pod_spec(server))
    assert security_problems(server) != []


def test_the_server_runs_two_replicas_with_probes_and_a_disruption_budget() -> None:
    server = named("Deployment", "invoice-ledger")
    assert server["spec"]["replicas"] >= 2
    (container,) = pod_spec(server)["containers"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["startupProbe"]["httpGet"]["path"] == "/healthz"
    budget = named("PodDisruptionBudget", "invoice-ledger")
    assert budget["spec"]["minAvailable"] >= 1
    assert budget["spec"]["selector"]["matchLabels"] == server["spec"]["selector"]["matchLabels"]
    service = named("Service", "invoice-ledger")
    assert service["spec"]["selector"] == server["spec"]["selector"]["matchLabels"]


def test_the_grace_period_covers_the_pre_stop_drain_and_the_shutdown_grace() -> None:
    server = named("Deployment", "invoice-ledger")
    spec = pod_spec(server)
    (container,) = spec["containers"]
    sleep_command = container["lifecycle"]["preStop"]["exec"]["command"]
    assert sleep_command[0] == "sleep"
    pre_stop_seconds = int(sleep_command[1])
    shutdown_grace_seconds = int(environment(container)["LEDGER_SHUTDOWN_GRACE_SECONDS"]["value"])
    # serve stops its workers, drains requests and closes the pool within the grace
    # (service/http_server.py); the kill comes that long after the preStop hook ends.
    needed_seconds = pre_stop_seconds + shutdown_grace_seconds
    assert spec["terminationGracePeriodSeconds"] > needed_seconds
    for name in ("invoice-ledger-projector", "invoice-ledger-reconciler"):
        worker_spec = pod_spec(named("Deployment", name))
        (worker,) = worker_spec["containers"]
        grace = int(environment(worker)["LEDGER_SHUTDOWN_GRACE_SECONDS"]["value"])
        assert worker_spec["terminationGracePeriodSeconds"] > grace


def test_only_the_migration_job_connects_as_the_schema_owner() -> None:
    for _, workload in workloads():
        (container,) = pod_spec(workload)["containers"]
        secret = environment(container)["LEDGER_DATABASE_URL"]["valueFrom"]["secretKeyRef"]
        is_migration = container["command"][1:] == ["migrate"]
        assert (secret["name"] == "invoice-ledger-owner") == is_migration, workload["metadata"]


def test_the_workers_run_once_each_and_the_server_does_not_project() -> None:
    for name in ("invoice-ledger-projector", "invoice-ledger-reconciler"):
        assert named("Deployment", name)["spec"]["replicas"] == 1
    (server,) = pod_spec(named("Deployment", "invoice-ledger"))["containers"]
    assert environment(server)["LEDGER_PROJECTOR_ENABLED"]["value"] == "false"
    assert not any(name.startswith("LEDGER_CYBERSOURCE_") for name in environment(server))


def test_every_container_runs_a_command_and_options_the_cli_has() -> None:
    for _, workload in workloads():
        for container in pod_spec(workload)["containers"]:
            program, subcommand, *arguments = container["command"]
            assert program == "invoice-ledger"
            command = command_line.commands.get(subcommand)
            assert command is not None, f"invoice-ledger has no {subcommand} command"
            options = {
                option
                for parameter in command.params
                if isinstance(parameter, click.Option)
                for option in parameter.opts
            }
            unknown = [
                argument
                for argument in arguments
                if argument.startswith("--") and argument not in options
            ]
            assert not unknown, f"{shlex.join(container['command'])}: unknown {unknown}"


def test_the_kustomization_applies_every_manifest_and_pins_the_image_tag() -> None:
    kustomization = yaml.safe_load((KUBERNETES_DIRECTORY / "kustomization.yaml").read_text())
    files = {p.name for p in KUBERNETES_DIRECTORY.glob("*.yaml")} - {"kustomization.yaml"}
    assert set(kustomization["resources"]) == files
    (image,) = kustomization["images"]
    tags = {
        container["image"].rsplit(":", 1)[1]
        for _, workload in workloads()
        for container in pod_spec(workload)["containers"]
    }
    assert tags == {image["newTag"]}


def selected_components(policy: Manifest) -> set[str | None]:
    """The app.kubernetes.io/component values a NetworkPolicy's pod selector admits."""
    selector = policy["spec"]["podSelector"]
    component = "app.kubernetes.io/component"
    if component in selector.get("matchLabels", {}):
        return {selector["matchLabels"][component]}
    for expression in selector.get("matchExpressions", []):
        if expression["key"] == component and expression["operator"] == "In":
            return set(expression["values"])
    return {None}  # every component


def ingress_rules_by_port(policies: list[Manifest]) -> dict[tuple[str | None, int], list[Any]]:
    """Each (component, port) opened, with the ``from`` of each rule that opens it ([] when a
    rule admits every source)."""
    opened: dict[tuple[str | None, int], list[Any]] = {}
    for policy in policies:
        for rule in policy["spec"].get("ingress", []):
            for port in rule.get("ports", []):
                for component in selected_components(policy):
                    opened.setdefault((component, port["port"]), []).append(rule.get("from", []))
    return opened


def test_only_the_server_ports_and_worker_metrics_are_open_and_only_the_reconciler_goes_out() -> (
    None
):
    policies = [m for _, m in manifests() if m["kind"] == "NetworkPolicy"]
    opened = ingress_rules_by_port(policies)
    assert set(opened) == {
        ("server", 8000),
        ("server", 8001),
        ("projector", 8000),
        ("reconciler", 8000),
    }
    # The webhook port from the ingress controller's namespace alone; the internal port from
    # pods of the cluster, never from an address outside it (no ipBlock, no open rule).
    ((webhook_from,),) = opened[("server", 8000)]
    assert webhook_from["namespaceSelector"]["matchLabels"]
    ((internal_from,),) = opened[("server", 8001)]
    assert set(internal_from) == {"namespaceSelector"}
    (deny_all,) = [p for p in policies if not p["spec"].keys() & {"ingress", "egress"}]
    assert set(deny_all["spec"]["policyTypes"]) == {"Ingress", "Egress"}
    assert deny_all["spec"]["podSelector"]["matchLabels"] == {
        "app.kubernetes.io/name": "invoice-ledger"
    }
    https_out = [
        component
        for p in policies
        for component in selected_components(p)
        for rule in p["spec"].get("egress", [])
        if any(port["port"] == 443 for port in rule.get("ports", []))
    ]
    assert https_out == ["reconciler"]


def container_ports(container: dict[str, Any]) -> dict[str, int]:
    return {port["name"]: port["containerPort"] for port in container["ports"]}


def test_the_server_serves_internal_routes_on_a_port_of_their_own_which_the_probes_ask() -> None:
    server = named("Deployment", "invoice-ledger")
    (container,) = pod_spec(server)["containers"]
    ports = container_ports(container)
    command = container["command"]
    assert command[command.index("--port") + 1] == str(ports["webhook"])
    assert command[command.index("--internal-port") + 1] == str(ports["internal"])
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"]["port"] == "internal", probe
    annotations = server["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/port"] == str(ports["internal"])


def test_the_webhook_service_exposes_the_webhook_port_alone() -> None:
    webhook = named("Service", "invoice-ledger")
    assert [port["targetPort"] for port in webhook["spec"]["ports"]] == ["webhook"]
    internal = named("Service", "invoice-ledger-internal")
    assert [port["targetPort"] for port in internal["spec"]["ports"]] == ["internal"]
    assert internal["spec"].get("type", "ClusterIP") == "ClusterIP"


def test_the_ingress_routes_only_the_webhook_path_over_tls_to_the_webhook_port() -> None:
    ingresses = [m for _, m in manifests() if m["kind"] == "Ingress"]
    (ingress,) = ingresses
    spec = ingress["spec"]
    assert "defaultBackend" not in spec
    hosts = {rule["host"] for rule in spec["rules"]}
    assert hosts <= {host for tls in spec["tls"] for host in tls["hosts"]}
    assert all(tls["secretName"] for tls in spec["tls"])
    paths = [path for rule in spec["rules"] for path in rule["http"]["paths"]]
    assert [(path["path"], path["pathType"]) for path in paths] == [
        ("/webhooks/cybersource", "Exact")
    ]
    (backend,) = [path["backend"]["service"] for path in paths]
    assert backend == {"name": "invoice-ledger", "port": {"name": "webhook"}}


def test_every_setting_the_manifests_give_is_one_the_service_reads() -> None:
    known = {f"{ENVIRONMENT_PREFIX}{name}".upper() for name in Settings.model_fields}
    for _, workload in workloads():
        for container in pod_spec(workload)["containers"]:
            given = set(environment(container))
            unknown = given - known
            assert not unknown, f"{workload['metadata']['name']} sets unknown {sorted(unknown)}"
