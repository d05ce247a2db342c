"""kube-scheduler's extender wire format (k8s.io/kube-scheduler/extender/v1), parsed into typed
objects and written back.

The Go types carry no json tags, so the keys are the Go field names ("Pod", "NodeNames", ...),
and Go's decoder matches them case-insensitively (the last of several spellings wins, as in Go).
The Kubernetes objects inside (Pod, NodeList) do have json tags and are passed through as dicts.
Anything malformed raises ProtocolError with a message meant for whoever sent it.
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, replace
from itertools import chain
from typing import Any

from ..wirejson import dumps as _dumps
from ..wirejson import loads as _loads


class ProtocolError(ValueError):
    """The request is not a well-formed extender request."""


def _fields(obj: Any, what: str) -> dict[str, Any]:
    """The object's keys folded to lower case, as Go's decoder matches them."""
    if not isinstance(obj, Mapping):
        raise ProtocolError(f"{what} must be a JSON object, got {_kind(obj)}")
    return {str(k).lower(): v for k, v in obj.items()}


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    return {
        bool: "a boolean",
        int: "a number",
        float: "a number",
        str: "a string",
        list: "an array",
        dict: "an object",
    }.get(type(value), type(value).__name__)


def decode(body: bytes) -> Any:
    try:
        return _loads(body)
    except (ValueError, UnicodeDecodeError) as err:
        raise ProtocolError(f"request body is not valid JSON: {err}") from None


def _string(fields: dict[str, Any], key: str, what: str, required: bool = True) -> str:
    value = fields.get(key.lower())
    if value is None or value == "":
        if required:
            raise ProtocolError(f"{what}.{key} is missing")
        return ""
    if not isinstance(value, str):
        raise ProtocolError(f"{what}.{key} must be a string, got {_kind(value)}")
    return value


@dataclass(frozen=True)
class ExtenderArgs:
    """The arguments of filter and prioritize. `node_names` is set when kube-scheduler runs with
    nodeCacheCapable=true, `nodes` (the NodeList) when false; `names` lists the candidates in
    order either way."""

    pod: dict[str, Any]
    names: list[str]
    node_names: list[str] | None
    nodes: dict[str, Any] | None
    node_items: list[dict[str, Any]] | None
    # The raw NodeNames array when read_extender_args took it whole: equal keys, equal names.
    names_key: bytes | None = None

    @property
    def pod_key(self) -> str:
        meta = self.pod.get("metadata") or {}
        return f"{meta.get('namespace', '')}/{meta.get('name', '')}"

    @property
    def pod_uid(self) -> str:
        return str((self.pod.get("metadata") or {}).get("uid") or "")


def parse_extender_args(doc: Any, names_checked: bool = False) -> ExtenderArgs:
    fields = _fields(doc, "ExtenderArgs")
    pod = fields.get("pod")
    if pod is None:
        raise ProtocolError("ExtenderArgs.Pod is missing")
    if not isinstance(pod, dict):
        raise ProtocolError(f"ExtenderArgs.Pod must be a Pod object, got {_kind(pod)}")
    if not isinstance(pod.get("metadata"), dict):
        raise ProtocolError("ExtenderArgs.Pod has no metadata")

    raw_names = fields.get("nodenames")
    raw_nodes = fields.get("nodes")
    if raw_names is None and raw_nodes is None:
        raise ProtocolError(
            "ExtenderArgs has neither NodeNames (nodeCacheCapable: true) nor Nodes "
            "(nodeCacheCapable: false)"
        )

    node_names: list[str] | None = None
    if raw_names is not None:
        if not isinstance(raw_names, list):
            raise ProtocolError(
                f"ExtenderArgs.NodeNames must be an array of strings, got {_kind(raw_names)}"
            )
        # C-level checks first: thousands of names arrive on every call.
        if not names_checked and (set(map(type, raw_names)) - {str} or "" in raw_names):
            i, name = next(
                (i, n) for i, n in enumerate(raw_names) if not isinstance(n, str) or not n
            )
            raise ProtocolError(
                f"ExtenderArgs.NodeNames[{i}] must be a non-empty string, got {_kind(name)}"
            )
        node_names = raw_names

    nodes: dict[str, Any] | None = None
    items: list[dict[str, Any]] | None = None
    if raw_nodes is not None:
        if not isinstance(raw_nodes, dict):
            raise ProtocolError(f"ExtenderArgs.Nodes must be a NodeList, got {_kind(raw_nodes)}")
        raw_items = raw_nodes.get("items")
        if raw_items is None:
            raw_items = []
        if not isinstance(raw_items, list):
            raise ProtocolError(
                f"ExtenderArgs.Nodes.items must be an array, got {_kind(raw_items)}"
            )
        for i, node in enumerate(raw_items):
            name = (node.get("metadata") or {}).get("name") if isinstance(node, dict) else None
            if not isinstance(name, str) or not name:
                raise ProtocolError(f"ExtenderArgs.Nodes.items[{i}] has no metadata.name")
        nodes, items = raw_nodes, raw_items

    if node_names is not None:
        names = node_names
    else:
        assert items is not None
        names = [n["metadata"]["name"] for n in items]
    return ExtenderArgs(pod, names, node_names, nodes, items)


class NamesCache:
    """The last few NodeNames arrays, raw and decoded. kube-scheduler sends the same thousands
    of names call after call: matching the raw bytes skips decoding and checking them, and
    lets the extender reuse what it worked out for them last time."""

    def __init__(self, size: int = 8) -> None:
        self._lock = threading.Lock()
        self._names: OrderedDict[bytes, list[str]] = OrderedDict()
        self._size = size

    def get(self, raw: bytes) -> list[str] | None:
        with self._lock:
            names = self._names.get(raw)
            if names is not None:
                self._names.move_to_end(raw)
            return names

    def put(self, raw: bytes, names: list[str]) -> None:
        with self._lock:
            self._names[raw] = names
            while len(self._names) > self._size:
                self._names.popitem(last=False)


_NAMES_KEY = b',"NodeNames":['


def _split_names(body: bytes) -> tuple[bytes, bytes] | None:
    """(the object without NodeNames, the raw NodeNames array) of a body shaped as Go writes
    ExtenderArgs: fields in declaration order, so NodeNames comes last."""
    tail = body.rstrip()
    if not tail.endswith(b"]}"):
        return None
    i = tail.rfind(_NAMES_KEY)
    if i < 0:
        return None
    return tail[:i] + b"}", tail[i + len(_NAMES_KEY) - 1 : -1]


def _names_ok(value: Any) -> bool:
    return isinstance(value, list) and not (set(map(type, value)) - {str} or "" in value)


def read_extender_args(body: bytes, cache: NamesCache) -> ExtenderArgs:
    """parse_extender_args(decode(body)), faster for what kube-scheduler sends: the NodeNames
    array is split off as bytes and decoded only when it differs from a recent one. Anything
    unusual takes the plain path, which also words every error."""
    split = _split_names(body)
    if split is not None:
        head, raw = split
        try:
            doc = _loads(head)
            names = cache.get(raw)
            if names is None:
                decoded = _loads(raw)
                if _names_ok(decoded):
                    names = decoded
                    cache.put(raw, names)
            if isinstance(doc, dict) and names is not None:
                # This array was the last NodeNames key of the body: it wins, as in Go.
                for k in [k for k in doc if str(k).lower() == "nodenames"]:
                    del doc[k]
                doc["NodeNames"] = names
                return replace(parse_extender_args(doc, names_checked=True), names_key=raw)
        except (ValueError, UnicodeDecodeError):
            pass  # ProtocolError is a ValueError too: the plain path says it properly
    return parse_extender_args(decode(body))


def filter_result(
    args: ExtenderArgs,
    passed: list[str],
    failed: dict[str, str],
    unresolvable: dict[str, str],
    error: str = "",
) -> dict[str, Any]:
    """ExtenderFilterResult in the same form as the arguments: NodeNames for a node-cache
    capable caller, the NodeList subset (the caller's own objects) otherwise."""
    result: dict[str, Any] = {
        "Nodes": None,
        "NodeNames": None,
        "FailedNodes": failed,
        "FailedAndUnresolvableNodes": unresolvable,
        "Error": error,
    }
    if args.node_names is not None:
        result["NodeNames"] = passed
    if args.nodes is not None:
        assert args.node_items is not None
        keep = set(passed)
        subset = dict(args.nodes)
        subset["items"] = [n for n in args.node_items if n["metadata"]["name"] in keep]
        result["Nodes"] = subset
    return result


def filter_error(message: str) -> dict[str, Any]:
    return {
        "Nodes": None,
        "NodeNames": None,
        "FailedNodes": {},
        "FailedAndUnresolvableNodes": {},
        "Error": message,
    }


def priority_list(scores: list[tuple[str, int]]) -> list[dict[str, Any]]:
    """HostPriorityList."""
    return [{"Host": host, "Score": score} for host, score in scores]


_UNSAFE = re.compile(r'["\\\x00-\x1f\x7f-\U0010ffff]')


def encode_priority_list(hosts: list[str], scores: list[int]) -> bytes:
    """HostPriorityList as JSON, built by C-level maps: json.dumps of thousands of small dicts
    costs milliseconds. Node names are DNS subdomains and need no escaping; anything else
    goes the slow, exact way."""
    if _UNSAFE.search("".join(hosts)):
        return encode(priority_list(list(zip(hosts, scores, strict=True))))
    # One %-format over the whole list runs in C.
    template = ",".join(['{"Host":"%s","Score":%d}'] * len(hosts))
    return (
        "[" + template % tuple(chain.from_iterable(zip(hosts, scores, strict=True))) + "]"
    ).encode()


@dataclass(frozen=True)
class BindingArgs:
    pod_name: str
    pod_namespace: str
    pod_uid: str
    node: str

    @property
    def pod_key(self) -> str:
        return f"{self.pod_namespace}/{self.pod_name}"


def parse_binding_args(doc: Any) -> BindingArgs:
    fields = _fields(doc, "ExtenderBindingArgs")
    what = "ExtenderBindingArgs"
    return BindingArgs(
        pod_name=_string(fields, "PodName", what),
        pod_namespace=_string(fields, "PodNamespace", what),
        # kube-scheduler always sends it; tolerate its absence and skip the UID check.
        pod_uid=_string(fields, "PodUID", what, required=False),
        node=_string(fields, "Node", what),
    )


def binding_result(error: str = "") -> dict[str, Any]:
    """ExtenderBindingResult."""
    return {"Error": error}


def encode(doc: Any) -> bytes:
    return _dumps(doc)
