"""Build step: generate the gRPC stubs from proto/ with grpcio-tools, so that no generated code
is kept in git. Everything else about the package is in pyproject.toml."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent
# proto file under proto/ -> module name under neuron_k8s/_proto/
PROTOS = {
    "deviceplugin/v1beta1/api.proto": "deviceplugin_v1beta1",
    "podresources/v1/api.proto": "podresources_v1",
    "dra/v1/api.proto": "dra_v1",
    "dra/v1beta1/api.proto": "dra_v1beta1",
    "pluginregistration/v1/api.proto": "pluginregistration_v1",
    "dra-health/v1/api.proto": "drahealth_v1",
    "dra-health/v1alpha1/api.proto": "drahealth_v1alpha1",
}
PACKAGE_DIR = ("neuron_k8s", "_proto")


def generate(out_root: Path) -> None:
    from grpc_tools import protoc  # a build requirement, not a runtime one

    with tempfile.TemporaryDirectory() as tmp:
        # Lay each file out at its package path, so that the generated _pb2_grpc modules import
        # their _pb2 as `from neuron_k8s._proto import ...` rather than as a top-level module.
        staged = Path(tmp).joinpath(*PACKAGE_DIR)
        staged.mkdir(parents=True)
        names = []
        for src, module in PROTOS.items():
            shutil.copyfile(HERE / "proto" / src, staged / f"{module}.proto")
            names.append("/".join((*PACKAGE_DIR, f"{module}.proto")))
        out_root.joinpath(*PACKAGE_DIR).mkdir(parents=True, exist_ok=True)
        args = [
            "grpc_tools.protoc",
            f"-I{tmp}",
            f"--python_out={out_root}",
            f"--grpc_python_out={out_root}",
            # Type stubs (mypy-protobuf, a build requirement), so that mypy --strict checks
            # the code that uses the messages.
            f"--mypy_out={out_root}",
            f"--mypy_grpc_out={out_root}",
            *names,
        ]
        if protoc.main(args) != 0:
            raise RuntimeError(f"protoc failed on {', '.join(PROTOS)}")


class BuildPyWithProto(build_py):
    def run(self) -> None:
        super().run()
        # Editable installs import from src/, regular ones from the build directory.
        generate(HERE / "src" if self.editable_mode else Path(self.build_lib))


setup(cmdclass={"build_py": BuildPyWithProto})
