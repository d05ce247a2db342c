"""cluster/mkimage.py writes docker-archive images that docker, containerd and kind can load."""

import hashlib
import importlib.util
import io
import json
import tarfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
spec = importlib.util.spec_from_file_location("mkimage", ROOT / "cluster" / "mkimage.py")
mkimage = importlib.util.module_from_spec(spec)
spec.loader.exec_module(mkimage)


@pytest.fixture
def rootfs(tmp_path: Path) -> Path:
    root = tmp_path / "root"
    (root / "usr/local/bin").mkdir(parents=True)
    tool = root / "usr/local/bin/tool"
    tool.write_text("#!/bin/sh\necho hi\n")
    tool.chmod(0o755)
    (root / "etc").mkdir()
    (root / "etc/passwd").write_text("root:x:0:0::/root:/bin/sh\n")
    return root


def build(tmp_path: Path, name: str, *args: str) -> Path:
    out = tmp_path / name
    assert mkimage.main([*args, "--out", str(out)]) == 0
    return out


def read_archive(path: Path) -> tuple[list[dict], dict, dict[str, bytes]]:
    """The manifest, the config, and every member's bytes."""
    with tarfile.open(path) as tar:
        members = {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}
    manifest = json.loads(members["manifest.json"])
    return manifest, json.loads(members[manifest[0]["Config"]]), members


def test_archive_names_the_tag_and_the_entrypoint(tmp_path: Path, rootfs: Path) -> None:
    out = build(
        tmp_path,
        "img.tar",
        "--tag",
        "example.com/tool:v1",
        "--layer",
        str(rootfs),
        "--entrypoint",
        "/usr/local/bin/tool",
        "--env",
        "A=1",
    )
    manifest, config, _ = read_archive(out)
    assert manifest[0]["RepoTags"] == ["example.com/tool:v1"]
    assert config["config"]["Entrypoint"] == ["/usr/local/bin/tool"]
    assert config["config"]["Env"] == ["A=1"]
    assert config["os"] == "linux" and config["architecture"] == "amd64"


def test_layer_digests_match_the_config_diff_ids(tmp_path: Path, rootfs: Path) -> None:
    out = build(tmp_path, "img.tar", "--tag", "t:1", "--layer", str(rootfs))
    manifest, config, members = read_archive(out)
    for layer, diff_id in zip(manifest[0]["Layers"], config["rootfs"]["diff_ids"], strict=True):
        digest = hashlib.sha256(members[layer]).hexdigest()
        assert diff_id == f"sha256:{digest}"
        assert layer == f"{digest}/layer.tar"


def test_layer_keeps_files_and_modes(tmp_path: Path, rootfs: Path) -> None:
    out = build(tmp_path, "img.tar", "--tag", "t:1", "--layer", str(rootfs))
    manifest, _, members = read_archive(out)
    with tarfile.open(fileobj=io.BytesIO(members[manifest[0]["Layers"][0]])) as layer:
        tool = layer.getmember("usr/local/bin/tool")
        assert tool.mode & 0o777 == 0o755
        assert layer.extractfile(tool).read() == b"#!/bin/sh\necho hi\n"


def test_same_folder_gives_the_same_layer_digest(tmp_path: Path, rootfs: Path) -> None:
    a = build(tmp_path, "a.tar", "--tag", "a:1", "--layer", str(rootfs))
    b = build(tmp_path, "b.tar", "--tag", "b:1", "--layer", str(rootfs))
    assert read_archive(a)[1]["rootfs"] == read_archive(b)[1]["rootfs"]


def test_a_shared_base_tarball_is_stored_once_per_archive(tmp_path: Path, rootfs: Path) -> None:
    base = tmp_path / "base.tar"
    mkimage.folder_to_layer(str(rootfs), str(base))
    out = build(tmp_path, "img.tar", "--tag", "t:1", "--layer", str(base), "--layer", str(base))
    _, config, members = read_archive(out)
    assert len(config["rootfs"]["diff_ids"]) == 2
    assert len([m for m in members if m.endswith("layer.tar")]) == 1


def test_missing_layer_is_refused_by_name(tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match="nope"):
        mkimage.main(
            ["--tag", "t:1", "--layer", str(tmp_path / "nope"), "--out", str(tmp_path / "x.tar")]
        )


def test_architecture_names_the_platform_of_an_arm64_image(tmp_path: Path, rootfs: Path) -> None:
    out = build(
        tmp_path, "img.tar", "--tag", "t:1", "--layer", str(rootfs), "--architecture", "arm64"
    )
    _, config, _ = read_archive(out)
    assert config["architecture"] == "arm64"
