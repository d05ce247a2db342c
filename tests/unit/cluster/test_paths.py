"""Which way up the harness takes (cluster/paths.py), for every answer the machine can give."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "cluster"))
import paths

IMAGE = "kindest/node:vX"


def probes(docker=True, present=False, pulled=False, asked=None):
    asked = [] if asked is None else asked

    def record(name, answer):
        def probe(*args):
            asked.append((name, *args))
            return answer

        return probe

    return paths.Probes(
        docker_answers=record("docker", docker),
        image_present=record("present", present),
        image_pulled=record("pull", pulled),
    )


def test_a_present_stock_node_image_is_used_without_pulling():
    asked = []
    way = paths.choose(probes(present=True, asked=asked), IMAGE, offline=False)
    assert way.stock and ("pull", IMAGE) not in asked


def test_a_pullable_stock_node_image_is_used():
    assert paths.choose(probes(pulled=True), IMAGE, offline=False).stock


def test_no_stock_node_image_means_the_offline_build():
    way = paths.choose(probes(present=False, pulled=False), IMAGE, offline=False)
    assert not way.stock and way.docker_answers


def test_without_docker_the_offline_build_starts_its_own_engine_and_pulls_nothing():
    asked = []
    way = paths.choose(probes(docker=False, pulled=True, asked=asked), IMAGE, offline=False)
    assert not way.stock and not way.docker_answers
    assert asked == [("docker",)]


@pytest.mark.parametrize("present", [True, False])
def test_offline_forces_the_offline_build_and_pulls_nothing(present):
    asked = []
    way = paths.choose(probes(present=present, pulled=True, asked=asked), IMAGE, offline=True)
    assert not way.stock and asked == [("docker",)]


def test_the_description_names_the_path_and_the_image():
    stock = paths.Way(stock=True, docker_answers=True).describe(IMAGE)
    offline = paths.Way(stock=False, docker_answers=False).describe(IMAGE)
    assert stock.startswith("stock kind") and IMAGE in stock
    assert offline.startswith("offline build") and "setup-host.sh" in offline
