"""The names each instance of the driver uses in its folder, <plugins-dir>/<driver>, and whether
an instance is still running. A rolling update (maxSurge 1) runs two instances on a node for a
while: each puts its POD_UID in its file names, so neither takes the other's socket or
checkpoint. An instance runs while its DRA socket accepts a connection: a stopped one removes
its socket, a killed one leaves a file nobody listens on."""

from __future__ import annotations

import contextlib
import os
import socket

LEGACY_CHECKPOINT = "checkpoint.json"  # without POD_UID; every instance's in older versions
_PREFIX, _SUFFIX = "checkpoint-", ".json"


def dra_socket_name(pod_uid: str) -> str:
    return f"dra-{pod_uid}.sock" if pod_uid else "dra.sock"


def checkpoint_name(pod_uid: str) -> str:
    return f"{_PREFIX}{pod_uid}{_SUFFIX}" if pod_uid else LEGACY_CHECKPOINT


def checkpoint_owner(name: str) -> str | None:
    """The POD_UID whose checkpoint `name` is ("" for the unsuffixed one), None for any other
    file (a temporary file, a socket)."""
    if name == LEGACY_CHECKPOINT:
        return ""
    if name.startswith(_PREFIX) and name.endswith(_SUFFIX) and len(name) > len(_PREFIX + _SUFFIX):
        return name[len(_PREFIX) : -len(_SUFFIX)]
    return None


def listening(path: str, timeout: float = 0.5) -> bool:
    """Whether a server accepts connections on the unix socket `path`."""
    with contextlib.closing(socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)) as s:
        s.settimeout(timeout)
        try:
            s.connect(path)
        except OSError:
            return False
    return True


def running(folder: str, owner: str, me: str) -> bool:
    """Whether the instance that wrote `owner`'s checkpoint in `folder` still runs. The
    unsuffixed checkpoint's writer cannot be told apart (an instance of an older version names
    its socket with its POD_UID but not its checkpoint): it counts as running while any other
    instance's socket answers."""
    if owner:
        return listening(os.path.join(folder, dra_socket_name(owner)))
    try:
        names = os.listdir(folder)
    except OSError:
        return False
    mine = dra_socket_name(me)
    sockets = [n for n in names if n != mine and n.startswith("dra") and n.endswith(".sock")]
    return any(listening(os.path.join(folder, n)) for n in sockets)
