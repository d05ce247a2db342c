"""The soak's fault schedule: one fault a minute, the six kinds in turn, targets in rotation,
and a pause or an unhealthy device always undone."""

import pytest
from soak_faults import ORDER, Fault, Schedule, inject

SCHEDULE = Schedule(["p1", "p2"], ["d1", "d2"], "cp", every=60, first=30)


def test_faults_fall_due_one_a_minute_after_the_first() -> None:
    assert [SCHEDULE.due(t) for t in (0, 29, 30, 89, 90, 151)] == [0, 0, 1, 1, 2, 3]


def test_the_six_kinds_come_in_turn() -> None:
    assert [SCHEDULE.fault(n).kind for n in range(8)] == [*ORDER, ORDER[0], ORDER[1]]


def test_each_kind_takes_its_targets_in_rotation() -> None:
    plugin_kills = [SCHEDULE.fault(n).target for n in range(1, 6 * 3, 6)]
    assert plugin_kills == ["p1", "p2", "p1"]
    kubelets = [SCHEDULE.fault(n).target for n in range(3, 6 * 5, 6)]
    assert kubelets == ["p1", "p2", "d1", "d2", "p1"]
    assert SCHEDULE.fault(4).target == "cp"


class Recorder:
    def __init__(self, kill: int = 1, fail_on: str = "") -> None:
        self.calls: list[tuple[str, ...]] = []
        self.kill = kill
        self.fail_on = fail_on

    def delete_component_pods(self, component: str, node: str | None) -> int:
        self.calls.append(("delete", component, str(node)))
        return self.kill

    def docker(self, *args: str) -> None:
        self.calls.append(("docker", *args))


def test_a_paused_control_plane_is_unpaused_even_when_the_wait_is_interrupted() -> None:
    rec = Recorder()

    def interrupted(_: float) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        inject(rec, Fault(ORDER[4], "cp"), sleep=interrupted)
    assert rec.calls == [("docker", "pause", "cp"), ("docker", "unpause", "cp")]


def test_an_unhealthy_device_loses_its_device_node_then_gets_it_back() -> None:
    rec = Recorder()
    inject(rec, Fault(ORDER[5], "p1", device=3), sleep=lambda _: None)
    assert rec.calls[0][:3] == ("docker", "exec", "p1")
    assert "rm -f /dev/neuron3" in rec.calls[0][-1]
    assert "mknod -m 666 /dev/neuron3 c 1 3" in rec.calls[1][-1]


def test_killing_a_component_with_no_pod_is_an_error() -> None:
    with pytest.raises(RuntimeError, match="no such pod"):
        inject(Recorder(kill=0), Fault(ORDER[2], "d1"))
