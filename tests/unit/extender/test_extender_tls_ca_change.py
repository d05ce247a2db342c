"""ServerTls tells of a client CA whose content changed, and only then: a leaf renewed under the
same CA needs no restart of my-scheduler, a new CA does (extender/schedulerrestart.py)."""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

import pytest
from extender_fakeapi import FakeApiServer
from extender_helpers import wait_for
from neuron_k8s.extender.schedulerrestart import ANNOTATION, SchedulerRestarter
from neuron_k8s.extender.tls import ServerTls
from neuron_k8s.kube import KubeClient
from test_extender_tls import make_ca, make_cert


@pytest.fixture
def files(tmp_path: Path) -> Path:
    make_ca(tmp_path, "ca")
    make_cert(tmp_path, "server", "ca")
    return tmp_path


def server_tls(d: Path, changes: list[str]) -> ServerTls:
    return ServerTls(
        str(d / "server.crt"),
        str(d / "server.key"),
        str(d / "ca.crt"),
        check_every=0.0,
        on_ca_change=changes.append,
    )


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def install(d: Path, src: str, dst: str) -> None:
    os.replace(d / src, d / dst)


def new_ca_and_leaf(d: Path) -> None:
    make_ca(d, "new-ca")
    make_cert(d, "new-server", "new-ca")
    install(d, "new-server.crt", "server.crt")
    install(d, "new-server.key", "server.key")
    install(d, "new-ca.crt", "ca.crt")


def test_the_hash_of_the_client_ca_is_the_sha256_of_its_bytes(files: Path) -> None:
    assert server_tls(files, []).ca_hash == sha256(files / "ca.crt")


def test_a_new_client_ca_is_told_with_its_hash(files: Path) -> None:
    changes: list[str] = []
    tls = server_tls(files, changes)
    first = tls()
    new_ca_and_leaf(files)
    wait_for(lambda: tls() is not first, what="the new certificates loaded")
    assert changes == [sha256(files / "ca.crt")]
    assert tls.ca_hash == changes[0]


def test_a_leaf_renewed_under_the_same_ca_is_not_told(files: Path) -> None:
    changes: list[str] = []
    tls = server_tls(files, changes)
    first = tls()
    make_cert(files, "renewed", "ca")
    install(files, "renewed.crt", "server.crt")
    install(files, "renewed.key", "server.key")
    # The CA file rewritten with the same bytes, as a Secret update rewrites every key.
    shutil.copy(files / "ca.crt", files / "ca-copy.crt")
    install(files, "ca-copy.crt", "ca.crt")
    wait_for(lambda: tls() is not first, what="the renewed certificate loaded")
    assert changes == []


def test_a_failing_callback_does_not_fail_the_connection(files: Path) -> None:
    def broken(digest: str) -> None:
        raise RuntimeError("bug")

    tls = ServerTls(
        str(files / "server.crt"),
        str(files / "server.key"),
        str(files / "ca.crt"),
        check_every=0.0,
        on_ca_change=broken,
    )
    first = tls()
    new_ca_and_leaf(files)
    wait_for(lambda: tls() is not first, what="the new certificates loaded")
    assert tls.ca_hash == sha256(files / "ca.crt")


def test_a_new_ca_rolls_the_scheduler_with_no_connection_to_the_verbs(
    files: Path, api: FakeApiServer
) -> None:
    key = "neuron/my-scheduler"
    api.deployments[key] = {"spec": {"template": {"metadata": {"annotations": {}}}}}
    restarter = SchedulerRestarter(
        KubeClient.for_url(api.url), "neuron", "my-scheduler", poll_every=0.01
    )
    tls = ServerTls(
        str(files / "server.crt"),
        str(files / "server.key"),
        str(files / "ca.crt"),
        check_every=0.0,
        on_ca_change=restarter.ca_changed,
    )
    restarter.start(tls.ca_hash, poll=tls)  # the restarter's polls make ServerTls look
    try:
        new_ca_and_leaf(files)
        annotations = lambda: api.deployments[key]["spec"]["template"]["metadata"]["annotations"]  # noqa: E731
        wait_for(lambda: annotations().get(ANNOTATION) == sha256(files / "ca.crt")[:16], 10)
    finally:
        restarter.stop()
        restarter.join(5)
