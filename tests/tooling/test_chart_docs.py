"""charts/neuron/README.md is what helm-docs generates from values.yaml, and the check says so
when it is not. Run by tox -e lint, which builds helm-docs with Go (scripts/install-go-tools.sh);
the unit suite needs Python alone."""

import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "neuron"
CHART_DOCS = REPO / "scripts" / "chart-docs.sh"


def test_chart_readme_is_current():
    if not (REPO / ".tools" / "bin" / "helm-docs").exists() and not shutil.which("helm-docs"):
        pytest.fail("helm-docs is missing: run `bash scripts/install-go-tools.sh`", pytrace=False)
    result = subprocess.run(
        ["bash", str(CHART_DOCS), "--check"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_chart_readme_check_fails_when_stale(tmp_path):
    copy = tmp_path / "neuron"
    shutil.copytree(CHART, copy)
    values = copy / "values.yaml"
    values.write_text(values.read_text().replace("# -- Install the Neuron device plugin", "# -- X"))
    result = subprocess.run(
        ["bash", str(CHART_DOCS), "--check"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, "CHART_DIR": str(copy)},
    )
    assert result.returncode == 1
    assert "README.md is stale" in result.stderr
