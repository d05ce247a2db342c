"""A Python script run in a pod of its own, and what it printed (test_10, test_20)."""

from __future__ import annotations

import json
from typing import Any

from conftest import IMAGE, PULL_POLICY, Pods, wait_for


def script_results(pods: Pods, name: str, script: str, *args: str) -> list[Any]:
    """Run a Python script in a pod of its own (no service account token) in the pods'
    namespace, and return the JSON of each line it prints as `RESULT <json>`. Fails, with the
    pod's log, unless the script exits 0."""
    body = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {
            "restartPolicy": "Never",
            "automountServiceAccountToken": False,
            "containers": [
                {
                    "name": "c",
                    "image": IMAGE,
                    "imagePullPolicy": PULL_POLICY,
                    "command": ["python3", "-c", script, *args],
                }
            ],
        },
    }
    pods.cluster.core.create_namespaced_pod(pods.namespace, body)
    done = ("Succeeded", "Failed")
    wait_for(f"{name} to finish", lambda: pods.get(name).status.phase in done)
    log = pods.cluster.core.read_namespaced_pod_log(name, pods.namespace)
    assert pods.get(name).status.phase == "Succeeded", log
    return [json.loads(ln[7:]) for ln in log.splitlines() if ln.startswith("RESULT ")]
