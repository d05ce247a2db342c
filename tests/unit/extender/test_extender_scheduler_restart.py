"""Rolling my-scheduler for a new CA (extender/schedulerrestart.py): kube-scheduler loads the CA
that verifies the extender only at start, so when the extender's client CA changes it sets an
annotation of my-scheduler's pod template, from a thread of its own, retrying until it lands."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from extender_fakeapi import FakeApiServer
from extender_helpers import wait_for
from neuron_k8s.extender import cli
from neuron_k8s.extender.schedulerrestart import (
    ANNOTATION,
    STRATEGIC_MERGE,
    SchedulerRestarter,
    ca_hash,
    short,
)
from neuron_k8s.kube import KubeClient

NS, NAME = "neuron", "my-scheduler"
KEY = f"{NS}/{NAME}"
DEPLOYMENTS = r"/deployments/my-scheduler$"
OLD, NEW = ca_hash(b"old CA"), ca_hash(b"new CA")


def deployment(annotation: str | None = None) -> dict[str, Any]:
    annotations = {"checksum/config": "abc"}
    if annotation is not None:
        annotations[ANNOTATION] = annotation
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": NAME, "namespace": NS},
        "spec": {"template": {"metadata": {"annotations": annotations}}},
    }


def template_annotations(api: FakeApiServer) -> dict[str, str]:
    return dict(api.deployments[KEY]["spec"]["template"]["metadata"]["annotations"])


class Running:
    """A started restarter, its outcomes, and an event set each time it polls the TLS files
    (which it does only when no patch is due: the start check is then over)."""

    def __init__(self, restarter: SchedulerRestarter) -> None:
        self.restarter = restarter
        self.outcomes: list[str] = []
        self.polled = threading.Event()

    def poll(self) -> None:
        self.polled.set()


@pytest.fixture
def start(api: FakeApiServer) -> Iterator[Callable[..., Running]]:
    started: list[Running] = []

    def run(current: str = OLD, poll: Callable[[], object] | None = None) -> Running:
        restarter = SchedulerRestarter(
            KubeClient.for_url(api.url), NS, NAME, poll_every=0.01, backoff=(0.01, 0.04)
        )
        r = Running(restarter)
        restarter.start(current, poll=poll or r.poll, outcome=r.outcomes.append)
        started.append(r)
        return r

    yield run
    for r in started:
        r.restarter.stop()
        r.restarter.join(5)


def patches(api: FakeApiServer) -> list[Any]:
    return [c.body for c in api.calls_of("PATCH", "/deployments/my-scheduler")]


def test_a_new_ca_sets_the_annotation_of_the_scheduler_pod_template(api, start) -> None:
    api.deployments[KEY] = deployment()
    r = start()
    r.restarter.ca_changed(NEW)
    wait_for(lambda: template_annotations(api).get(ANNOTATION) == NEW[:16], what="annotation")
    assert template_annotations(api)["checksum/config"] == "abc"
    assert patches(api) == [
        {"spec": {"template": {"metadata": {"annotations": {ANNOTATION: short(NEW)}}}}}
    ]


def test_the_patch_is_a_strategic_merge_patch_of_apps_v1(api, start) -> None:
    api.deployments[KEY] = deployment()
    start().restarter.ca_changed(NEW)
    wait_for(lambda: patches(api), what="a patch")
    call = api.calls_of("PATCH", "/deployments/my-scheduler")[0]
    assert call.path == f"/apis/apps/v1/namespaces/{NS}/deployments/{NAME}"
    assert call.content_type == STRATEGIC_MERGE


def test_at_start_an_annotation_of_another_ca_is_set_to_the_current_one(api, start) -> None:
    api.deployments[KEY] = deployment(annotation=short(OLD))
    start(current=NEW)
    wait_for(lambda: template_annotations(api)[ANNOTATION] == short(NEW), what="annotation")
    assert len(patches(api)) == 1


def test_at_start_an_absent_annotation_is_left_alone(api, start) -> None:
    api.deployments[KEY] = deployment()
    r = start(current=NEW)
    assert r.polled.wait(5), "the start check did not finish"
    assert api.calls_of("GET", "/deployments/my-scheduler")
    assert patches(api) == []


def test_at_start_an_annotation_of_the_current_ca_is_left_alone(api, start) -> None:
    api.deployments[KEY] = deployment(annotation=short(OLD))
    r = start(current=OLD)
    assert r.polled.wait(5), "the start check did not finish"
    assert patches(api) == []


def test_failed_patches_are_retried_until_one_lands(api, start) -> None:
    api.deployments[KEY] = deployment()
    api.fail("PATCH", DEPLOYMENTS, code=500, times=2)
    r = start()
    r.restarter.ca_changed(NEW)
    wait_for(lambda: template_annotations(api).get(ANNOTATION) == short(NEW), what="annotation")
    # The outcome is counted once the PATCH's answer is back, after the fake server applied it.
    wait_for(lambda: r.outcomes[-1:] == ["patched"], what="the patched outcome")
    assert len(patches(api)) == 3
    assert r.outcomes == ["failed", "failed", "patched"]


def test_a_failed_read_at_start_is_retried(api, start) -> None:
    api.deployments[KEY] = deployment(annotation=short(OLD))
    api.fail("GET", DEPLOYMENTS, code=503, times=2)
    start(current=NEW)
    wait_for(lambda: template_annotations(api)[ANNOTATION] == short(NEW), what="annotation")
    assert len(api.calls_of("GET", "/deployments/my-scheduler")) == 3


def test_a_missing_deployment_is_retried_until_it_exists(api, start) -> None:
    r = start()
    r.restarter.ca_changed(NEW)
    wait_for(lambda: len(patches(api)) >= 2, what="retries of a 404")
    api.deployments[KEY] = deployment()
    wait_for(lambda: template_annotations(api).get(ANNOTATION) == short(NEW), what="annotation")
    wait_for(lambda: r.outcomes[-1:] == ["patched"], what="the patched outcome")
    assert set(r.outcomes[:-1]) == {"failed"}


def test_a_change_during_retries_writes_the_latest_ca(api, start) -> None:
    api.deployments[KEY] = deployment()
    api.fail("PATCH", DEPLOYMENTS, code=500, times=3)
    r = start()
    r.restarter.ca_changed(NEW)
    wait_for(lambda: patches(api), what="a first attempt")
    latest = ca_hash(b"newest CA")
    r.restarter.ca_changed(latest)
    wait_for(lambda: template_annotations(api).get(ANNOTATION) == short(latest), what="latest")


def test_an_unreachable_api_server_never_raises_and_is_retried(api, start) -> None:
    api.deployments[KEY] = deployment()
    restarter = SchedulerRestarter(
        KubeClient.for_url("http://127.0.0.1:1"), NS, NAME, poll_every=0.01, backoff=(0.01, 0.02)
    )
    outcomes: list[str] = []
    restarter.start(OLD, outcome=outcomes.append)
    restarter.ca_changed(NEW)  # returns at once: the thread does the work
    wait_for(lambda: outcomes.count("failed") >= 3, what="retries")
    assert restarter._thread.is_alive()
    restarter.stop()
    restarter.join(5)
    assert not restarter._thread.is_alive()


def test_a_failing_tls_poll_does_not_stop_the_restarter(api, start) -> None:
    api.deployments[KEY] = deployment()
    polls: list[int] = []

    def poll() -> None:
        polls.append(1)
        raise OSError("half-written files")

    r = start(poll=poll)
    wait_for(lambda: len(polls) >= 2, what="polls")
    r.restarter.ca_changed(NEW)
    wait_for(lambda: template_annotations(api).get(ANNOTATION) == short(NEW), what="annotation")


def test_scheduler_deployment_flag_reads_its_environment_variable(monkeypatch) -> None:
    monkeypatch.setenv("NEURON_EXTENDER_SCHEDULER_DEPLOYMENT", "neuron-scheduler")
    assert cli.parser().parse_args([]).scheduler_deployment == "neuron-scheduler"


def test_scheduler_deployment_flag_is_off_by_default(monkeypatch) -> None:
    monkeypatch.delenv("NEURON_EXTENDER_SCHEDULER_DEPLOYMENT", raising=False)
    assert cli.parser().parse_args([]).scheduler_deployment == ""
