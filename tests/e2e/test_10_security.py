"""Who can drive what (docs/security.md): only my-scheduler reaches the extender's verbs (mutual
TLS), and the device plugin's token, which sits on every Neuron node, can change only the
project's annotations of its own node's pods."""

import base64
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import (
    IMAGE,
    NAMESPACE,
    PULL_POLICY,
    RELEASE,
    Cluster,
    Pods,
    needs_kind,
)
from kubernetes import client, config
from kubernetes.client.rest import ApiException
from scriptpods import script_results

ATTACK = r"""
import http.client, json, socket, ssl, sys
host, port, victim, ns, node = sys.argv[1:6]
bind = json.dumps({"PodName": victim, "PodNamespace": ns, "PodUID": "", "Node": node})
filt = json.dumps({"Pod": {"metadata": {"name": "x"}}, "NodeNames": [node]})
def attempt(tls, path, body):
    try:
        if tls:
            ctx = ssl.create_default_context()
            ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
            conn = http.client.HTTPSConnection(host, int(port), timeout=10, context=ctx)
        else:
            conn = http.client.HTTPConnection(host, int(port), timeout=10)
        conn.request("POST", path, body, {"Content-Type": "application/json"})
        resp = conn.getresponse()
        return {"status": resp.status, "body": resp.read()[:200].decode(errors="replace")}
    except (OSError, http.client.HTTPException) as err:
        return {"refused": type(err).__name__ + ": " + str(err)[:200]}
for tls in (False, True):
    for path, body in (("/bind", bind), ("/filter", filt)):
        print("RESULT " + json.dumps({"tls": tls, "path": path, **attempt(tls, path, body)}))
"""


def test_a_pod_without_the_client_certificate_can_neither_bind_nor_filter(
    cluster: Cluster, pods: Pods
) -> None:
    # Failed on main before: a plain pod bound another scheduler's pending pod to any node.
    needs_kind()
    node = next(iter(cluster.neuron_nodes()))
    victim = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "victim"},
        "spec": {
            "schedulerName": "nobody-schedules-this",
            "containers": [{"name": "c", "image": IMAGE, "imagePullPolicy": PULL_POLICY}],
        },
    }
    cluster.core.create_namespaced_pod(pods.namespace, victim)
    service = f"{RELEASE}-extender.{NAMESPACE}.svc"
    results = script_results(
        pods, "attacker", ATTACK, service, "12345", "victim", pods.namespace, node
    )
    assert len(results) == 4, results
    for r in results:
        assert "status" not in r, f"the extender answered an unauthenticated client: {r}"
    assert pods.get("victim").spec.node_name is None


def plugin_pods(cluster: Cluster) -> dict[str, str]:
    """node -> the device plugin pod on it."""
    found = cluster.core.list_namespaced_pod(
        NAMESPACE, label_selector="app.kubernetes.io/component=device-plugin"
    ).items
    return {p.spec.node_name: p.metadata.name for p in found}


@dataclass
class Answer:
    ok: bool
    message: str


@pytest.fixture
def as_plugin(cluster: Cluster):
    """The API as the device plugin's own pod-bound token sees it (the token of the plugin pod
    on the first Neuron node), and nothing else: no client certificate of the admin
    kubeconfig. Raw PATCH requests, as the plugin makes them (kubectl patch would GET first,
    which the plugin's role does not allow)."""
    needs_kind()
    node, pod = sorted(plugin_pods(cluster).items())[0]
    token = cluster.kubectl(
        "exec",
        "-n",
        NAMESPACE,
        pod,
        "--",
        "cat",
        "/var/run/secrets/kubernetes.io/serviceaccount/token",
    ).stdout.strip()
    admin = yaml.safe_load(Path(cluster.kubeconfig).read_text())
    server = admin["clusters"][0]["cluster"]
    kubeconfig = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "c", "cluster": server}],
        "users": [{"name": "plugin", "user": {"token": token}}],
        "contexts": [{"name": "c", "context": {"cluster": "c", "user": "plugin"}}],
        "current-context": "c",
    }
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
        yaml.safe_dump(kubeconfig, f)
    api = client.CoreV1Api(config.new_client_from_config(config_file=f.name))

    def call(method: str, *args: Any) -> Answer:
        try:
            getattr(api, method)(*args)
        except ApiException as err:
            return Answer(False, f"{err.status}: {err.body}")
        return Answer(True, "")

    return node, call


def plain_pod(name: str, node: str) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {
            "nodeName": node,
            "tolerations": [{"operator": "Exists"}],
            "containers": [
                {
                    "name": "c",
                    "image": IMAGE,
                    "imagePullPolicy": PULL_POLICY,
                    "command": ["sleep", "3600"],
                }
            ],
        },
    }


def test_the_plugins_token_changes_only_our_annotations_of_its_own_nodes_pods(
    cluster: Cluster, pods: Pods, as_plugin
) -> None:
    # Failed on main before: the plugin's token could patch any pod and node of the cluster.
    node, call = as_plugin
    other = next(n for n in plugin_pods(cluster) if n != node)
    cluster.core.create_namespaced_pod(pods.namespace, plain_pod("mine", node))
    cluster.core.create_namespaced_pod(pods.namespace, plain_pod("theirs", other))
    ours = {"metadata": {"annotations": {"NEURON_ALLOC_TIME": "1"}}}

    def patch(pod: str, body: dict) -> Answer:
        return call("patch_namespaced_pod", pod, pods.namespace, body)

    allowed = patch("mine", ours)
    assert allowed.ok, allowed.message
    denied = patch("theirs", ours)
    assert not denied.ok and "may change only that node" in denied.message, denied.message
    denied = patch("mine", {"spec": {"containers": [{"name": "c", "image": "evil:latest"}]}})
    assert not denied.ok and "may not change" in denied.message, denied.message
    denied = patch("mine", {"metadata": {"annotations": {"team": "x"}}})
    assert not denied.ok and "only the Neuron annotations" in denied.message, denied.message
    denied = call("patch_node", other, {"metadata": {"labels": {"evil": "yes"}}})
    assert not denied.ok, "the plugin's token relabelled another node"
    assert pods.get("mine").spec.containers[0].image == IMAGE


def test_the_extenders_certificates_are_kept_by_an_upgrade(cluster: Cluster) -> None:
    needs_kind()
    # TLS mode chart: the Secrets the extender issued in the cluster (extender/clustercerts.py).
    names = [f"{RELEASE}-extender-tls-ca", f"{RELEASE}-scheduler-client-cert"]

    def data() -> dict[str, dict[str, str]]:
        return {n: cluster.core.read_namespaced_secret(n, NAMESPACE).data for n in names}

    before = data()
    assert base64.b64decode(before[names[1]]["ca.crt"]).startswith(b"-----BEGIN CERTIFICATE")
    chart = str(Path(__file__).resolve().parents[2] / "charts" / "neuron")
    cluster.helm("upgrade", RELEASE, chart, "-n", NAMESPACE, "--reuse-values", "--wait")
    assert data() == before
