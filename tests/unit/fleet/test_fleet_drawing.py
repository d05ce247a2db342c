"""The drawing, checked in plain text: devices in topology order, a letter per pod."""

from fleetdata import dp_node, recorded_pod
from neuron_k8s.fleet.drawing import draw_node, draw_nodes, ranges
from neuron_k8s.fleet.model import node_views

NEURON, CORE = "aws.amazon.com/neuron", "aws.amazon.com/neuroncore"


def drawn(node, pods=(), colour=False):
    return draw_node(node_views([node], pods, [], [])[0], colour)


def test_trn1_32xlarge_is_drawn_as_four_rows_of_four_devices_with_a_letter_per_pod() -> None:
    a = recorded_pod("a", "n", "trn1.32xlarge", [("c", NEURON, list(range(0, 8)))])
    b = recorded_pod("b", "n", "trn1.32xlarge", [("c", CORE, [9])])
    lines = drawn(dp_node("n", "trn1.32xlarge"), [a, b])
    assert lines[3:7] == [
        "     0 [AA]  1 [AA]  2 [AA]  3 [AA]",
        "     4 [.B]  5 [..]  6 [..]  7 [..]",
        "     8 [..]  9 [..] 10 [..] 11 [..]",
        "    12 [..] 13 [..] 14 [..] 15 [..]",
    ]


def test_a_ring_wraps_every_eight_devices() -> None:
    lines = drawn(dp_node("n", "inf2.48xlarge"))
    assert lines[3:5] == [
        "     0 [..]  1 [..]  2 [..]  3 [..]  4 [..]  5 [..]  6 [..]  7 [..]",
        "     8 [..]  9 [..] 10 [..] 11 [..]",
    ]


def test_each_holder_is_listed_with_its_container_cores_and_devices() -> None:
    a = recorded_pod("a", "n", "inf2.xlarge", [("app", CORE, [1])])
    assert "  A team/a app: cores 1 (devices 0)" in drawn(dp_node("n", "inf2.xlarge"), [a])


def test_an_unhealthy_device_is_drawn_between_bangs_with_its_free_cores_crossed() -> None:
    node = dp_node("n", "inf2.48xlarge")
    node["metadata"]["annotations"]["neuron.k8s.local/unhealthy-devices"] = "1"
    lines = drawn(node)
    assert lines[3].startswith("     0 [..]  1 !xx!  2 [..]")
    assert "  x device 1 unhealthy: reported unhealthy by the device plugin" in lines


def test_the_room_line_gives_what_fits_and_the_fragmentation() -> None:
    a = recorded_pod("a", "n", "trn1.32xlarge", [("c", NEURON, [0, 1])])
    lines = drawn(dp_node("n", "trn1.32xlarge"), [a])
    assert "  fits now: 8 devices, 30 cores; fragmentation 0.00" in lines
    assert "  free aligned blocks (devices:count): 16:0, 8:1, 4:3, 1:15" in lines


def test_plain_text_has_no_escape_codes_and_colour_has_them() -> None:
    a = recorded_pod("a", "n", "inf2.xlarge", [("app", CORE, [1])])
    node = dp_node("n", "inf2.xlarge")
    assert "\x1b[" not in "\n".join(drawn(node, [a]))
    assert "\x1b[36mA\x1b[0m" in "\n".join(drawn(node, [a], colour=True))


def test_no_neuron_nodes_says_so() -> None:
    assert draw_nodes([]) == "No Neuron nodes.\n"


def test_ranges_join_runs() -> None:
    assert ranges([6, 0, 1, 2, 3, 9, 10]) == "0-3,6,9-10"
