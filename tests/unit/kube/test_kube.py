"""kube.py against a small API server on 127.0.0.1: requests, errors, watches, the Reflector,
and configuration from a kubeconfig file or the pod's service account."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
import yaml
from kube_fakeapi import FakeApi
from neuron_k8s import kube
from neuron_k8s.kube import ApiError, KubeClient, Reflector
from waiting import wait_until


def test_get_returns_the_decoded_body_and_sends_the_token(api: FakeApi) -> None:
    c = KubeClient.for_url(api.url, token="secret")
    assert c.get("/api/v1/pods", {"fieldSelector": "spec.nodeName=n1"})["kind"] == "PodList"
    method, path, headers, _ = api.requests[-1]
    assert (method, path) == ("GET", "/api/v1/pods?fieldSelector=spec.nodeName%3Dn1")
    assert headers["Authorization"] == "Bearer secret"


def test_merge_patch_uses_the_merge_patch_content_type(api: FakeApi) -> None:
    c = KubeClient.for_url(api.url)
    c.merge_patch("/api/v1/namespaces/d/pods/p", {"metadata": {"annotations": {"k": "v"}}})
    method, _, headers, body = api.requests[-1]
    assert method == "PATCH"
    assert headers["Content-Type"] == "application/merge-patch+json"
    assert body == {"metadata": {"annotations": {"k": "v"}}}


def test_post_sends_json(api: FakeApi) -> None:
    c = KubeClient.for_url(api.url)
    assert c.post("/api/v1/x", {"kind": "Binding"}) == {"kind": "Binding"}
    assert api.requests[-1][2]["Content-Type"] == "application/json"


def test_error_status_raises_api_error_with_reason(api: FakeApi) -> None:
    api.status = 403
    with pytest.raises(ApiError) as err:
        KubeClient.for_url(api.url).get("/api/v1/pods")
    assert (err.value.status, err.value.reason) == (403, "Forbidden")
    assert "forbidden" in err.value.message


def test_requests_from_many_threads_reuse_one_kept_alive_connection(api: FakeApi) -> None:
    # Failed before: each thread kept a connection of its own, and the extender serves each of
    # kube-scheduler's connections on a new thread, so every bind opened (and TLS-handshook) a
    # connection to the API server.
    client = KubeClient.for_url(api.url)
    for _ in range(20):
        t = threading.Thread(target=client.get, args=("/api/v1/pods",))
        t.start()
        t.join()
    assert len(api.requests) == 20 and len(api.peers) == 1


def test_concurrent_requests_open_connections_and_keep_a_bounded_few(api: FakeApi) -> None:
    client = KubeClient.for_url(api.url)
    start = threading.Barrier(kube.MAX_IDLE_CONNECTIONS + 4)

    def get() -> None:
        start.wait()
        client.get("/api/v1/pods")

    threads = [threading.Thread(target=get) for _ in range(kube.MAX_IDLE_CONNECTIONS + 4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(client._idle) <= kube.MAX_IDLE_CONNECTIONS


def test_a_connection_the_server_closes_is_not_kept(api: FakeApi) -> None:
    api.close_after_answer = True
    client = KubeClient.for_url(api.url)
    client.get("/api/v1/pods")
    client.get("/api/v1/pods")
    assert len(api.peers) == 2 and client._idle == []


def test_unreachable_server_raises_api_error_status_zero() -> None:
    c = KubeClient("http://127.0.0.1:9", timeout=1)
    with pytest.raises(ApiError) as err:
        c.get("/api/v1/pods")
    assert err.value.status == 0


def test_bad_server_address_is_refused() -> None:
    with pytest.raises(ValueError, match="http"):
        KubeClient("ftp://example")


def test_watch_yields_events_until_the_stream_ends(api: FakeApi) -> None:
    api.watch_streams = [
        [
            {"type": "ADDED", "object": {"metadata": {"name": "a"}}},
            {"type": "DELETED", "object": {"metadata": {"name": "a"}}},
        ]
    ]
    events = list(KubeClient.for_url(api.url).watch("/api/v1/pods", {"resourceVersion": "1"}))
    assert [e["type"] for e in events] == ["ADDED", "DELETED"]
    assert "allowWatchBookmarks=true" in api.requests[-1][1]


def test_watch_error_event_raises_with_its_code(api: FakeApi) -> None:
    api.watch_streams = [[{"type": "ERROR", "object": {"code": 410, "reason": "Expired"}}]]
    with pytest.raises(ApiError) as err:
        list(KubeClient.for_url(api.url).watch("/api/v1/pods"))
    assert err.value.status == 410


def test_reflector_lists_then_passes_watch_events_on(api: FakeApi) -> None:
    api.list_body["items"] = [{"metadata": {"name": "a", "resourceVersion": "1"}}]
    api.watch_streams = [
        [
            {"type": "BOOKMARK", "object": {"metadata": {"resourceVersion": "2"}}},
            {"type": "ADDED", "object": {"metadata": {"name": "b", "resourceVersion": "3"}}},
        ]
    ]
    synced: list[list[str]] = []
    events: list[tuple[str, str]] = []
    r = Reflector(
        KubeClient.for_url(api.url),
        "/api/v1/pods",
        None,
        lambda t, o: events.append((t, o["metadata"]["name"])),
        lambda items: synced.append([i["metadata"]["name"] for i in items]),
    )
    r.start()
    try:
        wait_until(lambda: events)
        assert r.synced.is_set()
        assert synced[0] == ["a"]
        assert events[0] == ("ADDED", "b")  # bookmarks only move the version
    finally:
        r.stop()


def test_reflector_items_carry_their_kind(api: FakeApi) -> None:
    api.list_body["items"] = [{"metadata": {"name": "a"}}]
    kinds: list[str] = []
    r = Reflector(
        KubeClient.for_url(api.url),
        "/api/v1/pods",
        None,
        lambda t, o: None,
        lambda items: kinds.extend(i["kind"] for i in items),
    )
    r.start()
    try:
        wait_until(lambda: kinds)
        assert kinds == ["Pod"]
    finally:
        r.stop()


def test_reflector_lists_again_when_the_version_expired(api: FakeApi) -> None:
    api.watch_streams = [[{"type": "ERROR", "object": {"code": 410}}], []]
    lists: list[int] = []
    r = Reflector(
        KubeClient.for_url(api.url),
        "/api/v1/pods",
        None,
        lambda t, o: None,
        lambda items: lists.append(len(items)),
    )
    r.start()
    try:
        wait_until(lambda: len(lists) >= 2)
    finally:
        r.stop()


def test_reflector_resumes_the_watch_from_the_last_version(api: FakeApi) -> None:
    api.watch_streams = [
        [{"type": "ADDED", "object": {"metadata": {"name": "b", "resourceVersion": "7"}}}],
        [],
    ]
    r = Reflector(KubeClient.for_url(api.url), "/api/v1/pods", None, lambda t, o: None)
    r.start()
    try:
        wait_until(lambda: sum("watch=true" in p for _, p, _, _ in api.requests) >= 2)
        watches = [p for _, p, _, _ in api.requests if "watch=true" in p]
        assert "resourceVersion=7" in watches[1]
    finally:
        r.stop()


def test_kubeconfig_with_token_and_insecure_server(api: FakeApi, tmp_path: Path) -> None:
    cfg = {
        "current-context": "ctx",
        "contexts": [{"name": "ctx", "context": {"cluster": "c", "user": "u"}}],
        "clusters": [{"name": "c", "cluster": {"server": api.url}}],
        "users": [{"name": "u", "user": {"token": "t0k"}}],
    }
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump(cfg))
    c = KubeClient.from_config(str(path))
    assert c is not None
    c.get("/api/v1/pods")
    assert api.requests[-1][2]["Authorization"] == "Bearer t0k"


def test_kubeconfig_without_a_server_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump({"clusters": [], "contexts": [], "users": []}))
    with pytest.raises(ValueError, match="no server"):
        KubeClient.from_config(str(path))


def test_no_kubeconfig_and_no_service_account_means_standalone(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.setattr(kube, "SERVICE_ACCOUNT_DIR", str(tmp_path))
    assert KubeClient.from_config(None) is None


def test_in_cluster_config_reads_the_rotating_token_file(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, api: FakeApi
) -> None:
    (tmp_path / "token").write_text("first")
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "127.0.0.1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", "443")
    monkeypatch.setattr(kube, "SERVICE_ACCOUNT_DIR", str(tmp_path))
    monkeypatch.setattr(kube.ssl, "create_default_context", lambda cafile=None: None)
    c = KubeClient.from_config(None)
    assert c is not None and c.server == "https://127.0.0.1:443"
    assert c._headers()["Authorization"] == "Bearer first"
    (tmp_path / "token").write_text("second")
    assert c._headers()["Authorization"] == "Bearer second"
