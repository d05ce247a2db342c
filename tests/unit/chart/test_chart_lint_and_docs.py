"""helm lint --strict is clean, and the chart README documents every value. (That the README
is what helm-docs generates, which needs Go to build helm-docs, is checked by tox -e lint:
tests/tooling/test_chart_docs.py.)"""

import pytest
from chartlib import CHART, EXAMPLES, helm, values_yaml

README = CHART / "README.md"


def test_helm_lint_strict_is_clean():
    result = helm("lint", "--strict", str(CHART))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "[WARNING]" not in result.stdout
    assert "[ERROR]" not in result.stdout


@pytest.mark.parametrize("name", sorted(p.name for p in EXAMPLES.glob("*.yaml")))
def test_helm_lint_strict_is_clean_with_example(name):
    result = helm("lint", "--strict", str(CHART), "--values", str(EXAMPLES / name))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "[WARNING]" not in result.stdout


def _leaves(values, prefix=""):
    for key, value in values.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            yield from _leaves(value, path + ".")
        else:
            yield path


def _documented(path, text):
    # helm-docs documents a map with a `# --` comment as one row, so a parent row covers it.
    parts = path.split(".")
    return any(f"| {'.'.join(parts[:n])} |" in text for n in range(len(parts), 0, -1))


def test_chart_readme_lists_every_value():
    text = README.read_text()
    missing = [p for p in _leaves(values_yaml()) if not _documented(p, text)]
    assert missing == []


def test_every_value_has_a_description():
    text = README.read_text()
    for line in text.splitlines():
        if line.startswith("| ") and not line.startswith(("| Key", "|--")):
            cells = [c.strip() for c in line.strip("|").split("|")]
            if len(cells) == 4:
                assert cells[3], f"no description: {line}"
