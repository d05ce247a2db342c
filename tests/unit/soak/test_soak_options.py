"""The soak's options: flags, NEURON_SOAK_* variables, defaults."""

from soak_options import parse


def test_flags_default_from_the_environment_and_flags_win() -> None:
    assert parse([], {}).minutes == 10
    assert parse([], {"NEURON_SOAK_MINUTES": "5"}).minutes == 5
    assert parse(["--minutes", "3"], {"NEURON_SOAK_MINUTES": "5"}).minutes == 3
    assert parse([], {"NEURON_SOAK_MAX_PODS": "4"}).max_pods == 4


def test_the_default_kubeconfig_is_the_one_the_harness_writes() -> None:
    assert parse([], {}).kubeconfig.endswith("cluster/.cache/kubeconfig")
