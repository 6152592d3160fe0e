"""A probe (see sandbox/worker.py) that holds every AWS request of a container to its function's role.

moto checks each request's signature and action against the role it was signed for, but not every resource
or rule: DynamoDB and Secrets Manager requests are checked against `*` (so a grant on one table allows every
table), and a GET/HEAD of a missing S3 key answers 404 whether or not the caller may list the bucket. This
probe closes those gaps inside the container, before a request leaves it: it works out the actions and
resources the request needs (sandbox/iam.py), refuses it with the error AWS answers (AccessDeniedException,
403 AccessDenied) when the role does not allow it, turns S3's 404 into AWS's 403 for a role without
s3:ListBucket, and records every request it saw, which `collect()` hands back to the sandbox.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from sandbox.iam import Policy, missing_key_needs, requested

_seen: list[dict[str, Any]] = []
_lock = threading.Lock()

# The error each service answers for a request its caller may not make (code, HTTP status).
_DENIED = {"s3": ("AccessDenied", 403), "sqs": ("AccessDenied", 403)}
_DEFAULT_DENIED = ("AccessDeniedException", 400)


def _record(entry: dict[str, Any]) -> None:
    with _lock:
        _seen.append(entry)


def _denied(client: Any, principal: str, operation: str, action: str, resource: str) -> Exception:
    from botocore.exceptions import ClientError

    service = client.meta.service_model.service_name
    code, status = _DENIED.get(service, _DEFAULT_DENIED)
    message = (
        f"User: {principal} is not authorized to perform: {action} on resource: {resource} "
        f"because no identity-based policy allows the {action} action"
    )
    response = {"Error": {"Code": code, "Message": message}, "ResponseMetadata": {"HTTPStatusCode": status}}
    error_class: Any = client.exceptions.from_code(code)
    if error_class is ClientError:
        return ClientError(response, operation)  # type: ignore[arg-type]
    error: Exception = error_class(response, operation)
    return error


Current = Callable[[], "tuple[Policy, str] | None"]  # the policy to hold requests to now, and whose it is


def _register(client: Any, current: Current) -> None:
    service = client.meta.service_model.service_name
    region = client.meta.region_name

    def before_call(model: Any, params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        holder = current()
        if holder is None:
            return
        policy, principal = holder
        call_params = context.get("sandbox_params", {})
        for action, resource in requested(service, model.name, call_params, region=region):
            allowed = policy.allows(action, resource)
            _record(
                {"operation": f"{service}:{model.name}", "action": action, "resource": resource, "allowed": allowed}
            )
            if not allowed:
                raise _denied(client, principal, model.name, action, resource)

    def keep_params(params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        context["sandbox_params"] = dict(params)

    def after_call(model: Any, http_response: Any, parsed: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        holder = current()
        if holder is None:
            return
        code = str(parsed.get("Error", {}).get("Code", "")) if isinstance(parsed, dict) else ""
        if code in ("AccessDenied", "AccessDeniedException"):  # refused by moto itself: recorded the same way
            _record(
                {
                    "operation": f"{service}:{model.name}",
                    "action": f"{service}:{model.name}",
                    "resource": "(moto)",
                    "allowed": False,
                }
            )
            return
        if service != "s3" or model.name not in ("HeadObject", "GetObject") or http_response.status_code != 404:
            return
        bucket = context.get("sandbox_params", {}).get("Bucket", "")
        action, resource = missing_key_needs(bucket)
        allowed = holder[0].allows(action, resource)
        _record({"operation": f"s3:{model.name}(404)", "action": action, "resource": resource, "allowed": allowed})
        if not allowed:  # what S3 answers a caller who may not learn whether the key exists
            parsed["Error"] = {"Code": "AccessDenied" if model.name == "GetObject" else "403", "Message": "Forbidden"}
            parsed.setdefault("ResponseMetadata", {})["HTTPStatusCode"] = 403

    events = client.meta.events
    events.register("before-parameter-build", keep_params)
    events.register("before-call", before_call)
    events.register("after-call", after_call)


def guard_clients(current: Current) -> None:
    """Hold every botocore client this process creates from now on to `current()`'s policy (none: unchecked)."""
    import botocore.client

    create_client = botocore.client.ClientCreator.create_client

    def create_and_guard(creator: Any, *args: Any, **kwargs: Any) -> Any:
        client = create_client(creator, *args, **kwargs)
        _register(client, current)
        return client

    botocore.client.ClientCreator.create_client = create_and_guard  # type: ignore[method-assign,assignment]


def install(config: dict[str, Any], function: str) -> None:
    """Hold the container's requests to its function's role (the image installs it before any fork)."""
    holder = (Policy(config["policies"]), str(config.get("principal", function)))
    guard_clients(lambda: holder)


def collect() -> list[dict[str, Any]]:
    """The requests seen since the last collect()."""
    with _lock:
        seen = list(_seen)
        _seen.clear()
    return seen
