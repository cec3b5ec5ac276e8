"""Structural checks of infra/: the compose stack (Docker cannot run here) and the Prefect deployments."""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
INFRA = REPO / "infra"
DEPENDS_ON_CONDITIONS = {"service_started", "service_healthy", "service_completed_successfully"}


def _load(name: str) -> dict[str, Any]:
    return yaml.safe_load((INFRA / name).read_text())


def _documented_variables() -> set[str]:
    """Variables named in the first column of a table in infra/README.md."""
    return set(re.findall(r"^\| `([A-Z][A-Z0-9_]*)` \|", (INFRA / "README.md").read_text(), flags=re.MULTILINE))


def _interpolated(text: str) -> set[str]:
    """Variables compose substitutes: ${VAR}, ${VAR:-x}, ${VAR:?x} (not the escaped $${VAR})."""
    return set(re.findall(r"(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*)", text))


def _yaml_text(name: str) -> str:
    """The file without its comment lines (comments may show placeholder syntax)."""
    lines = (INFRA / name).read_text().splitlines()
    return "\n".join(line for line in lines if not line.lstrip().startswith("#"))


def _make_targets() -> set[str]:
    return set(re.findall(r"^([a-z][a-z-]*):", (REPO / "Makefile").read_text(), flags=re.MULTILINE))


@pytest.fixture(scope="module")
def services() -> dict[str, dict[str, Any]]:
    return _load("compose.yaml")["services"]


@pytest.fixture(scope="module")
def deployments() -> list[dict[str, Any]]:
    return _load("prefect.yaml")["deployments"]


def test_the_stack_has_every_component(services: dict[str, dict[str, Any]]) -> None:
    commands = {name: " ".join(map(str, spec.get("command", []))) for name, spec in services.items()}
    assert services["postgres"]["image"].startswith("postgres:")
    assert "postgresql+asyncpg://" in services["prefect-server"]["environment"]["PREFECT_SERVER_DATABASE_CONNECTION_URL"]
    assert commands["prefect-server"].startswith("prefect server start")
    assert services["minio"]["image"].startswith("minio/minio:")
    assert commands["deploy"] == "make deploy" and commands["prefect-worker"] == "make worker"
    assert commands["dask-scheduler"].startswith("dask scheduler")
    workers = [name for name, command in commands.items() if command.startswith("dask worker tcp://dask-scheduler:8786")]
    assert len(workers) == 2


def test_every_service_has_an_image_or_a_build_that_exists(services: dict[str, dict[str, Any]]) -> None:
    for name, spec in services.items():
        assert "image" in spec or "build" in spec, name
        if "build" in spec:
            context = (INFRA / spec["build"]["context"]).resolve()
            assert context == REPO, name
            assert (context / spec["build"]["dockerfile"]).is_file(), name


def test_the_image_copies_only_what_exists_and_runs_make_setup() -> None:
    dockerfile = (INFRA / "worker.Dockerfile").read_text()
    sources = [part for line in re.findall(r"^COPY (.+) \S+$", dockerfile, flags=re.MULTILINE) for part in line.split()]
    assert sources and all((REPO / source).exists() for source in sources), sources
    assert "RUN make setup" in dockerfile and "requirements.lock" in sources


def test_make_targets_the_stack_runs_exist(services: dict[str, dict[str, Any]]) -> None:
    used = {spec["command"][1] for spec in services.values() if spec.get("command", [None])[0] == "make"}
    assert used and used <= _make_targets()


def test_every_variable_the_stack_uses_is_documented(services: dict[str, dict[str, Any]]) -> None:
    used = _interpolated(_yaml_text("compose.yaml"))
    for spec in services.values():
        used |= set(spec.get("environment", {}))
    missing = used - _documented_variables()
    assert not missing, f"not documented in infra/README.md: {sorted(missing)}"


def test_the_example_env_file_sets_every_required_variable() -> None:
    required = set(re.findall(r"\$\{([A-Z_]+):\?", _yaml_text("compose.yaml")))
    example = {line.split("=", 1)[0] for line in (INFRA / "env.example").read_text().splitlines() if "=" in line and not line.startswith("#")}
    assert required == {"POSTGRES_PASSWORD", "MINIO_ROOT_USER", "MINIO_ROOT_PASSWORD"}
    assert required <= example <= _documented_variables()


def test_published_ports_listen_on_localhost_only_and_do_not_clash(services: dict[str, dict[str, Any]]) -> None:
    published = [str(port) for spec in services.values() for port in spec.get("ports", [])]
    assert published
    for port in published:
        assert re.fullmatch(r"127\.0\.0\.1:\d+:\d+", port), port
    host_ports = [port.split(":")[1] for port in published]
    assert len(host_ports) == len(set(host_ports))


def test_dependencies_name_existing_services_with_conditions_they_can_meet(services: dict[str, dict[str, Any]]) -> None:
    for name, spec in services.items():
        for dependency, rule in spec.get("depends_on", {}).items():
            assert dependency in services, f"{name} depends on unknown service {dependency}"
            assert rule["condition"] in DEPENDS_ON_CONDITIONS, name
            if rule["condition"] == "service_healthy":
                assert "healthcheck" in services[dependency], f"{name} waits for {dependency}, which has no healthcheck"
            if rule["condition"] == "service_completed_successfully":
                assert services[dependency].get("restart") == "no", f"{dependency} must be a one-shot job"


def test_prefect_yaml_is_valid_for_prefect_deploy() -> None:
    # `prefect deploy` only warns and skips a file that does not validate, so check it here.
    from prefect.cli.deploy._models import PrefectYamlModel

    model = PrefectYamlModel.model_validate(_load("prefect.yaml"))
    assert [d.name for d in model.deployments] == [d["name"] for d in _load("prefect.yaml")["deployments"]]


def test_every_deployment_runs_an_importable_flow_that_takes_described_landing_and_lake(deployments: list[dict[str, Any]]) -> None:
    from prefect.flows import load_flow_from_entrypoint

    for deployment in deployments:
        assert ".py:" not in deployment["entrypoint"], "module entrypoints: Dask processes import the same modules"
        flow = load_flow_from_entrypoint(deployment["entrypoint"])
        assert {"landing", "lake"} <= set(flow.parameters.properties), deployment["name"]
        # The UI's run form shows these (from the docstring's Google-style `Args:` section).
        for name, spec in flow.parameters.properties.items():
            assert spec.get("description"), f"{deployment['name']}: parameter {name!r} has no description"
        assert set(deployment.get("parameters", {})) <= set(flow.parameters.properties), deployment["name"]
        assert deployment["work_pool"]["name"] == "trialake"


def test_nightly_runs_at_two_in_the_trials_time_zone(deployments: list[dict[str, Any]]) -> None:
    from prefect.client.schemas.schedules import CronSchedule

    [nightly] = [d for d in deployments if d["name"] == "nightly"]
    [schedule] = nightly["schedules"]
    # both filled by `make deploy` from the trial configuration (nightly_cron, timezone)
    assert (schedule["cron"], schedule["timezone"]) == ("{{ $TRIALAKE_CRON }}", "{{ $TRIALAKE_TIMEZONE }}")
    makefile = (REPO / "Makefile").read_text()
    assert "TRIALAKE_TIMEZONE=" in makefile and "TRIALAKE_CRON=" in makefile
    from trialake.config import load_trial_config

    reference = load_trial_config(None)
    assert CronSchedule(cron=reference.nightly_cron, timezone=reference.timezone).cron == "0 2 * * *"


def test_prefect_yaml_variables_are_documented_and_the_pool_matches_make() -> None:
    used = set(re.findall(r"\{\{ \$([A-Z_]+) \}\}", _yaml_text("prefect.yaml")))
    assert used == {"TRIALAKE_CRON", "TRIALAKE_LANDING", "TRIALAKE_LAKE", "TRIALAKE_PACS", "TRIALAKE_TIMEZONE",
                    "TRIALAKE_TASK_RUNNER"}
    assert used | {"TRIALAKE_HOME"} <= _documented_variables()  # TRIALAKE_HOME: read by the pull step's shell
    makefile = (REPO / "Makefile").read_text()
    assert "--pool trialake" in makefile and "work-pool create trialake --type process" in makefile
