"""The command line: output forms, colour, flags from the environment, one list per kind."""

import io
import json
from datetime import UTC, datetime

import pytest
from fleetdata import dp_node, dra_node, garbage_pod, recorded_pod, slices
from neuron_k8s.fleet import apiread, cli

CORE = "aws.amazon.com/neuroncore"


class FakeClient:
    """Answers lists from plain objects and counts each path it was asked for."""

    def __init__(self, objects):
        self.objects = objects
        self.asked = []

    def get(self, path, params=None, timeout=None):
        self.asked.append(path)
        kind = path.rsplit("/", 1)[-1]
        return {"metadata": {}, "items": self.objects.get(kind, [])}


def fleet():
    pods = [
        recorded_pod("p", "a", "trn1.32xlarge", [("x", CORE, [0, 1, 2])]),
        garbage_pod("bad", "a"),
    ]
    return FakeClient(
        {
            "nodes": [dp_node("a", "trn1.32xlarge"), dra_node("d", "inf2.48xlarge")],
            "pods": pods,
            "resourceclaims": [],
            "resourceslices": slices("d", "inf2.48xlarge"),
        }
    )


def run(argv, client, environ=None):
    args = cli.parser(environ or {}).parse_args(argv)
    out = io.StringIO()
    cli.run(args, client, "team", out, False, datetime(2026, 12, 6, 15, 5, tzinfo=UTC))
    return out.getvalue()


def test_nodes_json_gives_each_holding_and_the_room() -> None:
    doc = json.loads(run(["nodes", "-o", "json"], fleet()))
    a = next(n for n in doc if n["name"] == "a")
    assert [(h["pod"], h["container"], h["cores"]) for h in a["holdings"]] == [
        ("p", "x", [0, 1, 2])
    ]
    assert (a["path"], a["heldCores"], a["freeCores"]) == ("device-plugin", 3, 29)
    assert a["unreadable"][0]["name"] == "bad"


def test_nodes_reads_one_list_per_kind() -> None:
    client = fleet()
    run(["nodes"], client)
    assert sorted(client.asked) == [
        "/api/v1/nodes",
        "/api/v1/pods",
        "/apis/resource.k8s.io/v1/resourceclaims",
        "/apis/resource.k8s.io/v1/resourceslices",
    ]


def test_named_nodes_only() -> None:
    assert [n["name"] for n in json.loads(run(["nodes", "d", "-o", "json"], fleet()))] == ["d"]


def test_pods_reads_its_namespace_only() -> None:
    client = fleet()
    run(["pods", "-n", "team"], client)
    assert "/api/v1/namespaces/team/pods" in client.asked


def test_an_environment_variable_sets_a_flag_and_the_flag_wins() -> None:
    env = {"KUBECTL_NEURON_OUTPUT": "json", "KUBECTL_NEURON_ALL_NAMESPACES": "true"}
    args = cli.parser(env).parse_args(["pods"])
    assert (args.output, args.all_namespaces) == ("json", True)
    assert cli.parser(env).parse_args(["pods", "-o", "text"]).output == "text"


def test_a_bad_environment_value_is_refused_naming_the_variable(capsys) -> None:
    with pytest.raises(SystemExit):
        cli.parser({"KUBECTL_NEURON_OUTPUT": "yaml"})
    assert "KUBECTL_NEURON_OUTPUT" in capsys.readouterr().err


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize(
    ("argv", "environ", "stream", "wanted"),
    [
        ([], {}, Tty(), True),
        ([], {}, io.StringIO(), False),
        (["--no-color"], {}, Tty(), False),
        ([], {"NO_COLOR": "1"}, Tty(), False),
        ([], {"KUBECTL_NEURON_NO_COLOR": "true"}, Tty(), False),
    ],
    ids=["terminal", "piped", "flag", "NO_COLOR", "variable"],
)
def test_colour_only_on_a_terminal_unless_turned_off(argv, environ, stream, wanted) -> None:
    args = cli.parser(environ).parse_args([*argv, "nodes"])
    assert cli.colour_wanted(args, stream, environ) is wanted


def test_kubeconfig_is_the_first_existing_file_of_kubeconfig(tmp_path) -> None:
    real = tmp_path / "b"
    real.write_text("")
    environ = {"KUBECONFIG": f"{tmp_path / 'a'}:{real}"}
    assert apiread.kubeconfig_path(None, environ) == str(real)
    assert apiread.kubeconfig_path("flag", environ) == "flag"


def test_a_missing_dra_api_reads_as_no_claims() -> None:
    class NoDra(FakeClient):
        def get(self, path, params=None, timeout=None):
            if "resource.k8s.io" in path:
                raise apiread.ApiError(404, "NotFound", "")
            return super().get(path, params)

    snap = apiread.read_fleet(NoDra({"nodes": []}), "neuron.aws.com")
    assert (snap.claims, snap.slices) == ([], [])


def test_lists_follow_continue_tokens() -> None:
    class Paged:
        def get(self, path, params=None, timeout=None):
            if params.get("continue") == "2":
                return {"metadata": {}, "items": [{"n": 2}]}
            return {"metadata": {"continue": "2"}, "items": [{"n": 1}]}

    assert apiread.list_all(Paged(), "/api/v1/nodes") == [{"n": 1}, {"n": 2}]


def test_common_flags_are_taken_after_the_command_too() -> None:
    args = cli.parser({}).parse_args(["--context", "a", "nodes", "--no-color", "-o", "json"])
    assert (args.context, args.no_color, args.output) == ("a", True, "json")


def test_a_flag_before_the_command_is_not_undone_by_the_commands_defaults() -> None:
    args = cli.parser({}).parse_args(["-o", "json", "--context", "a", "pods", "-A"])
    assert (args.output, args.context, args.all_namespaces) == ("json", "a", True)
