"""The soak's pod shapes: each kind of pod the issue names, on the path it belongs to."""

from soak_shapes import CORE_CLASS, SHAPES, claim_template, with_image


def build(name: str) -> dict:
    shape = next(s for s in SHAPES if s.name == name)
    return with_image(shape.build(name, "node1", 0, "my-scheduler"), "img:1")


def test_device_plugin_shapes_go_through_my_scheduler_and_claims_do_not() -> None:
    for shape in SHAPES:
        body = with_image(shape.build("x", "n", 0, "my-scheduler"), "img")
        spec = body["spec"]["template"]["spec"] if shape.kind == "Job" else body["spec"]
        assert (spec.get("schedulerName") == "my-scheduler") == (shape.path == "plugin"), shape
        assert spec["nodeSelector"] == {"kubernetes.io/hostname": "n"}


def test_every_container_prints_its_cores_and_uses_the_image() -> None:
    for shape in SHAPES:
        body = with_image(shape.build("x", "n", 1, "s"), "img:1")
        spec = body["spec"]["template"]["spec"] if shape.kind == "Job" else body["spec"]
        for c in [*spec.get("initContainers", []), *spec["containers"]]:
            assert c["image"] == "img:1"
            assert "CORES=$NEURON_RT_VISIBLE_CORES" in c["command"][-1]


def test_the_sidecar_shape_has_a_restartable_init_container() -> None:
    side = build("sidecar")["spec"]["initContainers"][0]
    assert side["restartPolicy"] == "Always"


def test_the_job_finishes_with_a_neuron_init_container() -> None:
    job = build("job")
    spec = job["spec"]["template"]["spec"]
    assert spec["restartPolicy"] == "Never"
    assert spec["initContainers"][0]["resources"]["limits"] == {"aws.amazon.com/neuron": "1"}
    assert "sleep 3600" not in spec["containers"][0]["command"][-1]


def test_the_two_request_claim_asks_for_a_device_and_a_core_set() -> None:
    requests = claim_template("two-requests")["spec"]["spec"]["devices"]["requests"]
    assert [r["name"] for r in requests] == ["first", "second"]
    assert requests[1]["exactly"]["deviceClassName"] == CORE_CLASS


def test_both_resources_are_asked_for() -> None:
    limits = set()
    for shape in SHAPES:
        body = with_image(shape.build("x", "n", 0, "s"), "i")
        spec = body["spec"]["template"]["spec"] if shape.kind == "Job" else body["spec"]
        for c in [*spec.get("initContainers", []), *spec["containers"]]:
            limits |= set(c["resources"].get("limits", {}))
    assert limits == {"aws.amazon.com/neuron", "aws.amazon.com/neuroncore"}


def test_whole_device_counts_are_valid_on_trn1_and_inf2() -> None:
    trn1_blocks = {1, 4, 8, 16}
    for shape in SHAPES:
        for turn in range(4):
            body = with_image(shape.build("x", "n", turn, "s"), "i")
            spec = body["spec"]["template"]["spec"] if shape.kind == "Job" else body["spec"]
            for c in [*spec.get("initContainers", []), *spec["containers"]]:
                count = c["resources"].get("limits", {}).get("aws.amazon.com/neuron")
                assert count is None or int(count) in trn1_blocks, (shape.name, count)
