"""Certificates kept in the cluster by the extender (extender/clustercerts.py, the chart's TLS
mode `chart`): made when absent, kept when good (a restart or a second replica writes
nothing), renewed before expiry, a new CA only near the CA's own expiry, and anything else in
the Secrets replaced."""

from __future__ import annotations

import base64
import copy
import datetime as dt
from pathlib import Path
from typing import Any

import pytest
from jsonhttp import write_kubeconfig
from neuron_k8s.extender import certissuer, cli
from neuron_k8s.extender.certissuer import KeyPair
from neuron_k8s.extender.clustercerts import ClusterCerts, Settings
from neuron_k8s.kube import ApiError

NS = "neuron"
CA, CLIENT = "neuron-extender-ca", "neuron-scheduler-client-cert"
NAMES = ("neuron-extender", "neuron-extender.neuron.svc")
NOW = dt.datetime(2026, 12, 6, 12, 0, tzinfo=dt.UTC)
DAY = dt.timedelta(days=1)


class FakeSecrets:
    """Secrets of one namespace behind get/post/PUT/DELETE, with resourceVersions and 409s."""

    def __init__(self) -> None:
        self.store: dict[str, dict[str, Any]] = {}
        self.writes: list[tuple[str, str]] = []
        self.version = 0
        self.before_write: list[Any] = []  # callables run before the next write (races)
        self.fail_next: list[ApiError] = []

    def _name(self, path: str) -> str:
        return path.rsplit("/", 1)[1]

    def get(self, path: str, params: Any = None, timeout: Any = None) -> dict[str, Any]:
        if self.fail_next:
            raise self.fail_next.pop(0)
        if "/deployments/" in path:
            return {"metadata": {"name": self._name(path), "uid": "uid-of-" + self._name(path)}}
        name = self._name(path)
        if name not in self.store:
            raise ApiError(404, "NotFound", f"secrets {name} not found")
        return copy.deepcopy(self.store[name])

    def _stamp(self, body: dict[str, Any]) -> None:
        self.version += 1
        body["metadata"]["resourceVersion"] = str(self.version)
        self.store[body["metadata"]["name"]] = copy.deepcopy(body)

    def post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        while self.before_write:
            self.before_write.pop(0)()
        name = body["metadata"]["name"]
        if name in self.store:
            raise ApiError(409, "AlreadyExists", f"secrets {name} already exists")
        self.writes.append(("POST", name))
        self._stamp(body)
        return body

    def request(self, method: str, path: str, body: Any = None, **_: Any) -> dict[str, Any]:
        while self.before_write:
            self.before_write.pop(0)()
        name = self._name(path)
        self.writes.append((method, name))
        if method == "DELETE":
            del self.store[name]
            return {}
        assert method == "PUT"
        if body["metadata"]["resourceVersion"] != self.store[name]["metadata"]["resourceVersion"]:
            raise ApiError(409, "Conflict", "the object has been modified")
        self._stamp(body)
        return body

    def data(self, name: str) -> dict[str, bytes]:
        return {k: base64.b64decode(v) for k, v in self.store[name]["data"].items()}

    def put_raw(self, name: str, data: dict[str, str], type_: str = "kubernetes.io/tls") -> None:
        self._stamp({"metadata": {"name": name}, "type": type_, "data": data})


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> dt.datetime:
        return self.now


@pytest.fixture
def api() -> FakeSecrets:
    return FakeSecrets()


@pytest.fixture
def clock() -> Clock:
    return Clock()


def replica(
    api: FakeSecrets, clock: Clock, out: Path, names: tuple[str, ...] = NAMES
) -> ClusterCerts:
    out.mkdir(exist_ok=True)
    settings = Settings(NS, CA, CLIENT, "my-scheduler", names, str(out))
    return ClusterCerts(api, settings, clock=clock)  # type: ignore[arg-type]


def server_files(out: Path) -> dict[str, bytes]:
    return {n: (out / n).read_bytes() for n in ("tls.crt", "tls.key", "ca.crt")}


def test_a_fresh_install_gets_a_ca_a_client_secret_and_server_files(
    api: FakeSecrets, clock: Clock, tmp_path: Path
) -> None:
    replica(api, clock, tmp_path / "a").ensure()
    ca = api.data(CA)
    client = api.data(CLIENT)
    files = server_files(tmp_path / "a")
    assert client["ca.crt"] == ca["tls.crt"] == files["ca.crt"]
    assert certissuer.signed_by(client["tls.crt"], ca["tls.crt"])
    assert certissuer.signed_by(files["tls.crt"], ca["tls.crt"])
    assert certissuer.dns_names(files["tls.crt"]) == NAMES
    assert api.store[CLIENT]["type"] == "kubernetes.io/tls"


def test_my_scheduler_s_secret_holds_no_key_but_its_own(
    api: FakeSecrets, clock: Clock, tmp_path: Path
) -> None:
    replica(api, clock, tmp_path / "a").ensure()
    client = api.data(CLIENT)
    assert set(client) == {"tls.crt", "tls.key", "ca.crt"}
    assert client["tls.key"] != api.data(CA)["tls.key"]
    assert certissuer.usable_for(KeyPair(client["tls.crt"], client["tls.key"]), NOW, DAY)


def test_a_restart_or_second_replica_writes_nothing_to_the_api(
    api: FakeSecrets, clock: Clock, tmp_path: Path
) -> None:
    replica(api, clock, tmp_path / "a").ensure()
    writes = list(api.writes)
    replica(api, clock, tmp_path / "a").ensure()
    replica(api, clock, tmp_path / "b").ensure()
    assert api.writes == writes
    assert server_files(tmp_path / "b")["ca.crt"] == api.data(CA)["tls.crt"]


def test_a_restart_keeps_its_server_files(api: FakeSecrets, clock: Clock, tmp_path: Path) -> None:
    replica(api, clock, tmp_path / "a").ensure()
    before = server_files(tmp_path / "a")
    replica(api, clock, tmp_path / "a").ensure()
    assert server_files(tmp_path / "a") == before


def test_leaves_are_renewed_before_expiry_under_the_same_ca(
    api: FakeSecrets, clock: Clock, tmp_path: Path
) -> None:
    r = replica(api, clock, tmp_path / "a")
    r.ensure()
    ca, client, files = api.data(CA), api.data(CLIENT), server_files(tmp_path / "a")
    clock.now = NOW + 340 * DAY  # 25 days left of 365; renewal starts at 30
    r.ensure()
    assert api.data(CA) == ca
    assert api.data(CLIENT)["tls.crt"] != client["tls.crt"]
    assert server_files(tmp_path / "a")["tls.crt"] != files["tls.crt"]
    assert server_files(tmp_path / "a")["ca.crt"] == files["ca.crt"]


def test_the_ca_is_renewed_only_near_its_own_expiry_and_everything_follows(
    api: FakeSecrets, clock: Clock, tmp_path: Path
) -> None:
    r = replica(api, clock, tmp_path / "a")
    r.ensure()
    old_ca = api.data(CA)["tls.crt"]
    clock.now = NOW + 3600 * DAY  # 50 days left; the CA renews at 60
    r.ensure()
    new_ca = api.data(CA)["tls.crt"]
    assert new_ca != old_ca
    assert certissuer.signed_by(api.data(CLIENT)["tls.crt"], new_ca)
    assert api.data(CLIENT)["ca.crt"] == new_ca
    assert server_files(tmp_path / "a")["ca.crt"] == new_ca


def test_a_new_service_name_gets_a_new_server_certificate(
    api: FakeSecrets, clock: Clock, tmp_path: Path
) -> None:
    replica(api, clock, tmp_path / "a").ensure()
    names = (*NAMES, "neuron-extender.neuron.svc.cluster.local")
    replica(api, clock, tmp_path / "a", names).ensure()
    assert certissuer.dns_names(server_files(tmp_path / "a")["tls.crt"]) == names


@pytest.mark.parametrize(
    "data",
    [
        {"tls.crt": "!!!", "tls.key": "!!!"},
        {"tls.crt": base64.b64encode(b"not a certificate").decode(), "tls.key": "AA=="},
        {},
    ],
    ids=["not-base64", "not-a-certificate", "empty"],
)
def test_a_broken_ca_secret_is_replaced(
    api: FakeSecrets, clock: Clock, tmp_path: Path, data: dict[str, str]
) -> None:
    api.put_raw(CA, data)
    replica(api, clock, tmp_path / "a").ensure()
    ca = api.data(CA)
    assert certissuer.usable_for(KeyPair(ca["tls.crt"], ca["tls.key"]), NOW, DAY)


def test_a_client_secret_of_another_ca_is_replaced(
    api: FakeSecrets, clock: Clock, tmp_path: Path
) -> None:
    stranger = certissuer.new_ca("stranger", NOW, 3650)
    leaf = certissuer.sign_leaf(stranger, "my-scheduler", NOW, 365, client=True)
    api.put_raw(
        CLIENT,
        {
            k: base64.b64encode(v).decode()
            for k, v in {"tls.crt": leaf.cert, "tls.key": leaf.key, "ca.crt": stranger.cert}.items()
        },
    )
    replica(api, clock, tmp_path / "a").ensure()
    assert certissuer.signed_by(api.data(CLIENT)["tls.crt"], api.data(CA)["tls.crt"])


def test_an_opaque_secret_of_that_name_is_made_again_as_a_tls_secret(
    api: FakeSecrets, clock: Clock, tmp_path: Path
) -> None:
    api.put_raw(CLIENT, {"password": "aHVudGVyMg=="}, type_="Opaque")
    replica(api, clock, tmp_path / "a").ensure()
    assert api.store[CLIENT]["type"] == "kubernetes.io/tls"
    assert ("DELETE", CLIENT) in api.writes


def test_a_replica_that_loses_the_race_to_create_uses_the_winner_s_ca(
    api: FakeSecrets, clock: Clock, tmp_path: Path
) -> None:
    winner = certissuer.new_ca("winner", NOW, 3650)

    def other_replica_creates() -> None:
        api.put_raw(
            CA,
            {
                "tls.crt": base64.b64encode(winner.cert).decode(),
                "tls.key": base64.b64encode(winner.key).decode(),
            },
        )

    api.before_write.append(other_replica_creates)
    replica(api, clock, tmp_path / "a").ensure()
    assert api.data(CA)["tls.crt"] == winner.cert
    assert server_files(tmp_path / "a")["ca.crt"] == winner.cert


def test_the_api_failing_at_start_is_retried_until_it_answers(
    api: FakeSecrets, clock: Clock, tmp_path: Path
) -> None:
    api.fail_next = [ApiError(0, "Unreachable", "connection refused")] * 2
    assert replica(api, clock, tmp_path / "a").ensure_until_done(backoff=(0.001, 0.001))
    assert (tmp_path / "a" / "tls.crt").exists()


def test_issuing_needs_the_secrets_names_and_the_service_names(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    kubeconfig = write_kubeconfig(str(tmp_path / "kubeconfig"), "http://127.0.0.1:9")
    rc = cli.main(
        ["--tls-issue-dir", str(tmp_path), "--pod-namespace", NS, "--kubeconfig", kubeconfig]
    )
    assert rc == 2
    assert "--tls-issue-dir needs --tls-ca-secret, --tls-client-secret, --tls-dns-names" in (
        capsys.readouterr().err
    )


def test_issuing_and_certificate_files_do_not_go_together(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    kubeconfig = write_kubeconfig(str(tmp_path / "kubeconfig"), "http://127.0.0.1:9")
    rc = cli.main(
        ["--tls-issue-dir", str(tmp_path), "--tls-cert-file", "/a", "--kubeconfig", kubeconfig]
    )
    assert rc == 2
    assert "drop --tls-cert-file" in capsys.readouterr().err


def test_a_renewal_window_as_long_as_half_the_validity_is_refused(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    kubeconfig = write_kubeconfig(str(tmp_path / "kubeconfig"), "http://127.0.0.1:9")
    args = ["--tls-issue-dir", str(tmp_path), "--pod-namespace", NS, "--kubeconfig", kubeconfig]
    args += ["--tls-ca-secret", CA, "--tls-client-secret", CLIENT, "--tls-dns-names", "a,b"]
    assert cli.main([*args, "--tls-validity-days", "60", "--tls-renew-before-days", "30"]) == 2
    assert "--tls-renew-before-days must be less than half" in capsys.readouterr().err


def test_a_fresh_install_rolls_nobody(api: FakeSecrets, clock: Clock, tmp_path: Path) -> None:
    told: list[bytes] = []
    r = replica(api, clock, tmp_path / "a")
    r.on_new_ca = told.append
    r.ensure()
    assert told == []


def test_a_new_ca_while_my_scheduler_had_a_certificate_rolls_it(
    api: FakeSecrets, clock: Clock, tmp_path: Path
) -> None:
    replica(api, clock, tmp_path / "a").ensure()
    del api.store[CA]  # the documented way to force a new CA
    told: list[bytes] = []
    r = replica(api, clock, tmp_path / "a")
    r.on_new_ca = told.append
    r.ensure()
    assert told == [api.data(CA)["tls.crt"]]
    assert told[0] == api.data(CLIENT)["ca.crt"] == server_files(tmp_path / "a")["ca.crt"]


def test_renewed_leaves_under_the_same_ca_roll_nobody(
    api: FakeSecrets, clock: Clock, tmp_path: Path
) -> None:
    told: list[bytes] = []
    r = replica(api, clock, tmp_path / "a")
    r.ensure()
    r.on_new_ca = told.append
    clock.now = NOW + 340 * DAY
    r.ensure()
    assert told == []


def test_the_secrets_are_owned_by_my_scheduler_s_deployment_when_named(
    api: FakeSecrets, clock: Clock, tmp_path: Path
) -> None:
    (tmp_path / "a").mkdir()
    settings = Settings(
        NS,
        CA,
        CLIENT,
        "my-scheduler",
        NAMES,
        str(tmp_path / "a"),
        owner_deployment="neuron-scheduler",
    )
    ClusterCerts(api, settings, clock=clock).ensure()  # type: ignore[arg-type]
    for name in (CA, CLIENT):
        assert api.store[name]["metadata"]["ownerReferences"] == [
            {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "name": "neuron-scheduler",
                "uid": "uid-of-neuron-scheduler",
            }
        ]


def test_a_bad_lifetime_in_the_environment_is_refused_as_a_bad_flag(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NEURON_EXTENDER_TLS_VALIDITY_DAYS", "a year")
    with pytest.raises(SystemExit) as exit_:
        cli.parser().parse_args([])
    assert exit_.value.code == 2
    assert "--tls-validity-days: not a whole number of days: 'a year'" in capsys.readouterr().err
