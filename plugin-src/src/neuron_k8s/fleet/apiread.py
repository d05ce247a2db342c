"""The only I/O of `kubectl neuron`: one paged list per kind (nodes, pods, ResourceClaims,
ResourceSlices, and a pod's Events for `why`), never a call per node, so that a 5,000-node
cluster costs a handful of requests."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from neuron_k8s.kube import LIST_PAGE, ApiError, KubeClient
from neuron_k8s.kubeconfig import read_kubeconfig

RESOURCE_API = "/apis/resource.k8s.io/v1"
# Pods that ended hold nothing; the API server drops them before they cross the wire.
LIVE_PODS = "status.phase!=Succeeded,status.phase!=Failed"


@dataclass
class Snapshot:
    nodes: list[dict[str, Any]] = field(default_factory=list)
    pods: list[dict[str, Any]] = field(default_factory=list)
    claims: list[dict[str, Any]] = field(default_factory=list)
    slices: list[dict[str, Any]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)


def kubeconfig_path(flag: str | None, environ: dict[str, str] | os._Environ[str]) -> str | None:
    """As kubectl: the flag, else the first file of KUBECONFIG that exists, else
    ~/.kube/config if it exists; None: in-cluster credentials."""
    if flag:
        return flag
    for path in (environ.get("KUBECONFIG") or "").split(os.pathsep):
        if path and os.path.exists(path):
            return path
    home = os.path.join(os.path.expanduser("~"), ".kube", "config")
    return home if os.path.exists(home) else None


def connect(
    kubeconfig: str | None, context: str | None, timeout: float
) -> tuple[KubeClient, str | None]:
    """A client for the kubeconfig's context (or the pod's service account), and the
    context's namespace. ValueError when there is neither."""
    if kubeconfig:
        c = read_kubeconfig(kubeconfig, context)
        return KubeClient(c.server, c.token, c.token_file, c.ssl_context, timeout), c.namespace
    client = KubeClient.from_config(None, timeout=timeout)
    if client is None:
        raise ValueError(
            "no kubeconfig (--kubeconfig, KUBECONFIG, ~/.kube/config) and not in a pod"
        )
    return client, None


def list_all(
    client: KubeClient, path: str, params: dict[str, Any] | None = None, missing_ok: bool = False
) -> list[dict[str, Any]]:
    """Every object of a collection, in pages. With `missing_ok`, a collection the API server
    does not serve (no DRA API) is empty."""
    out: list[dict[str, Any]] = []
    token = ""
    while True:
        query = dict(params or {}, limit=LIST_PAGE)
        if token:
            query["continue"] = token
        try:
            page = client.get(path, query)
        except ApiError as err:
            if missing_ok and err.status == 404:
                return []
            raise
        out += [i for i in page.get("items") or [] if isinstance(i, dict)]
        token = str((page.get("metadata") or {}).get("continue") or "")
        if not token:
            return out


def _in(namespace: str | None, kind: str) -> str:
    return f"/namespaces/{namespace}/{kind}" if namespace else f"/{kind}"


def read_fleet(
    client: KubeClient, driver: str, namespace: str | None = None, live_only: bool = True
) -> Snapshot:
    """Nodes and our driver's slices cluster-wide; pods and claims in `namespace` (all when
    None), only the live pods when `live_only`."""
    pods_params = {"fieldSelector": LIVE_PODS} if live_only else None
    return Snapshot(
        nodes=list_all(client, "/api/v1/nodes"),
        pods=list_all(client, "/api/v1" + _in(namespace, "pods"), pods_params),
        claims=list_all(client, RESOURCE_API + _in(namespace, "resourceclaims"), missing_ok=True),
        slices=list_all(
            client,
            f"{RESOURCE_API}/resourceslices",
            {"fieldSelector": f"spec.driver={driver}"},
            missing_ok=True,
        ),
    )


def pod_events(client: KubeClient, namespace: str, name: str) -> list[dict[str, Any]]:
    selector = f"involvedObject.kind=Pod,involvedObject.name={name}"
    return list_all(client, f"/api/v1/namespaces/{namespace}/events", {"fieldSelector": selector})


def read_pod(client: KubeClient, namespace: str, name: str) -> dict[str, Any] | None:
    try:
        return client.get(f"/api/v1/namespaces/{namespace}/pods/{name}")
    except ApiError as err:
        if err.status == 404:
            return None
        raise
