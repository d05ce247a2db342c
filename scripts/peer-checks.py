#!/usr/bin/env python3
"""Run the peer checkers platform teams run on the chart, checkov and kube-score, on the chart
rendered with its defaults and with every example values file, and fail on any finding that
scripts/peer-check-exceptions.yaml does not list (tool, check, object, why, and optionally the
renders it applies to), or on an exception that no longer matches anything. `tox -e lint` runs it.

    python scripts/peer-checks.py [--checkov PATH] [--kube-score PATH] [--helm PATH]
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "cluster"))
import versions

ROOT = Path(__file__).resolve().parents[1]
CHART = ROOT / "charts" / "neuron"
EXCEPTIONS = ROOT / "scripts" / "peer-check-exceptions.yaml"
KUBE_VERSION = versions.VERSIONS["KUBERNETES_VERSION"]
NAMESPACE = "kube-system"


# The EKS examples name this project's image repository with placeholders the user replaces,
# which the chart refuses as they are: render them as a user who replaced them.
FILLED_IN = {"<account>": "111122223333", "<region>": "us-west-2"}


def filled(values: Path, out: Path) -> Path:
    text = values.read_text()
    if not any(p in text for p in FILLED_IN):
        return values
    for placeholder, value in FILLED_IN.items():
        text = text.replace(placeholder, value)
    copy = out / f"filled-{values.name}"
    copy.write_text(text)
    return copy


# A values file installed over another (cluster/harness.py): kind-real-mode.yaml over kind.yaml,
# which names the images kind loads onto its nodes (pullPolicy Never).
OVER = {"kind-real-mode.yaml": "kind.yaml"}


def renders(helm: str, out: Path) -> dict[str, Path]:
    cases: dict[str, list[Path]] = {"defaults": []}
    for folder in ("examples", "ci"):
        for p in sorted((CHART / folder).glob("*.yaml")):
            under = [CHART / folder / OVER[p.name]] if p.name in OVER else []
            cases[f"{folder}/{p.stem}"] = [*under, filled(p, out)]
    files = {}
    for name, values in cases.items():
        args = [helm, "template", "neuron", str(CHART), "-n", NAMESPACE]
        args += ["--kube-version", KUBE_VERSION]
        for v in values:
            args += ["-f", str(v)]
        done = subprocess.run(args, capture_output=True, text=True, check=True)
        files[name] = out / f"{name.replace('/', '-')}.yaml"
        files[name].write_text(done.stdout)
    return files


def kind_name(kind: str, namespace: str, name: str) -> str:
    return f"{kind}/{name}" if not namespace else f"{kind}/{namespace}/{name}"


def checkov(binary: str, rendered: Path) -> list[tuple[str, str, str]]:
    done = subprocess.run(
        [binary, "--framework", "kubernetes", "-f", str(rendered), "-o", "json", "--quiet"],
        capture_output=True,
        text=True,
    )
    report = json.loads(done.stdout or "{}")
    if isinstance(report, list):
        report = report[0]
    out = []
    for f in (report.get("results") or {}).get("failed_checks", []):
        # checkov names resources Kind.namespace.name (and, for pods of a NetworkPolicy
        # check, appends their labels): keep Kind/namespace/name.
        kind, namespace, name = [*f["resource"].split(".", 2), "", ""][:3]
        name = name.split(".app.kubernetes.io/")[0]
        out.append(("checkov", f["check_id"], kind_name(kind, namespace, name)))
    return out


def kube_score(binary: str, rendered: Path) -> list[tuple[str, str, str]]:
    done = subprocess.run(
        [binary, "score", "--kubernetes-version", "v1.34", "-o", "json", str(rendered)],
        capture_output=True,
        text=True,
    )
    out = []
    for obj in json.loads(done.stdout or "[]"):
        meta = obj.get("object_meta") or {}
        where = kind_name(obj["type_meta"]["kind"], meta.get("namespace", ""), meta["name"])
        for check in obj.get("checks") or []:
            if not check.get("skipped") and check["grade"] < 10:
                out.append(("kube-score", check["check"]["id"], where))
    return out


def _globs(value: str | list[str]) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--checkov", default=shutil.which("checkov") or "checkov")
    p.add_argument("--kube-score", default=shutil.which("kube-score") or "kube-score")
    p.add_argument("--helm", default=shutil.which("helm") or "helm")
    args = p.parse_args()
    exceptions = yaml.safe_load(EXCEPTIONS.read_text())["exceptions"]
    for e in exceptions:
        missing = {"tool", "check", "object", "why"} - set(e)
        if missing:
            print(f"peer checks: an exception lacks {', '.join(sorted(missing))}: {e}")
            return 1
    used = [0] * len(exceptions)
    findings: list[tuple[str, str, str, str]] = []
    with tempfile.TemporaryDirectory() as tmp:
        rendered_cases = renders(args.helm, Path(tmp))
        cases = len(rendered_cases)
        for case, rendered in rendered_cases.items():
            for tool, check, obj in checkov(args.checkov, rendered) + kube_score(
                args.kube_score, rendered
            ):
                hit = [
                    i
                    for i, e in enumerate(exceptions)
                    if e["tool"] == tool
                    and e["check"] == check
                    and any(fnmatch.fnmatch(obj, g) for g in _globs(e["object"]))
                    and case in e.get("renders", [case])
                ]
                for i in hit:
                    used[i] += 1
                if not hit:
                    findings.append((case, tool, check, obj))
    stale = [e for e, n in zip(exceptions, used, strict=True) if not n]
    for case, tool, check, obj in findings:
        print(f"peer checks: new finding: {tool} {check} on {obj} ({case} values)")
    for e in stale:
        print(f"peer checks: exception matches nothing: {e['tool']} {e['check']} {e['object']}")
    matched = sum(1 for n in used if n)
    print(
        f"peer checks: checkov and kube-score on {cases} renders: {len(findings)} new "
        f"findings, {matched} exceptions in use, {len(stale)} stale"
    )
    return 1 if findings or stale else 0


if __name__ == "__main__":
    sys.exit(main())
