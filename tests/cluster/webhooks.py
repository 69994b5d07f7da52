"""Admission and conversion webhooks of the controllers, served on 127.0.0.1.

In a cluster the API server calls a webhook through its Service; here nothing routes
Service names, so each webhook configuration (and CRD conversion webhook) from the module's
own manifests is rendered with `kubectl kustomize` (the objectSelectors and names its
kustomization patches in) and its `clientConfig.service` replaced by a `url` on the
controller's loopback port with the test's CA as `caBundle`.
"""

from __future__ import annotations

import base64
import copy
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

from .controlplane import ControlPlane

WEBHOOK_KINDS = ("MutatingWebhookConfiguration", "ValidatingWebhookConfiguration")


def render_kustomization(plane: ControlPlane, directory: Path) -> list[dict[str, Any]]:
    """The objects `kubectl kustomize` renders from a kustomization directory."""
    rendered = plane.kubectl("kustomize", str(directory)).stdout
    return [doc for doc in yaml.safe_load_all(rendered) if doc]


def loopback_client_config(
    service_config: dict[str, Any], port: int, ca_pem: bytes
) -> dict[str, Any]:
    """`clientConfig` that reaches the service's path on 127.0.0.1:`port` with `ca_pem` trusted."""
    path = service_config.get("service", {}).get("path", "")
    return {
        "url": f"https://127.0.0.1:{port}{path}",
        "caBundle": base64.b64encode(ca_pem).decode(),
    }


def loopback_webhooks(
    objects: Iterable[dict[str, Any]], port: int, ca_pem: bytes, name_prefix: str = ""
) -> list[dict[str, Any]]:
    """The webhook configurations among `objects` pointed at 127.0.0.1:`port`, named with
    the `name_prefix` the project's default kustomization adds; the rest is dropped."""
    configurations = []
    for obj in objects:
        if obj.get("kind") not in WEBHOOK_KINDS:
            continue
        configuration = copy.deepcopy(obj)
        configuration["metadata"] = {"name": name_prefix + obj["metadata"]["name"]}
        for webhook in configuration["webhooks"]:
            webhook["clientConfig"] = loopback_client_config(webhook["clientConfig"], port, ca_pem)
        configurations.append(configuration)
    return configurations


def loopback_conversions(
    crds: Iterable[dict[str, Any]], port: int, ca_pem: bytes
) -> list[dict[str, Any]]:
    """The `crds`, those converting through a webhook now reaching it on 127.0.0.1:`port`."""
    pointed = []
    for crd in crds:
        crd = copy.deepcopy(crd)
        webhook = crd["spec"].get("conversion", {}).get("webhook")
        if webhook is not None:
            webhook["clientConfig"] = loopback_client_config(webhook["clientConfig"], port, ca_pem)
        pointed.append(crd)
    return pointed
