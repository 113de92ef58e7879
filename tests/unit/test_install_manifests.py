"""The install layout: crds/Kustomization tracks `make crds`; image and Deployment agree."""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path

import yaml

from e2b_operator.api.crds import render

ROOT = Path(__file__).resolve().parents[2]


def test_crd_kustomization_lists_every_generated_crd() -> None:
    kustomization = yaml.safe_load((ROOT / "crds" / "Kustomization").read_text())
    assert kustomization["resources"] == sorted(render())


def test_dockerfile_runs_the_deployments_command() -> None:
    deployment = yaml.safe_load((ROOT / "manifests" / "install" / "deployment.yaml").read_text())
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    dockerfile = (ROOT / "Dockerfile").read_text().replace("\\\n", "")
    cmd = re.search(r"^CMD (\[.*\])$", dockerfile, re.MULTILINE)
    assert cmd and json.loads(cmd[1]) == container["command"]
    user = re.search(r"^USER (\d+):(\d+)$", dockerfile, re.MULTILINE)
    pod = deployment["spec"]["template"]["spec"]["securityContext"]
    assert user and [int(user[1]), int(user[2])] == [pod["runAsUser"], pod["runAsGroup"]]


def test_gateway_runs_the_operator_image_and_its_console_script() -> None:
    docs = list(yaml.safe_load_all((ROOT / "manifests/install/gateway.yaml").read_text()))
    operator = yaml.safe_load((ROOT / "manifests/install/deployment.yaml").read_text())
    gateway = next(d for d in docs if d["kind"] == "Deployment")
    (container,) = gateway["spec"]["template"]["spec"]["containers"]
    assert container["image"] == operator["spec"]["template"]["spec"]["containers"][0]["image"]
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts[container["command"][0]] == "e2b_operator.gateway.server:main"
    assert (
        gateway["spec"]["template"]["spec"]["securityContext"]
        == (operator["spec"]["template"]["spec"]["securityContext"])
    )
    kustomization = yaml.safe_load((ROOT / "manifests/kustomization.yaml").read_text())
    assert {"install/gateway.yaml", "install/gateway-rbac.yaml"} <= set(kustomization["resources"])
