"""template.yaml as data: its resources created in any AWS endpoint (moto), its routes and event sources.

The sandbox and the integration tests both build AWS from here, so neither can drift from the
deployment.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = ROOT / "template.yaml"
ACCOUNT_ID = "123456789012"
REGION = "us-east-1"


# libyaml's parser when PyYAML has it (ten times faster than the pure-Python one), the same safe constructors.
_SafeLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _CfnLoader(_SafeLoader):  # type: ignore[misc,valid-type]
    """YAML loader that keeps CloudFormation short-form tags as {"Fn::X": ...}."""


def _tag(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> Any:
    name = "Ref" if suffix == "Ref" else f"Fn::{suffix}"
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
        if suffix == "GetAtt":
            value = value.split(".", 1)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
    return {name: value}


_CfnLoader.add_multi_constructor("!", _tag)


_PARSED: dict[tuple[Path, int, int], dict[str, Any]] = {}


def load_template(path: Path = TEMPLATE) -> dict[str, Any]:
    """The template as a dict, intrinsic functions kept as {"Ref": ...} / {"Fn::...": ...}.

    Parsed once per version of the file (a copy each time: callers may change theirs).
    """
    stat = path.stat()
    key = (path.resolve(), stat.st_mtime_ns, stat.st_size)
    if key not in _PARSED:
        with path.open() as handle:
            _PARSED[key] = yaml.load(handle, Loader=_CfnLoader)  # noqa: S506 - a SafeLoader subclass
    return copy.deepcopy(_PARSED[key])


@dataclass
class Stack:
    """Physical ids of the created resources, by logical id, and how to resolve intrinsics."""

    template: dict[str, Any]
    prefix: str
    refs: dict[str, str] = field(default_factory=dict)
    attrs: dict[tuple[str, str], str] = field(default_factory=dict)
    parameters: dict[str, str] = field(default_factory=dict)

    def resolve(self, value: Any) -> Any:
        """Resolve Ref, GetAtt, Sub and Join against what was created (and parameter defaults)."""
        if isinstance(value, dict) and len(value) == 1:
            ((key, arg),) = value.items()
            if key == "Ref":
                return self._ref(arg)
            if key == "Fn::GetAtt":
                return self.attrs[(arg[0], arg[1])]
            if key == "Fn::Sub":
                return self._sub(arg)
            if key == "Fn::Join":
                return str(arg[0]).join(str(self.resolve(part)) for part in self.resolve(arg[1]))
        if isinstance(value, dict):
            return {k: self.resolve(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.resolve(v) for v in value]
        return value

    def _ref(self, name: str) -> str:
        if name in self.refs:
            return self.refs[name]
        if name in self.parameters:
            return self.parameters[name]
        params = self.template.get("Parameters", {})
        if name in params:
            return str(params[name].get("Default", ""))
        pseudo = {
            "AWS::Region": REGION,
            "AWS::AccountId": ACCOUNT_ID,
            "AWS::URLSuffix": "amazonaws.com",
            "AWS::Partition": "aws",
            "AWS::StackName": self.prefix,
        }
        return pseudo.get(name, name)

    def _sub(self, arg: Any) -> str:
        text, extra = (arg, {}) if isinstance(arg, str) else (arg[0], arg[1])
        out = text
        while "${" in out:
            start = out.index("${")
            end = out.index("}", start)
            name = out[start + 2 : end]
            if name in extra:
                value = str(self.resolve(extra[name]))
            elif "." in name:
                logical, attr = name.split(".", 1)
                value = self.attrs[(logical, attr)]
            else:
                value = self._ref(name)
            out = out[:start] + value + out[end + 1 :]
        return out

    def environment(self, function: str) -> dict[str, str]:
        """The environment variables a function gets in the template (Globals merged)."""
        resources = self.template["Resources"]
        merged: dict[str, Any] = dict(
            self.template.get("Globals", {}).get("Function", {}).get("Environment", {}).get("Variables", {})
        )
        merged.update(resources[function]["Properties"].get("Environment", {}).get("Variables", {}))
        return {k: str(self.resolve(v)) for k, v in merged.items()}


def _table_kwargs(name: str, props: dict[str, Any]) -> dict[str, Any]:
    kwargs: dict[str, Any] = {
        "TableName": name,
        "AttributeDefinitions": props["AttributeDefinitions"],
        "KeySchema": props["KeySchema"],
        "BillingMode": props.get("BillingMode", "PAY_PER_REQUEST"),
    }
    if props.get("GlobalSecondaryIndexes"):
        kwargs["GlobalSecondaryIndexes"] = props["GlobalSecondaryIndexes"]
    if props.get("StreamSpecification"):
        kwargs["StreamSpecification"] = {"StreamEnabled": True, **props["StreamSpecification"]}
    return kwargs


def create_stack(
    clients: dict[str, Any],
    prefix: str = "callbridge",
    template: dict[str, Any] | None = None,
    parameters: dict[str, str] | None = None,
) -> Stack:
    """Create every table, queue, bucket and secret of the template with the given boto3 clients.

    `clients` maps service name ("dynamodb", "sqs", "s3", "secretsmanager") to a client.
    """
    template = template or load_template()
    unknown = set(parameters or {}) - set(template.get("Parameters", {}))
    if unknown:
        raise ValueError(f"unknown template parameters: {', '.join(sorted(unknown))}")
    stack = Stack(template=template, prefix=prefix, parameters=dict(parameters or {}))
    resources: dict[str, Any] = template["Resources"]
    # Queues first without redrive (DLQs must exist), then set redrive once all ARNs are known.
    for logical, res in resources.items():
        if res["Type"] == "AWS::SQS::Queue":
            name = f"{prefix}-{logical}"
            props = res.get("Properties", {})
            attributes = {
                k: str(props[k])
                for k in (
                    "VisibilityTimeout",
                    "MessageRetentionPeriod",
                    "DelaySeconds",
                    "ReceiveMessageWaitTimeSeconds",
                )
                if k in props
            }
            url = clients["sqs"].create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
            arn = clients["sqs"].get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
                "QueueArn"
            ]
            stack.refs[logical] = url
            stack.attrs[(logical, "Arn")] = arn
            stack.attrs[(logical, "QueueName")] = name
            stack.attrs[(logical, "QueueUrl")] = url
    for logical, res in resources.items():
        props = res.get("Properties", {})
        if res["Type"] == "AWS::SQS::Queue" and "RedrivePolicy" in props:
            redrive = stack.resolve(props["RedrivePolicy"])
            clients["sqs"].set_queue_attributes(
                QueueUrl=stack.refs[logical], Attributes={"RedrivePolicy": json.dumps(redrive)}
            )
        elif res["Type"] == "AWS::DynamoDB::Table":
            name = f"{prefix}-{logical}"
            db = clients["dynamodb"]
            description = db.create_table(**_table_kwargs(name, props))["TableDescription"]
            ttl = props.get("TimeToLiveSpecification")
            if ttl:
                db.update_time_to_live(TableName=name, TimeToLiveSpecification=ttl)
            stack.refs[logical] = name
            stack.attrs[(logical, "Arn")] = description["TableArn"]
            if "LatestStreamArn" in description:
                stack.attrs[(logical, "StreamArn")] = description["LatestStreamArn"]
        elif res["Type"] == "AWS::S3::Bucket" and "s3" in clients:
            name = f"{prefix}-{logical}".lower()
            clients["s3"].create_bucket(Bucket=name)
            stack.refs[logical] = name
            stack.attrs[(logical, "Arn")] = f"arn:aws:s3:::{name}"
        elif res["Type"] == "AWS::SecretsManager::Secret" and "secretsmanager" in clients:
            name = str(stack.resolve(props.get("Name", f"{prefix}-{logical}")))
            secret = props.get("SecretString")
            if secret is None:
                generated = props.get("GenerateSecretString", {})
                secret = json.loads(generated.get("SecretStringTemplate", "{}"))
                if "GenerateStringKey" in generated:
                    import secrets as _secrets

                    secret[generated["GenerateStringKey"]] = _secrets.token_hex(16)
                secret = json.dumps(secret)
            arn = clients["secretsmanager"].create_secret(Name=name, SecretString=str(stack.resolve(secret)))["ARN"]
            stack.refs[logical] = arn
            stack.attrs[(logical, "Id")] = arn
    return stack


@dataclass(frozen=True)
class Route:
    """One HTTP API route of a function."""

    function: str
    method: str
    path: str


def http_routes(template: dict[str, Any] | None = None) -> list[Route]:
    """Every HttpApi event of every function in the template."""
    template = template or load_template()
    routes = []
    for logical, res in template["Resources"].items():
        if res["Type"] != "AWS::Serverless::Function":
            continue
        for event in res["Properties"].get("Events", {}).values():
            if event["Type"] == "HttpApi":
                props = event["Properties"]
                routes.append(Route(logical, props["Method"].upper(), props["Path"]))
    return routes


def function_code(logical: str, template: dict[str, Any] | None = None) -> tuple[Path, str]:
    """(code directory, handler) of a function in the template."""
    template = template or load_template()
    props = template["Resources"][logical]["Properties"]
    return ROOT / props["CodeUri"], props["Handler"]


def function_layers(logical: str, template: dict[str, Any] | None = None) -> list[Path]:
    """The content directories of a function's layers (Globals' and its own), in order."""
    template = template or load_template()
    resources = template["Resources"]
    listed = [
        *template.get("Globals", {}).get("Function", {}).get("Layers", []),
        *resources[logical]["Properties"].get("Layers", []),
    ]
    found = []
    for layer in listed:
        name = layer.get("Ref") if isinstance(layer, dict) else None
        if name in resources and resources[name]["Type"] == "AWS::Serverless::LayerVersion":
            found.append(ROOT / resources[name]["Properties"]["ContentUri"])
    return found
