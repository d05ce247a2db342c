"""deploy/terraform/, the helm_release a user copies, checked without the hashicorp/helm
provider (which cannot be built here, so the configuration is never applied): its chart, its
values files and `set` keys against the chart and its schema, and its removed blocks against
docs/migration.md and the seed configuration the e2e test applies. `terraform fmt -check` runs
in tests/e2e/test_95_terraform.py, where Terraform is built."""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from pathlib import Path
from typing import Any

import hcl2
import pytest
import yaml
from chartlib import CHART, REPO, render

EXAMPLE = REPO / "deploy" / "terraform"
SEED = REPO / "tests" / "e2e" / "terraform"
GUIDE = REPO / "docs" / "migration.md"


def _load(path: Path) -> dict[str, Any]:
    with path.open() as f:
        return hcl2.load(f)


def _literal(expr: str) -> str:
    """A quoted HCL string as python-hcl2 gives it, without its quotes."""
    assert expr.startswith('"') and expr.endswith('"'), f"not a literal string: {expr}"
    return expr[1:-1]


def _blocks(tf: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    """resource/data blocks of one type by name: {"helm_release.neuron": {...}}."""
    out = {}
    for entry in tf.get(kind, []):
        for rtype, by_name in entry.items():
            for name, body in by_name.items():
                out[f"{_literal(rtype)}.{_literal(name)}"] = body
    return out


@pytest.fixture(scope="module")
def example() -> dict[str, Any]:
    merged: dict[str, list[Any]] = {}
    for path in sorted(EXAMPLE.glob("*.tf")):
        for key, value in _load(path).items():
            if not key.startswith("__"):
                merged.setdefault(key, []).extend(value)
    return merged


@pytest.fixture(scope="module")
def release(example: dict[str, Any]) -> dict[str, Any]:
    releases = _blocks(example, "resource")
    assert list(releases) == ["helm_release.neuron"], list(releases)
    return releases["helm_release.neuron"]


def _resolve(expr: str, example: dict[str, Any]) -> Path:
    """A path built from ${path.module} and ${local.*}, as Terraform would evaluate it."""
    local = {k: _literal(v) for entry in example["locals"] for k, v in entry.items() if k[0] != "_"}
    for _ in range(3):
        expr = expr.replace("${path.module}", str(EXAMPLE))
        expr = re.sub(r"\$\{local\.(\w+)\}", lambda m: local[m.group(1)], expr)
    assert "${" not in expr, f"cannot evaluate {expr}"
    return Path(expr).resolve()


def _values_files(release: dict[str, Any], example: dict[str, Any]) -> list[Path]:
    files = []
    for expr in release["values"]:
        match = re.fullmatch(r'\$\{file\("(.+)"\)\}', expr)
        assert match, f'values entry {expr} is not file("...")'
        files.append(_resolve(match.group(1), example))
    return files


def _variable_defaults(example: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for entry in example["variable"]:
        for name, body in entry.items():
            default = body.get("default")
            out[_literal(name)] = _literal(default) if isinstance(default, str) else default
    return out


def test_the_release_goes_where_the_guide_installs_it(release: dict[str, Any]) -> None:
    assert _literal(release["name"]) == "neuron"
    assert _literal(release["namespace"]) == "kube-system"
    assert "export RELEASE=neuron NS=kube-system" in GUIDE.read_text()


def test_the_local_chart_is_this_checkouts(
    example: dict[str, Any], release: dict[str, Any]
) -> None:
    assert release["chart"] == '${var.chart_repository == null ? local.chart_dir : "neuron"}'
    chart_dir = _resolve("${local.chart_dir}", example)
    assert chart_dir == CHART.resolve()
    assert yaml.safe_load((chart_dir / "Chart.yaml").read_text())["name"] == "neuron"


def test_the_oci_chart_is_the_chart_name_in_the_repository(release: dict[str, Any]) -> None:
    assert release["repository"] == "${var.chart_repository}"
    assert release["version"] == "${var.chart_repository == null ? null : var.chart_version}"


def test_the_values_files_exist_with_aws_compat_last(
    example: dict[str, Any], release: dict[str, Any]
) -> None:
    files = _values_files(release, example)
    assert all(f.is_file() for f in files), files
    assert files[-1] == (CHART / "examples" / "aws-compat.yaml").resolve()


def test_the_values_files_and_set_values_render(
    example: dict[str, Any], release: dict[str, Any]
) -> None:
    defaults = _variable_defaults(example)
    sets = []
    for item in release.get("set", []):
        value = item["value"]
        var = re.fullmatch(r"\$\{var\.(\w+)\}", value)
        sets.append(
            f"{_literal(item['name'])}={defaults[var.group(1)] if var else _literal(value)}"
        )
    objs = render(
        files=_values_files(release, example),
        set_values=sets,
        namespace="kube-system",
        implementation=None,
    )
    names = {(o["kind"], o["metadata"]["name"]) for o in objs}
    assert ("DaemonSet", "neuron-device-plugin-daemonset") in names, sorted(names)


def _schema_has(schema: dict[str, Any], dotted: str) -> bool:
    node = schema
    for key in re.split(r"(?<!\\)\.", dotted):
        key = key.replace("\\.", ".")
        props = node.get("properties", {})
        if key in props:
            node = props[key]
        elif isinstance(node.get("additionalProperties"), dict):
            node = node["additionalProperties"]
        else:
            return False
    return True


def test_every_set_key_is_a_value_of_the_chart(release: dict[str, Any]) -> None:
    schema = json.loads((CHART / "values.schema.json").read_text())
    keys = [_literal(item["name"]) for item in release.get("set", [])]
    assert keys, "the example sets no value: drop the set list or the test"
    assert [k for k in keys if not _schema_has(schema, k)] == []


def test_the_schema_check_knows_a_misspelt_key() -> None:
    schema = json.loads((CHART / "values.schema.json").read_text())
    assert _schema_has(schema, "global.imageRegistry")
    assert not _schema_has(schema, "global.imageRegistery")


def _removed(tf: dict[str, Any]) -> list[tuple[str, bool]]:
    return [(block["from"], block["lifecycle"][0]["destroy"]) for block in tf.get("removed", [])]


def test_the_removed_blocks_are_the_guides() -> None:
    # The e2e suite's reader of the guide's blocks (tests/e2e is not on this suite's path).
    spec = importlib.util.spec_from_file_location("e2e_guide", SEED.parent / "guide.py")
    assert spec and spec.loader
    guide = sys.modules.setdefault("e2e_guide", importlib.util.module_from_spec(spec))
    spec.loader.exec_module(guide)
    text = guide.Guide(GUIDE).text("removed.tf")
    assert hcl2.loads(text)["removed"] == _load(EXAMPLE / "removed.tf")["removed"]


def test_the_removed_blocks_forget_every_seed_resource_and_destroy_nothing() -> None:
    seed = {
        f"${{{address}}}" for address in _blocks(_load(SEED / "neuron-manifests.tf"), "resource")
    }
    removed = _removed(_load(EXAMPLE / "removed.tf"))
    assert {address for address, _ in removed} == seed
    assert all(destroy is False for _, destroy in removed), removed
