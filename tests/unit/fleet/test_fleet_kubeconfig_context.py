"""--context: the kubeconfig's named context, and its namespace, instead of the current one."""

import pytest
import yaml
from neuron_k8s.kubeconfig import read_kubeconfig


def kubeconfig(tmp_path):
    doc = {
        "current-context": "one",
        "clusters": [
            {"name": "c1", "cluster": {"server": "http://one:1"}},
            {"name": "c2", "cluster": {"server": "http://two:2"}},
        ],
        "users": [{"name": "u", "user": {"token": "t"}}],
        "contexts": [
            {"name": "one", "context": {"cluster": "c1", "user": "u"}},
            {"name": "two", "context": {"cluster": "c2", "user": "u", "namespace": "ml"}},
        ],
    }
    path = tmp_path / "config"
    path.write_text(yaml.safe_dump(doc))
    return str(path)


def test_the_current_context_by_default(tmp_path) -> None:
    c = read_kubeconfig(kubeconfig(tmp_path))
    assert (c.server, c.namespace) == ("http://one:1", None)


def test_a_named_context_gives_its_server_and_namespace(tmp_path) -> None:
    c = read_kubeconfig(kubeconfig(tmp_path), "two")
    assert (c.server, c.namespace) == ("http://two:2", "ml")


def test_a_context_the_file_has_not_is_refused(tmp_path) -> None:
    with pytest.raises(ValueError, match="no context 'three'"):
        read_kubeconfig(kubeconfig(tmp_path), "three")
