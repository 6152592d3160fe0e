"""Each function's IAM role as the deployment gets it, and IAM's verdict on an AWS request.

`sam deploy` turns each function's `Policies` (statements, SAM policy templates) into a role with inline
policies, and attaches the managed policies its events need (SQS, DynamoDB streams, X-Ray, logs). The
sandbox does the same with aws-sam-translator, the library `sam` itself runs, so the roles here are the
deployed ones: `function_policies()` gives every policy document of a function's role, intrinsics resolved
against the sandbox's stack.

`Policy` evaluates a request like IAM does for identity policies (an explicit Deny wins, then any Allow; `*`
and `?` wildcards; NotAction and NotResource). `requested()` says which actions on which resources an AWS
API request needs, for the services callbridge uses.
"""

from __future__ import annotations

import copy
import fnmatch
import json
from dataclasses import dataclass
from functools import cache
from typing import Any
from urllib.parse import urlparse

from sandbox.template import ACCOUNT_ID, REGION, Stack


@dataclass(frozen=True)
class Role:
    """A function's execution role: inline policy documents and managed policy ARNs (intrinsics unresolved)."""

    function: str
    inline: tuple[tuple[str, Any], ...]
    managed: tuple[str, ...]


def translate(template: dict[str, Any]) -> dict[str, Any]:
    """The template as CloudFormation, transformed by aws-sam-translator as `sam deploy` transforms it."""
    import boto3
    from samtranslator.parser.parser import Parser
    from samtranslator.translator.translator import Translator

    document = copy.deepcopy(template)
    for resource in document.get("Resources", {}).values():
        props = resource.get("Properties", {})
        # Code locations do not matter to roles; the translator wants them uploaded (as `sam package` does).
        for key in ("CodeUri", "ContentUri"):
            if isinstance(props.get(key), str):
                props[key] = f"s3://sandbox/{key}.zip"
    translator = Translator(None, Parser(), boto_session=boto3.session.Session(region_name=REGION))
    result: dict[str, Any] = translator.translate(document, parameter_values={}, get_managed_policy_map=dict)
    return result


def roles(template: dict[str, Any]) -> dict[str, Role]:
    """Every function's execution role, by the function's logical id."""
    resources = translate(template)["Resources"]
    found: dict[str, Role] = {}
    for logical, resource in resources.items():
        if resource["Type"] != "AWS::Lambda::Function":
            continue
        role_ref = resource["Properties"]["Role"]
        role_logical = role_ref["Fn::GetAtt"][0] if isinstance(role_ref, dict) else None
        if role_logical is None or role_logical not in resources:
            raise ValueError(f"{logical}: an explicit Role is not supported by the sandbox")
        props = resources[role_logical]["Properties"]
        inline = tuple((p["PolicyName"], p["PolicyDocument"]) for p in props.get("Policies", []))
        found[logical] = Role(logical, inline, tuple(props.get("ManagedPolicyArns", [])))
    return found


@cache
def _managed_policies_text() -> str:
    # moto ships the documents of AWS's managed policies (refreshed from AWS with each release) as one JSON
    # string in a module; reading the few this template uses from its source is much faster than importing it.
    import importlib.util
    from pathlib import Path

    spec = importlib.util.find_spec("moto")  # not moto.iam: importing that package costs seconds
    if spec is None or spec.origin is None:
        raise RuntimeError("moto is not installed")
    return (Path(spec.origin).parent / "iam" / "aws_managed_policies.py").read_text(encoding="utf-8")


@cache
def managed_document(arn: str) -> dict[str, Any]:
    """The policy document of an AWS managed policy, by ARN."""
    name = arn.rsplit("/", 1)[-1]
    text = _managed_policies_text()
    start = text.find(f'"{name}":')
    if start < 0:
        raise ValueError(f"unknown managed policy {arn}")
    entry, _ = json.JSONDecoder().raw_decode(text, text.index("{", start))
    document: dict[str, Any] = entry["Document"]
    return document


def function_policies(stack: Stack, found: dict[str, Role] | None = None) -> dict[str, dict[str, Any]]:
    """Every function's role as named policy documents (inline ones, then managed ones by ARN), resolved.

    `found`: the template's roles() when already worked out (translating takes a second).
    """
    result: dict[str, dict[str, Any]] = {}
    for logical, role in (found if found is not None else roles(stack.template)).items():
        documents: dict[str, Any] = {name: stack.resolve(doc) for name, doc in role.inline}
        for arn in role.managed:
            documents[str(stack.resolve(arn))] = managed_document(str(stack.resolve(arn)))
        result[logical] = documents
    return result


# IAM action prefixes that are not the name of the boto3 client calling them.
_CLIENTS = {"dynamodb": ["dynamodb", "dynamodbstreams"]}
_NOT_CALLED = ("logs", "xray", "cloudwatch")  # Lambda's runtime and X-Ray's daemon use these, not the code


def services_called(documents: dict[str, Any]) -> list[str]:
    """The boto3 clients a role lets its function use: those of the services its policies grant actions of."""
    prefixes = {
        str(action).split(":", 1)[0].lower()
        for doc in documents.values()
        for statement in _as_list(doc.get("Statement", []))
        if statement.get("Effect") == "Allow"
        for action in _as_list(statement.get("Action", []))
        if ":" in str(action)
    }
    return sorted({client for p in prefixes - set(_NOT_CALLED) for client in _CLIENTS.get(p, [p])})


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _matches(patterns: Any, value: str, *, case: bool) -> bool:
    for pattern in _as_list(patterns):
        if case and fnmatch.fnmatchcase(value, str(pattern)):
            return True
        if not case and fnmatch.fnmatchcase(value.lower(), str(pattern).lower()):
            return True
    return False


class Policy:
    """A role's identity policies, evaluated as IAM does (no resource policies, boundaries or SCPs here)."""

    def __init__(self, documents: dict[str, Any]) -> None:
        self.statements = [s for doc in documents.values() for s in _as_list(doc.get("Statement", []))]

    @staticmethod
    def _applies(statement: dict[str, Any], action: str, resource: str) -> bool:
        if "Action" in statement:
            action_ok = _matches(statement["Action"], action, case=False)
        else:
            action_ok = not _matches(statement.get("NotAction", []), action, case=False)
        if "Resource" in statement:
            resource_ok = _matches(statement["Resource"], resource, case=True)
        else:
            resource_ok = not _matches(statement.get("NotResource", []), resource, case=True)
        return action_ok and resource_ok

    def allows(self, action: str, resource: str) -> bool:
        """True if some statement allows `action` on `resource` and none denies it.

        A statement with a Condition cannot be judged without the request's context: an Allow with one
        grants nothing here (stricter than AWS), a Deny with one denies (also stricter).
        """
        allowed = False
        for statement in self.statements:
            if not self._applies(statement, action, resource):
                continue
            if statement.get("Effect") == "Deny":
                return False
            if "Condition" not in statement:
                allowed = True
        return allowed


# ---------------------------------------------------------------------------------------------- requests

# API operations whose IAM action has another name.
_ACTION_NAMES = {
    ("sqs", "SendMessageBatch"): "SendMessage",
    ("sqs", "DeleteMessageBatch"): "DeleteMessage",
    ("sqs", "ChangeMessageVisibilityBatch"): "ChangeMessageVisibility",
    ("s3", "HeadObject"): "GetObject",
    ("s3", "ListObjectsV2"): "ListBucket",
    ("s3", "ListObjects"): "ListBucket",
    ("s3", "HeadBucket"): "ListBucket",
}
# IAM's prefix for a botocore service name, where they differ.
_PREFIXES = {"dynamodbstreams": "dynamodb", "monitoring": "cloudwatch", "events": "events"}
# TransactWriteItems needs the action of each of its parts on that part's table.
_TRANSACT_PARTS = {
    "Put": "PutItem",
    "Update": "UpdateItem",
    "Delete": "DeleteItem",
    "ConditionCheck": "ConditionCheckItem",
}


def _table(name: str, region: str, account: str) -> str:
    if name.startswith("arn:"):
        return name
    return f"arn:aws:dynamodb:{region}:{account}:table/{name}"


def _queue(url: str, region: str, account: str) -> str:
    path = urlparse(url).path.strip("/").split("/")
    owner, name = (path[0], path[-1]) if len(path) >= 2 else (account, path[-1])
    return f"arn:aws:sqs:{region}:{owner}:{name}"


def requested(
    service: str, operation: str, params: dict[str, Any], *, region: str = REGION, account: str = ACCOUNT_ID
) -> list[tuple[str, str]]:
    """The (IAM action, resource ARN) pairs an API request needs; resource "*" where IAM has no resource.

    Covers the resource types callbridge uses (DynamoDB tables and indexes, SQS queues, S3 buckets and
    objects, Secrets Manager secrets); any other request is judged as `prefix:Operation` on "*".
    """
    prefix = _PREFIXES.get(service, service)
    action = f"{prefix}:{_ACTION_NAMES.get((service, operation), operation)}"
    if service == "dynamodb":
        if operation == "TransactWriteItems":
            pairs = []
            for item in params.get("TransactItems", []):
                ((kind, part),) = item.items()
                pairs.append((f"dynamodb:{_TRANSACT_PARTS[kind]}", _table(part["TableName"], region, account)))
            return pairs
        if operation == "TransactGetItems":
            return [
                ("dynamodb:GetItem", _table(item["Get"]["TableName"], region, account))
                for item in params.get("TransactItems", [])
            ]
        if operation in ("BatchGetItem", "BatchWriteItem"):
            return [(action, _table(name, region, account)) for name in params.get("RequestItems", {})]
        if "TableName" in params:
            table = _table(params["TableName"], region, account)
            if params.get("IndexName"):
                table = f"{table}/index/{params['IndexName']}"
            return [(action, table)]
        return [(action, "*")]
    if service == "dynamodbstreams" and "StreamArn" in params:
        return [(action, params["StreamArn"])]
    if service == "sqs" and "QueueUrl" in params:
        return [(action, _queue(params["QueueUrl"], region, account))]
    if service == "s3" and "Bucket" in params:
        if "Key" in params:
            return [(action, f"arn:aws:s3:::{params['Bucket']}/{params['Key']}")]
        return [(action, f"arn:aws:s3:::{params['Bucket']}")]
    if service == "secretsmanager" and "SecretId" in params:
        secret = str(params["SecretId"])
        if not secret.startswith("arn:"):
            secret = f"arn:aws:secretsmanager:{region}:{account}:secret:{secret}-??????"
        return [(action, secret)]
    return [(action, "*")]


def missing_key_needs(bucket: str) -> tuple[str, str]:
    """S3 answers a GET/HEAD of a missing key with 404 only to a caller who may list the bucket; else 403."""
    return ("s3:ListBucket", f"arn:aws:s3:::{bucket}")
