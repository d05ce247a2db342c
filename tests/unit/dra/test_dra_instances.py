"""One checkpoint per driver instance: the two drivers of a rolling update (maxSurge 1) share
<plugins-dir>/<driver>, each writes its own checkpoint-<POD_UID>.json, and a starting instance
adopts what the others recorded and removes the files of those no longer running."""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Callable, Iterator

import pytest
from dra_harness import NODE, Dirs, FakeApi, FakeKubelet, answer, make_claim, prepare
from driver_checks import StartDriver
from neuron_k8s.dra.checkpoint import Checkpoint, Prepared, PreparedDevice
from neuron_k8s.dra.driver import Driver


def record(device: int) -> Prepared:
    name = f"neurondevice{device}"
    return Prepared("default", f"claim-{device}", NODE, (PreparedDevice("r", name, ()),))


def written(folder: str, pod_uid: str, **claims: Prepared) -> str:
    """A checkpoint as the instance `pod_uid` ("": the unsuffixed one) leaves it."""
    cp = Checkpoint.of_instance(folder, pod_uid)
    for uid, prepared in claims.items():
        cp.put(uid, prepared)
    return cp.path


def everything(_: str) -> bool:
    return True


@pytest.fixture
def folder(short_dir: str) -> str:
    return os.path.join(short_dir, "state")


@pytest.fixture
def serving(folder: str) -> Iterator[Callable[[str], None]]:
    """Makes an instance look running: something listens on its DRA socket."""
    servers: list[socket.socket] = []

    def serve(pod_uid: str) -> None:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.bind(os.path.join(folder, f"dra-{pod_uid}.sock"))
        s.listen(1)
        servers.append(s)

    yield serve
    for s in servers:
        s.close()


# --- adopting, at the checkpoint ---
def test_a_stopped_instances_claims_are_adopted_and_its_file_removed(folder: str) -> None:
    theirs = written(folder, "old", u1=record(1))
    mine = Checkpoint.of_instance(folder, "new")
    assert mine.adopt(everything) == ["u1"]
    assert Checkpoint.of_instance(folder, "new").get("u1") == record(1)
    assert not os.path.exists(theirs)


def test_a_running_instances_claims_are_adopted_and_its_file_left_to_it(
    folder: str, serving: Callable[[str], None]
) -> None:
    theirs = written(folder, "old", u1=record(1))
    serving("old")
    mine = Checkpoint.of_instance(folder, "new")
    mine.adopt(everything)
    assert mine.uids() == {"u1"}
    assert Checkpoint(theirs).uids() == {"u1"}


def test_a_killed_instance_whose_socket_file_was_left_counts_as_stopped(folder: str) -> None:
    theirs = written(folder, "old", u1=record(1))
    with contextlib.closing(socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)) as s:
        s.bind(os.path.join(folder, "dra-old.sock"))  # bound, never served again
    Checkpoint.of_instance(folder, "new").adopt(everything)
    assert not os.path.exists(theirs)


def test_claims_the_caller_does_not_keep_are_not_adopted(folder: str) -> None:
    written(folder, "old", u1=record(1), u2=record(2))
    mine = Checkpoint.of_instance(folder, "new")
    mine.adopt(lambda uid: uid == "u2")
    assert mine.uids() == {"u2"}


def test_an_instances_own_record_of_a_claim_wins_over_a_predecessors(folder: str) -> None:
    written(folder, "old", u1=record(1))
    written(folder, "new", u1=record(7))
    mine = Checkpoint.of_instance(folder, "new")
    assert mine.adopt(everything) == []
    assert mine.get("u1") == record(7)


def test_the_unsuffixed_checkpoint_of_an_older_version_is_adopted_and_removed(
    folder: str,
) -> None:
    legacy = written(folder, "", u1=record(1))
    assert os.path.basename(legacy) == "checkpoint.json"
    mine = Checkpoint.of_instance(folder, "new")
    mine.adopt(everything)
    assert mine.uids() == {"u1"}
    assert not os.path.exists(legacy)


def test_the_unsuffixed_checkpoint_stays_while_another_instance_runs(
    folder: str, serving: Callable[[str], None]
) -> None:
    legacy = written(folder, "", u1=record(1))
    serving("old")
    Checkpoint.of_instance(folder, "new").adopt(everything)
    assert os.path.exists(legacy)


def test_an_unreadable_predecessor_file_adopts_nothing(folder: str) -> None:
    os.makedirs(folder)
    with open(os.path.join(folder, "checkpoint-old.json"), "w") as f:
        f.write('{"version": 1, "claims": {"u1": ')
    mine = Checkpoint.of_instance(folder, "new")
    assert mine.adopt(everything) == []
    assert mine.uids() == set()


# --- two drivers in one folder ---
def state_dir(dirs: Dirs) -> str:
    return os.path.join(dirs.plugins, "neuron.aws.com")


def on_disk(dirs: Dirs) -> set[str]:
    """Every claim any checkpoint file in the drivers' folder records."""
    names = [n for n in os.listdir(state_dir(dirs)) if n.endswith(".json")]
    return set().union(*(Checkpoint(os.path.join(state_dir(dirs), n)).uids() for n in names))


def stub_of(kubelet: FakeKubelet, driver: Driver) -> object:
    assert driver.sockets is not None
    return kubelet.stub(endpoint=driver.sockets.dra_socket)


def test_two_instances_sharing_a_folder_each_keep_the_claims_they_prepared_on_disk(
    kubelet: FakeKubelet, start_driver: StartDriver, api: FakeApi, dirs: Dirs
) -> None:
    old, new = start_driver(pod_uid="old"), start_driver(pod_uid="new")
    c1 = api.add_claim(make_claim("c1", {"gpus": [1]}, NODE))
    c2 = api.add_claim(make_claim("c2", {"gpus": [2]}, NODE))
    answer(prepare(stub_of(kubelet, old), c1), c1)
    answer(prepare(stub_of(kubelet, new), c2), c2)
    assert on_disk(dirs) == {"uid-c1", "uid-c2"}


def test_a_successor_started_after_both_answers_both_claims_from_their_checkpoints(
    kubelet: FakeKubelet, start_driver: StartDriver, api: FakeApi, dirs: Dirs
) -> None:
    old, new = start_driver(pod_uid="old"), start_driver(pod_uid="new")
    c1 = api.add_claim(make_claim("c1", {"gpus": [1]}, NODE))
    c2 = api.add_claim(make_claim("c2", {"gpus": [2]}, NODE))
    before = [
        answer(prepare(stub_of(kubelet, old), c1), c1),
        answer(prepare(stub_of(kubelet, new), c2), c2),
    ]
    old.stop()
    new.stop()
    api.delete_claim("uid-c1")  # gone from the API: only a checkpoint can answer
    api.delete_claim("uid-c2")
    successor = start_driver(pod_uid="next")
    resp = prepare(stub_of(kubelet, successor), c1, c2)
    assert [answer(resp, c1), answer(resp, c2)] == before
    assert sorted(n for n in os.listdir(state_dir(dirs)) if n.endswith(".json")) == [
        "checkpoint-next.json"
    ]
