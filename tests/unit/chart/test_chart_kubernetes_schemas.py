"""Every rendered object is valid against the OpenAPI schemas of the Kubernetes releases the
tests run (versions.env: the current release, and the oldest the chart supports), offline.

kubernetes-validate ships the schemas of each release; strict mode also refuses unknown fields,
which catches misspelled or misplaced keys that the API server would drop or refuse.
"""

import kubernetes_validate
import pytest
from chartlib import EXAMPLES, VERSIONS, render


def _minor(version: str) -> str:
    """`v9.1.0` -> `9.1`: kubernetes-validate keeps one schema set per minor release."""
    return ".".join(version.lstrip("v").split(".")[:2])


# The release each minor's objects are rendered for (the scheduler's tag follows it).
RELEASES = {
    _minor(VERSIONS[key]): VERSIONS[key]
    for key in ("KUBERNETES_VERSION", "KUBERNETES_OLDEST_VERSION")
}
K8S_VERSION = _minor(VERSIONS["KUBERNETES_VERSION"])
DIGEST = "sha256:" + "cd" * 32

# Values that switch on every optional branch of the templates.
EVERYTHING = {
    "commonLabels": {"team": "ml"},
    "namespaceOverride": "accel",
    "devicePlugin": {
        "image": {"digest": DIGEST},
        "imagePullSecrets": [{"name": "regcred"}],
        "fake": {
            "enabled": True,
            "devices": 2,
            "coresPerDevice": 2,
            "healthFile": "/var/lib/neuron-fake/unhealthy",
        },
        "serviceAccount": {"annotations": {"a": "b"}},
        "nodeSelector": {"pool": "neuron"},
        "affinity": {
            "podAntiAffinity": {
                "preferredDuringSchedulingIgnoredDuringExecution": [
                    {
                        "weight": 1,
                        "podAffinityTerm": {
                            "topologyKey": "kubernetes.io/hostname",
                            "labelSelector": {"matchLabels": {"x": "y"}},
                        },
                    }
                ]
            }
        },
        "podAnnotations": {"a": "b"},
        "podLabels": {"c": "d"},
        "extraEnv": [{"name": "X", "value": "1"}],
        "extraArgs": ["--sysfs-root=/host/sys"],
        "extraVolumes": [{"name": "sys", "hostPath": {"path": "/sys", "type": "Directory"}}],
        "extraVolumeMounts": [{"name": "sys", "mountPath": "/host/sys", "readOnly": True}],
        "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 2}},
    },
    "extender": {
        "schedulerName": "default-scheduler",
        "imagePullSecrets": [{"name": "regcred"}],
        "service": {"type": "NodePort", "allowExternal": True, "annotations": {"a": "b"}},
        "podAnnotations": {"a": "b"},
        "extraEnv": [{"name": "Y", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}],
        "extraArgs": ["--x"],
        "extraVolumes": [{"name": "tmp", "emptyDir": {}}],
        "extraVolumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
        "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0}},
    },
    "scheduler": {
        "replicas": 2,
        "image": {"tag": "v1.36.1"},
        "imagePullSecrets": [{"name": "regcred"}],
        "podAnnotations": {"a": "b"},
        "extraEnv": [{"name": "Z", "value": "1"}],
        "extraArgs": ["--kube-api-qps=50"],
        "extraVolumes": [{"name": "tmp", "emptyDir": {}}],
        "extraVolumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
        "extenderConfig": {"manageNeuronDevice": True},
    },
    "dra": {
        "enabled": True,
        "image": {"digest": DIGEST},
        "imagePullSecrets": [{"name": "regcred"}],
        "nodeSelector": {"neuron.k8s.local/dra": "true"},
        "fake": {
            "enabled": True,
            "instanceTypeLabel": "node.kubernetes.io/instance-type",
            "healthFile": "/var/lib/neuron-fake/unhealthy",
        },
        "serviceAccount": {"annotations": {"a": "b"}},
        "podAnnotations": {"a": "b"},
        "podLabels": {"c": "d"},
        "extraEnv": [{"name": "X", "value": "1"}],
        "extraArgs": ["--x"],
        "extraVolumes": [{"name": "tmp", "emptyDir": {}}],
        "extraVolumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
        "updateStrategy": {"type": "OnDelete"},
    },
    "test": {
        "nodeSelector": {"pool": "neuron"},
        "imagePullSecrets": [{"name": "regcred"}],
    },
}

CASES = {
    "defaults": {},
    "everything": {"values": EVERYTHING},
    "no-scheduler": {"values": {"scheduler": {"enabled": False}}},
    **{f"example-{p.stem}": {"files": [p.name]} for p in sorted(EXAMPLES.glob("*.yaml"))},
}


def all_objects():
    params = []
    for minor, release in RELEASES.items():
        for case, kwargs in CASES.items():
            objs = render(kwargs.get("values"), files=kwargs.get("files", ()), kube_version=release)
            for obj in objs:
                name = f"{minor}:{case}:{obj['kind']}/{obj['metadata']['name']}"
                params.append(pytest.param(minor, obj, id=name))
    return params


@pytest.mark.parametrize("minor", sorted(RELEASES))
def test_validator_uses_the_schemas_of_the_target_release(minor):
    service_account = {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "x"}}
    assert kubernetes_validate.validate(service_account, minor, strict=True) == minor


@pytest.mark.parametrize(("minor", "obj"), all_objects())
def test_object_is_valid_kubernetes_of_each_tested_release(minor, obj):
    try:
        kubernetes_validate.validate(obj, minor, strict=True)
    except kubernetes_validate.ValidationError as error:
        pytest.fail(f"{'/'.join(str(p) for p in error.path)}: {error.message}")


def test_validator_catches_a_misplaced_field():
    bad = {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": {"name": "x", "namespace": "y"},
        "spec": {},
    }
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(bad, K8S_VERSION, strict=True)
