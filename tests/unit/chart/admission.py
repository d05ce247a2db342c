"""A rendered ValidatingAdmissionPolicy evaluated as the API server evaluates it, with cel-python:
match constraints (group, resource without subresource, operation), match conditions, variables
in order, then each validation and, for the first that fails, its messageExpression (or its
message). Enough for the chart's policies; not a second API server."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import celpy
from celpy import celtypes

_ENV = celpy.Environment()


def _join(items: celtypes.ListType, sep: celtypes.StringType | None = None) -> celtypes.StringType:
    """`<list<string>>.join([sep])` of the Kubernetes CEL strings library (cel-go ext.Strings),
    which cel-python does not ship."""
    return celtypes.StringType(str(sep or "").join(str(i) for i in items))


def _eval(expression: str, activation: dict[str, Any]) -> Any:
    program = _ENV.program(_ENV.compile(expression), functions={"join": _join})
    return program.evaluate(activation)


@dataclass(frozen=True)
class Verdict:
    matched: bool
    allowed: bool
    message: str = ""


def request(
    operation: str,
    username: str,
    obj: dict[str, Any],
    old: dict[str, Any] | None = None,
    resource: str = "pods",
    subresource: str = "",
) -> dict[str, Any]:
    """An admission request for a core (group "") object, as the policy's `request` sees it."""
    return {
        "operation": operation,
        "userInfo": {"username": username, "groups": ["system:authenticated"], "extra": {}},
        "resource": {"group": "", "version": "v1", "resource": resource},
        "subResource": subresource,
        "object": obj,
        "oldObject": old,
    }


def _matches(spec: dict[str, Any], req: dict[str, Any]) -> bool:
    for rule in spec["matchConstraints"]["resourceRules"]:
        resource = req["resource"]["resource"]
        if req["subResource"]:
            resource += "/" + req["subResource"]
        if (
            req["resource"]["group"] in rule["apiGroups"]
            and resource in rule["resources"]
            and req["operation"] in rule["operations"]
        ):
            return True
    return False


def admit(policy: dict[str, Any], req: dict[str, Any]) -> Verdict:
    spec = policy["spec"]
    if not _matches(spec, req):
        return Verdict(matched=False, allowed=True)
    activation: dict[str, Any] = {
        "request": celpy.json_to_cel({k: v for k, v in req.items() if "bject" not in k}),
        "object": celpy.json_to_cel(req["object"]),
        "oldObject": celpy.json_to_cel(req["oldObject"]),
    }
    for condition in spec.get("matchConditions", []):
        if not _eval(condition["expression"], activation):
            return Verdict(matched=False, allowed=True)
    variables: dict[str, Any] = {}
    for variable in spec.get("variables", []):
        activation["variables"] = celtypes.MapType(
            {celtypes.StringType(k): v for k, v in variables.items()}
        )
        variables[variable["name"]] = _eval(variable["expression"], activation)
    activation["variables"] = celtypes.MapType(
        {celtypes.StringType(k): v for k, v in variables.items()}
    )
    for validation in spec["validations"]:
        if not _eval(validation["expression"], activation):
            if "messageExpression" in validation:
                message = str(_eval(validation["messageExpression"], activation))
            else:
                message = validation.get("message", "")
            return Verdict(matched=True, allowed=False, message=message)
    return Verdict(matched=True, allowed=True)
