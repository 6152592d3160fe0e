"""Who signs what in the sandbox's moto: an administrator for the sandbox itself, each function as its own role.

moto enforces IAM once its "no-auth" request allowance is used up: every request must then be signed with
credentials moto issued, and the action must be allowed by that identity's policies. The sandbox creates its
administrator while enforcement is off, switches enforcement on (moto's `/moto-api/reset-auth`, the same
setting as `INITIAL_NO_AUTH_ACTION_COUNT`), then creates one role per function from the template's expanded
policies (sandbox/iam.py) and assumes it, as Lambda does, to get the credentials that function's containers use.

What moto's own check cannot see, the sandbox's policy guard checks inside each container (see the README):
moto matches DynamoDB, Secrets Manager and Polly requests against the resource `*`, so the role moto holds
grants those actions on `*` (the guard checks the real resources), and it names some actions its own way (SQS's
batch operations, which IAM authorizes as the single ones; Polly's SynthesizeSpeech as `polly:speech`), and
DynamoDB's transactions as actions of their own, while IAM authorizes each part), so its copy grants both
names.
"""

from __future__ import annotations

import json
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import httpx

from sandbox.template import REGION

# Services whose requests moto authorizes against a real resource ARN; the others it checks against "*".
_RESOURCE_CHECKED = ("sqs:", "s3:", "iam:", "sts:")
_MOTO_ACTION_ALIASES = {
    "sqs:sendmessage": ["sqs:SendMessageBatch"],
    "sqs:deletemessage": ["sqs:DeleteMessageBatch"],
    "sqs:changemessagevisibility": ["sqs:ChangeMessageVisibilityBatch"],
    "polly:synthesizespeech": ["polly:speech"],  # moto names the action after the REST path, /v1/speech
    # IAM authorizes a transaction by the action of each of its parts; moto, by the operation's name
    "dynamodb:putitem": ["dynamodb:TransactWriteItems"],
    "dynamodb:updateitem": ["dynamodb:TransactWriteItems"],
    "dynamodb:deleteitem": ["dynamodb:TransactWriteItems"],
    "dynamodb:conditioncheckitem": ["dynamodb:TransactWriteItems"],
    "dynamodb:getitem": ["dynamodb:TransactGetItems"],
}
SESSION_SECONDS = 43200


@dataclass(frozen=True)
class Credentials:
    access_key_id: str
    secret_access_key: str
    session_token: str = ""

    def environment(self) -> dict[str, str]:
        """As the AWS_* variables Lambda gives a function."""
        env = {"AWS_ACCESS_KEY_ID": self.access_key_id, "AWS_SECRET_ACCESS_KEY": self.secret_access_key}
        if self.session_token:
            env["AWS_SESSION_TOKEN"] = self.session_token
        return env

    def session(self) -> Any:
        import boto3

        return boto3.session.Session(
            aws_access_key_id=self.access_key_id,
            aws_secret_access_key=self.secret_access_key,
            aws_session_token=self.session_token or None,
            region_name=REGION,
        )


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def moto_document(document: dict[str, Any]) -> dict[str, Any]:
    """The copy of a policy moto gets: what it can check kept exact, the rest widened for the guard to check."""
    statements = []
    for original in _as_list(document.get("Statement", [])):
        statement = dict(original)
        actions = [str(a) for a in _as_list(statement.get("Action", []))]
        if actions:
            extra = [alias for a in actions for alias in _MOTO_ACTION_ALIASES.get(a.lower(), [])]
            statement["Action"] = sorted(set(actions + extra), key=(actions + extra).index)
            if statement.get("Effect") == "Allow" and not all(a.lower().startswith(_RESOURCE_CHECKED) for a in actions):
                statement["Resource"] = "*"
        statements.append(statement)
    return {"Version": "2012-10-17", "Statement": statements}


def _policy_name(name: str) -> str:
    return re.sub(r"[^\w+=,.@-]", "-", name.rsplit("/", 1)[-1])[:128]


def start_enforcing(endpoint: str) -> Credentials:
    """Create the sandbox's administrator (enforcement still off), then turn enforcement on in moto."""
    import boto3

    iam = boto3.session.Session(
        aws_access_key_id="bootstrap",
        aws_secret_access_key="bootstrap",  # noqa: S106 - accepted while moto does not enforce IAM yet
        region_name=REGION,
    ).client("iam", endpoint_url=endpoint)
    iam.create_user(UserName="sandbox-admin")
    iam.put_user_policy(
        UserName="sandbox-admin",
        PolicyName="everything",
        PolicyDocument=json.dumps(
            {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}
        ),
    )
    key = iam.create_access_key(UserName="sandbox-admin")["AccessKey"]
    httpx.post(f"{endpoint}/moto-api/reset-auth", content=b"0", timeout=10).raise_for_status()
    return Credentials(key["AccessKeyId"], key["SecretAccessKey"])


def function_roles(
    admin: Credentials, endpoint: str, prefix: str, policies: dict[str, dict[str, Any]]
) -> dict[str, Credentials]:
    """Create each function's role from its policy documents and assume it; credentials by function."""
    session = admin.session()
    iam = session.client("iam", endpoint_url=endpoint)
    sts = session.client("sts", endpoint_url=endpoint)
    admin_arn = sts.get_caller_identity()["Arn"]
    # The sandbox stands in for the Lambda service, which is the principal the template's roles trust.
    trust = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"AWS": admin_arn}, "Action": "sts:AssumeRole"}],
    }

    def create(logical: str) -> Credentials:
        name = f"{prefix}-{logical}"[:64]
        role = iam.create_role(
            RoleName=name, AssumeRolePolicyDocument=json.dumps(trust), MaxSessionDuration=SESSION_SECONDS
        )["Role"]
        for policy_name, document in policies[logical].items():
            iam.put_role_policy(
                RoleName=name, PolicyName=_policy_name(policy_name), PolicyDocument=json.dumps(moto_document(document))
            )
        assumed = sts.assume_role(RoleArn=role["Arn"], RoleSessionName=logical[:64], DurationSeconds=SESSION_SECONDS)
        credentials = assumed["Credentials"]
        return Credentials(credentials["AccessKeyId"], credentials["SecretAccessKey"], credentials["SessionToken"])

    with ThreadPoolExecutor(max_workers=8) as pool:
        return dict(zip(policies, pool.map(create, policies), strict=True))
