"""Socket file names: each start of a server has a name of its own, a path the kubelet refuses
as "already connected" is left for a new one, and only this plugin's dead sockets are cleaned.

Why: a 1.37 kubelet refuses a registration on a path it still holds and, in that refusal, drops
its own record of the first connection, so it never learns that connection ended and refuses the
path for good (docs/architecture.md, "Socket names"). AWS's plugin uses fixed names.
"""

from __future__ import annotations

import os
import re
import socket
from collections.abc import Callable

from dp_harness import NEURON, NEURONCORE, FakeKubelet, allocate, wait_until
from neuron_k8s.deviceplugin.plugin import Plugin
from neuron_k8s.deviceplugin.registration import remove_stale_sockets

StartPlugin = Callable[..., Plugin]
OURS = re.compile(r"^(neuron|neuroncore)-devplugin-[0-9a-f]{8}\.sock$")


def dead_socket(path: str) -> None:
    """A socket file nobody listens on, as a killed process leaves it."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.bind(path)


def test_two_plugins_on_one_directory_register_different_paths(
    kubelet: FakeKubelet, start_plugin: StartPlugin
) -> None:
    start_plugin(fake_instance_type="inf2.xlarge")
    start_plugin(fake_instance_type="inf2.xlarge")
    endpoints = [r.endpoint for r in kubelet.registered(NEURON)]
    assert len(endpoints) == 2 and len(set(endpoints)) == 2
    assert all(OURS.match(e) for e in endpoints)


def test_a_kubelet_restart_is_answered_on_a_new_socket_name(
    kubelet: FakeKubelet, start_plugin: StartPlugin
) -> None:
    start_plugin(fake_instance_type="inf2.xlarge")
    first = kubelet.registered(NEURONCORE)[-1].endpoint
    kubelet.restart()
    wait_until(lambda: len(kubelet.registered(NEURONCORE)) == 2, 5, "registered again")
    assert kubelet.registered(NEURONCORE)[-1].endpoint != first
    allocate(kubelet.stub(NEURONCORE), ["0"])


def test_a_path_refused_as_already_connected_is_given_up_for_a_new_one(
    kubelet: FakeKubelet, start_plugin: StartPlugin, short_dir: str
) -> None:
    kubelet.hold = 2  # the first registration of each resource
    plugin = start_plugin(fake_instance_type="inf2.xlarge")
    assert plugin.manager is not None and plugin.manager.ready
    assert len(kubelet.refused) == 2
    registered = {kubelet.registered(r)[-1].endpoint for r in (NEURON, NEURONCORE)}
    assert registered.isdisjoint(kubelet.refused)
    assert not any(os.path.exists(os.path.join(short_dir, e)) for e in kubelet.refused)
    allocate(kubelet.stub(NEURON), ["0"])


def test_start_removes_only_this_plugins_dead_sockets(short_dir: str) -> None:
    dead_socket(os.path.join(short_dir, "neuron-devplugin-0badcafe.sock"))
    dead_socket(os.path.join(short_dir, "neuron-devplugin.sock"))  # AWS's name: not ours
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as live:
        live.bind(os.path.join(short_dir, "neuroncore-devplugin-1234abcd.sock"))
        live.listen(1)
        assert remove_stale_sockets(short_dir) == ["neuron-devplugin-0badcafe.sock"]
    assert sorted(os.listdir(short_dir)) == [
        "neuron-devplugin.sock",
        "neuroncore-devplugin-1234abcd.sock",
    ]


def test_a_plugin_started_after_a_killed_one_cleans_its_socket(
    kubelet: FakeKubelet, start_plugin: StartPlugin, short_dir: str
) -> None:
    dead_socket(os.path.join(short_dir, "neuroncore-devplugin-0badcafe.sock"))
    plugin = start_plugin(fake_instance_type="inf2.xlarge")
    assert plugin.manager is not None
    mine = {os.path.basename(s.socket_path) for s in plugin.manager.servers}
    assert set(os.listdir(short_dir)) == mine | {os.path.basename(kubelet.socket)}
