"""archft's Kubeflow orchestrator: ZenML's, with what it gets wrong against kfp 2.17 fixed.

ZenML 0.98's `KubeflowOrchestrator` compiles a pipeline to KFP IR YAML and uploads it. With
kfp 2.17 it has three bugs (tests/test_kubeflow.py keeps one of them reproduced, so that a ZenML
upgrade that fixes it is noticed and this subclass can shrink):

A. every pipeline with step dependencies fails: `.after()` gets the upstream *components*,
   kfp wants their *tasks*;
B. `ResourceSettings(memory=...)` fails: the limit goes in as a float, kfp wants "512Mi";
C. GPUs, node selectors and tolerations never reach the YAML: its settings validator rebuilds
   `pod_settings` from a legacy field, only `node_selectors["accelerator"]` is read, and a step
   with `gpu_count=1` compiles to a CPU limit only.

It also compiles every task with caching off, uploads runs with caching forced off, and writes
the ZenML store settings (API token included) into each task's environment in clear text.

This orchestrator builds the KFP pipeline itself:
- tasks depend on their upstream tasks; CPU and memory become requests and limits
  ("4GB" -> "4000Mi"); `gpu_count: N` becomes the accelerator `nvidia.com/gpu` x N (the KFP
  driver uses the accelerator type as the resource name of the limit);
- `node_selectors`, `tolerations` and `pvc_mounts` of the step's orchestrator settings go into
  the platform spec through `kfp.kubernetes` (the second YAML document);
- KFP caching is on. Every task's arguments hold the snapshot id, so KFP reuses a task only
  inside the same snapshot (a retried or resubmitted run); whether a step is computed again in
  a new run is still decided by ZenML's own step cache, as on the local stack;
- environment variables whose name says they hold a secret (token, key, password, secret,
  credential) are never written into the YAML: each is read from the Kubernetes secret
  `store_secret` (key = variable name) instead. What a step needs to reach the ZenML server is
  `ZENML_STORE_URL` (plain) and `ZENML_STORE_API_KEY` (a service account's key, in that secret;
  `k8s/stack.sh` creates both). The per-run API token ZenML would otherwise inject is dropped.
- `package_path`: write the compiled YAML there and upload nothing (`run.py --compile-only`).

Register it as a custom flavor (`k8s/stack.sh` does):
    zenml orchestrator flavor register pipelines.kubeflow.ArchftKubeflowOrchestratorFlavor
"""

from __future__ import annotations

import os
import re
import shutil
import uuid
from typing import TYPE_CHECKING, Any

from pydantic import Field
from zenml.entrypoints.step_entrypoint_configuration import StepEntrypointConfiguration
from zenml.integrations.kubeflow.flavors.kubeflow_orchestrator_flavor import (
    KubeflowOrchestratorConfig,
    KubeflowOrchestratorFlavor,
    KubeflowOrchestratorSettings,
)
from zenml.integrations.kubeflow.orchestrators.kubeflow_orchestrator import (
    ENV_KFP_RUN_ID,
    KubeflowOrchestrator,
)
from zenml.io import fileio
from zenml.logger import get_logger
from zenml.orchestrators.utils import get_orchestrator_run_name

if TYPE_CHECKING:
    from zenml.config.resource_settings import ResourceSettings
    from zenml.models import PipelineRunResponse, PipelineSnapshotResponse
    from zenml.orchestrators.base_orchestrator import SubmissionResult
    from zenml.stack import Stack

logger = get_logger(__name__)

FLAVOR = "archft_kubeflow"
GPU_RESOURCE = "nvidia.com/gpu"
# Names of environment variables that hold credentials (ZENML_STORE_API_KEY, ..._API_TOKEN,
# ..._PASSWORD, AWS_SECRET_ACCESS_KEY): never written into the compiled YAML. Not matched:
# ZENML_SECRETS_STORE_TYPE, ZENML_DISABLE_CREDENTIALS_DISK_CACHING.
SECRET_NAME = re.compile(r"(^|_)(TOKEN|PASSWORD|PASSWD|SECRET)(_|$)|_KEY$", re.IGNORECASE)


class ArchftKubeflowOrchestratorSettings(KubeflowOrchestratorSettings):
    """Per pipeline or per step (`settings.orchestrator` in a run configuration).

    The inherited `pod_settings` is not used (the stock validator rebuilds it from
    `node_selectors` anyway): use `node_selectors`, `tolerations` and `pvc_mounts`.
    """

    node_selectors: dict[str, str] = Field(
        default_factory=dict, description="Node labels the step's pod must match, e.g. "
        "{'cloud.google.com/gke-accelerator': 'nvidia-tesla-t4'}.")
    tolerations: list[dict[str, Any]] = Field(
        default_factory=list, description="Pod tolerations: key, operator (Equal|Exists), "
        "value, effect (NoSchedule|PreferNoSchedule|NoExecute), toleration_seconds.")
    pvc_mounts: dict[str, str] = Field(
        default_factory=dict, description="Existing PersistentVolumeClaims to mount: "
        "{claim name: mount path}.")
    store_secret: str = Field(
        "archft-zenml-store", description="Kubernetes secret the steps read their credentials "
        "(ZENML_STORE_API_KEY, ...) from.")
    kfp_caching: bool = Field(True, description="Let KFP reuse a finished task of the same "
                              "snapshot (a retried run).")
    package_path: str | None = Field(None, description="Write the compiled KFP YAML here and "
                                     "do not upload it.")


class ArchftKubeflowOrchestratorConfig(KubeflowOrchestratorConfig,
                                       ArchftKubeflowOrchestratorSettings):
    """Stack component configuration: Kubeflow's plus archft's settings as defaults."""


def memory_quantity(resources: ResourceSettings) -> str | None:
    """ZenML's memory ("4GB", "512MiB") as a Kubernetes quantity string ("4000Mi")."""
    if not resources.memory:
        return None
    mib = resources.get_memory(unit="MiB")
    return f"{max(1, round(mib))}Mi"


def split_environment(env: dict[str, str]) -> tuple[dict[str, str], list[str]]:
    """(variables that may appear in the YAML, names that must come from the secret)."""
    plain = {k: v for k, v in env.items() if not SECRET_NAME.search(k)}
    return plain, sorted(set(env) - set(plain))


def topological(steps: dict[str, Any]) -> list[str]:
    """Step names, each after all its upstream steps (kfp needs a task before `.after` it)."""
    order: list[str] = []
    seen: set[str] = set()

    def visit(name: str) -> None:
        if name in seen:
            return
        seen.add(name)
        for upstream in steps[name].spec.upstream_steps:
            visit(upstream)
        order.append(name)

    for name in steps:
        visit(name)
    return order


class ArchftKubeflowOrchestrator(KubeflowOrchestrator):
    """ZenML's Kubeflow orchestrator with the fixes of this module's docstring."""

    @property
    def settings_class(self) -> type[ArchftKubeflowOrchestratorSettings]:
        return ArchftKubeflowOrchestratorSettings

    @property
    def config(self) -> ArchftKubeflowOrchestratorConfig:
        return self._config  # type: ignore[return-value]

    def _configure_task(self, task, step, settings: ArchftKubeflowOrchestratorSettings,
                        env: dict[str, str]):
        from kfp import dsl, kubernetes

        plain, secret = split_environment(env)
        task = (task.set_display_name(name=step.config.name)
                .set_caching_options(enable_caching=settings.kfp_caching)
                .set_env_variable(name=ENV_KFP_RUN_ID, value=dsl.PIPELINE_JOB_NAME_PLACEHOLDER))
        for key, value in plain.items():
            task = task.set_env_variable(name=key, value=value)
        if secret:
            kubernetes.use_secret_as_env(task, secret_name=settings.store_secret,
                                         secret_key_to_env={k: k for k in secret})
        resources = step.config.resource_settings
        if resources.cpu_count:
            cpu = f"{resources.cpu_count:g}"
            task = task.set_cpu_request(cpu).set_cpu_limit(cpu)
        memory = memory_quantity(resources)
        if memory:
            task = task.set_memory_request(memory).set_memory_limit(memory)
        if resources.gpu_count:
            task = task.set_accelerator_type(GPU_RESOURCE).set_accelerator_limit(
                resources.gpu_count)
        for label, value in settings.node_selectors.items():
            kubernetes.add_node_selector(task, label_key=label, label_value=value)
        for toleration in settings.tolerations:
            kubernetes.add_toleration(task, **toleration)
        for claim, path in settings.pvc_mounts.items():
            kubernetes.mount_pvc(task, pvc_name=claim, mount_path=path)
        return task

    def compile(self, snapshot: PipelineSnapshotResponse, step_environments: dict[str, dict],
                path: str, run_name: str) -> None:
        """Writes the KFP IR YAML of the snapshot to `path`."""
        from kfp import dsl
        from kfp.compiler import Compiler

        steps = snapshot.step_configurations
        components = {
            name: self._create_dynamic_component(
                self.get_image(snapshot=snapshot, step_name=name),
                StepEntrypointConfiguration.get_entrypoint_command(),
                StepEntrypointConfiguration.get_entrypoint_arguments(
                    step_name=name, snapshot_id=snapshot.id),
                name)
            for name in steps}

        @dsl.pipeline(display_name=run_name)
        def dynamic_pipeline():  # no annotation: kfp would read the string "None" as a type
            tasks: dict[str, Any] = {}
            for name in topological(steps):
                step = steps[name]
                settings = self.get_settings(step)
                task = components[name]().after(
                    *[tasks[u] for u in step.spec.upstream_steps])
                tasks[name] = self._configure_task(task, step, settings,
                                                   step_environments[name])

        Compiler().compile(pipeline_func=dynamic_pipeline, package_path=path,
                           pipeline_name=run_name)

    def submit_pipeline(self, snapshot: PipelineSnapshotResponse, stack: Stack,
                        base_environment: dict[str, str],
                        step_environments: dict[str, dict[str, str]],
                        placeholder_run: PipelineRunResponse | None = None,
                        ) -> SubmissionResult | None:
        settings = self.get_settings(snapshot)
        run_name = get_orchestrator_run_name(
            pipeline_name=snapshot.pipeline_configuration.name).replace("_", "-")
        fileio.makedirs(self.pipeline_directory)
        path = os.path.join(self.pipeline_directory, f"{run_name}.yaml")
        self.compile(snapshot, step_environments, path, run_name)
        if settings.package_path:
            target = os.path.abspath(settings.package_path)
            os.makedirs(os.path.dirname(target), exist_ok=True)
            shutil.copyfile(path, target + ".tmp")
            os.replace(target + ".tmp", target)
            logger.info("Compiled the Kubeflow pipeline to `%s` (not uploaded).", target)
            return None
        logger.info("Writing Kubeflow workflow definition to `%s`.", path)
        return self._upload_and_run_pipeline(snapshot=snapshot, pipeline_file_path=path,
                                             run_name=run_name)

    def _get_kfp_client(self, settings: ArchftKubeflowOrchestratorSettings):
        return _CachingClient(super()._get_kfp_client(settings), settings.kfp_caching)


class _CachingClient:
    """The KFP client, except that creating a run does not force caching off: the stock
    upload passes `enable_caching=False`, which overrides every task's compiled option."""

    def __init__(self, client, caching: bool):
        self._client, self._caching = client, caching

    def __getattr__(self, name):
        return getattr(self._client, name)

    def _caching_option(self, kwargs: dict) -> dict:
        return {**kwargs, "enable_caching": None if self._caching else False}

    def create_run_from_pipeline_package(self, *args, **kwargs):
        return self._client.create_run_from_pipeline_package(*args,
                                                             **self._caching_option(kwargs))

    def create_recurring_run(self, *args, **kwargs):
        return self._client.create_recurring_run(*args, **self._caching_option(kwargs))


class ArchftKubeflowOrchestratorFlavor(KubeflowOrchestratorFlavor):
    """The `archft_kubeflow` orchestrator flavor."""

    @property
    def name(self) -> str:
        return FLAVOR

    @property
    def config_class(self) -> type[ArchftKubeflowOrchestratorConfig]:
        return ArchftKubeflowOrchestratorConfig

    @property
    def implementation_class(self) -> type[ArchftKubeflowOrchestrator]:
        return ArchftKubeflowOrchestrator


def compile_offline(config: str | os.PathLike, package_path: str | os.PathLike | None,
                    registry: str = "localhost:5000", flavor: str = FLAVOR) -> None:
    """Compiles the `architectural_finetuning` pipeline with a run configuration to KFP YAML,
    with no cluster, registry or docker: on a throwaway stack (this orchestrator, the default
    artifact store, a container registry entry) of the ZenML store that is active, which the
    caller makes a temporary one (`run.py --compile-only` does). The image is the config's
    `settings.docker.parent_image` (with `skip_build: true`, as in configs/kubeflow.yaml).
    `flavor="kubeflow"` compiles with ZenML's stock orchestrator instead (which has no
    `package_path`: it tries to upload to an unreachable host and logs that it failed).
    """
    from zenml.client import Client
    from zenml.enums import StackComponentType as Kind

    from pipelines.architectural_finetuning import architectural_finetuning

    os.environ["ZENML_SKIP_STACK_VALIDATION"] = "true"  # no cluster to validate against
    client = Client()
    name = f"archft-kfp-compile-{flavor}"
    known = {f.name for f in client.get_flavors_by_type(Kind.ORCHESTRATOR)}
    if flavor == FLAVOR and FLAVOR not in known:
        client.create_flavor(f"{__name__}.{ArchftKubeflowOrchestratorFlavor.__name__}",
                             Kind.ORCHESTRATOR)
    try:
        client.get_stack(name)
    except KeyError:
        client.create_stack_component(name, flavor, Kind.ORCHESTRATOR,
                                      {"kubeflow_hostname": "https://kubeflow.invalid"})
        client.create_stack_component(name, "default", Kind.CONTAINER_REGISTRY,
                                      {"uri": registry})
        client.create_stack(name, components={Kind.ORCHESTRATOR: name,
                                              Kind.ARTIFACT_STORE: "default",
                                              Kind.CONTAINER_REGISTRY: name})
    client.activate_stack(name)
    settings = ({"orchestrator": {"package_path": str(package_path)}} if flavor == FLAVOR
                else {})
    pipeline = architectural_finetuning.with_options(config_path=str(config), settings=settings)
    # `pipeline()` would refuse a remote orchestrator on a local store; a snapshot submitted to
    # the stack goes through the same compile.
    snapshot = pipeline.create_snapshot(name=f"compile-{uuid.uuid4().hex[:8]}")
    client.active_stack.submit_pipeline(snapshot)
