"""Admin command line: create, list, disable and enable accounts, rotate passwords.

    python -m callbridge.admin --stack callbridge create --caller-id 12812345678
    python -m callbridge.admin --endpoint-url http://127.0.0.1:3000/aws --table callbridge-AccountsTable list
    python -m callbridge.admin --stack callbridge --region us-east-1 create --caller-id 12812345678
    python -m callbridge.admin --sandbox list          # the sandbox `make run` started (make admin ARGS="list")
    python -m callbridge.admin --sandbox list --show-secrets   # webhook secrets in full (masked otherwise)
    python -m callbridge.admin --stack callbridge set-call-defaults cb_... --call-window 09:00-20:00 --call-days MON-FRI

A new password is printed once and never stored: only its salted scrypt hash is. A webhook secret is printed in
full by `create` and by `list --show-secrets`; every other output shows only its last characters.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from callbridge.adapters.dynamodb.accounts import DynamoAccountsStore
from callbridge.domain.accounts import (
    Account,
    hash_password,
    new_api_key,
    new_password,
    new_webhook_secret,
)
from callbridge.domain.calls import iso
from callbridge.domain.errors import ServiceUnavailable
from callbridge.domain.phones import to_e164
from callbridge.domain.scheduling import CallDateError, zone
from callbridge.domain.windows import WindowError, format_call_days, parse_call_days, parse_call_window

# Written by the running sandbox into its state directory (default .sandbox): its endpoints and table names.
SANDBOX_FILE = "sandbox.json"
SANDBOX_AWS_KEY = "sandbox"  # moto accepts any credentials; the sandbox's functions use these
# A masked webhook secret shows this many of its last characters (enough to tell secrets apart, far too few to
# sign with), and only for a secret at least MASK_BELOW long: a shorter one is shown as the mark alone.
SECRET_TAIL = 4
MASK_BELOW = 16
MASK = "..."


class AdminError(Exception):
    """A command that cannot be carried out; the message says why."""


def create_account(
    store: DynamoAccountsStore,
    *,
    caller_id: str,
    record: str = "NO",
    timezone: str = "UTC",
    name: str = "",
    sms_from: str | None = None,
    api_key: str | None = None,
    password: str | None = None,
    call_window: str | None = None,
    call_days: str | None = None,
    recipient_timezone: str | None = None,
    webhook_secret: str | None = None,
) -> tuple[Account, str]:
    """Create an account; returns it and its password (the only time the password exists in clear)."""
    problems: list[str] = []
    e164 = to_e164(caller_id)
    if e164 is None:
        problems.append(f"--caller-id: caller id {caller_id!r} is not an international phone number")
    sms = to_e164(sms_from) if sms_from else None
    if sms_from and sms is None:
        problems.append(f"--sms-from: SMS number {sms_from!r} is not an international phone number")
    if record.upper() not in ("YES", "NO"):
        problems.append("--record: record must be YES or NO")
    try:
        zone(timezone)
    except CallDateError as exc:
        problems.append(f"--timezone: {exc}")
    try:
        defaults = call_defaults(call_window, call_days, recipient_timezone)
    except AdminError as exc:
        problems.append(str(exc))
    if problems or e164 is None:
        raise AdminError("; ".join(problems))
    key = api_key or new_api_key()
    if store.get_account(key) is not None:
        raise AdminError(f"account {key} already exists")
    secret = password or new_password()
    account = Account(
        api_key=key,
        password_hash=hash_password(secret),
        caller_id=e164,
        record_default=record.upper(),
        timezone=timezone,
        webhook_secret=webhook_secret or new_webhook_secret(),
        sms_from=sms,
        name=name,
        created_at=iso(datetime.now(UTC)),
        **defaults,
    )
    store.put_account(account)
    return account, secret


def call_defaults(
    call_window: str | None, call_days: str | None, recipient_timezone: str | None
) -> dict[str, str | None]:
    """The account's calling-window defaults, checked ("" clears one); AdminError naming each flag that is wrong
    and why, all at once."""
    values: dict[str, str | None] = {}
    problems: list[str] = []
    try:
        if call_window is not None:
            values["call_window"] = call_window.strip() or None
            if call_window.strip():
                parse_call_window(call_window)
    except (WindowError, CallDateError) as exc:
        problems.append(f"--call-window: {exc}")
    try:
        if call_days is not None:
            values["call_days"] = format_call_days(parse_call_days(call_days)) if call_days.strip() else None
    except (WindowError, CallDateError) as exc:
        problems.append(f"--call-days: {exc}")
    try:
        if recipient_timezone is not None:
            values["recipient_timezone"] = recipient_timezone.strip() or None
            if recipient_timezone.strip():
                zone(recipient_timezone.strip())
    except (WindowError, CallDateError) as exc:
        problems.append(f"--recipient-timezone: {exc}")
    if problems:
        raise AdminError("; ".join(problems))
    return values


def set_call_defaults(
    store: DynamoAccountsStore,
    key: str,
    *,
    call_window: str | None = None,
    call_days: str | None = None,
    recipient_timezone: str | None = None,
) -> Account:
    """Set (or, with "", clear) an account's defaults for call_window, call_days and recipient_timezone."""
    update = call_defaults(call_window, call_days, recipient_timezone)
    account = _require(store, key).model_copy(update=update)
    store.put_account(account)
    return account


def _require(store: DynamoAccountsStore, key: str) -> Account:
    account = store.get_account(key)
    if account is None:
        raise AdminError(f"no account {key}")
    return account


def set_enabled(store: DynamoAccountsStore, key: str, enabled: bool) -> Account:
    account = _require(store, key).model_copy(update={"enabled": enabled})
    store.put_account(account)
    return account


def rotate_password(store: DynamoAccountsStore, key: str) -> str:
    secret = new_password()
    store.put_account(_require(store, key).model_copy(update={"password_hash": hash_password(secret)}))
    return secret


def _table_from_stack(session: Any, stack: str, endpoint_url: str | None) -> str:
    outputs = session.client("cloudformation", endpoint_url=endpoint_url).describe_stacks(StackName=stack)["Stacks"][0][
        "Outputs"
    ]
    for output in outputs:
        if output["OutputKey"] == "AccountsTableName":
            return str(output["OutputValue"])
    raise AdminError(f"stack {stack} has no AccountsTableName output")


def running_sandbox(state_dir: str) -> dict[str, str]:
    """Where the sandbox started from `state_dir` serves (its AWS endpoint and tables), if it is running."""
    path = Path(state_dir) / SANDBOX_FILE
    try:
        info = json.loads(path.read_text("utf-8"))
        os.kill(int(info["pid"]), 0)  # signal 0: only checks that the process exists
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise AdminError(f"no sandbox is running (nothing alive in {path}): start one with `make run`") from exc
    return {str(k): str(v) for k, v in info.items()}


def masked(secret: str) -> str:
    """A secret as output shows it unless asked for it: "...a1b2", its last SECRET_TAIL characters."""
    return MASK + secret[-SECRET_TAIL:] if len(secret) >= MASK_BELOW else MASK


def _public(account: Account, *, show_secrets: bool = False) -> dict[str, Any]:
    """An account as the commands print it: never its password hash; its webhook secret masked unless asked."""
    shown = account.model_dump(exclude={"password_hash"})
    if not show_secrets:
        shown["webhook_secret"] = masked(account.webhook_secret)
    return shown


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m callbridge.admin", description="Manage callbridge accounts.")
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--stack", help="CloudFormation stack name (reads its AccountsTableName output)")
    target.add_argument("--table", help="AccountsTable name")
    target.add_argument(
        "--sandbox", action="store_true", help="the running local sandbox (`make run`): finds its endpoint and table"
    )
    parser.add_argument("--sandbox-dir", default=".sandbox", help="the sandbox's state directory (default .sandbox)")
    parser.add_argument("--endpoint-url", help="AWS endpoint (another local AWS, for example)")
    parser.add_argument("--region", help="AWS region (default: your AWS configuration's)")
    commands = parser.add_subparsers(dest="command", required=True)
    create = commands.add_parser("create", help="create an account and print its credentials once")
    create.add_argument("--caller-id", required=True, help="default `from` number, e.g. 12812345678")
    create.add_argument("--record", default="NO", choices=["YES", "NO"], help="default `record`")
    create.add_argument("--timezone", default="UTC", help="IANA zone for call_date (default UTC)")
    create.add_argument("--sms-from", help="SMS-capable number for answermachine_sms")
    create.add_argument("--name", default="", help="a label for the account")
    create.add_argument("--api-key", help="use this API key instead of a generated one")
    defaults = commands.add_parser(
        "set-call-defaults", help="set the account's calling-window defaults (a request's own values win)"
    )
    defaults.add_argument("api_key")
    for sub in (create, defaults):
        sub.add_argument("--call-window", help="default call_window, HH:MM-HH:MM in the recipient's time ('' clears)")
        sub.add_argument("--call-days", help="default call_days, e.g. MON-FRI ('' clears)")
        sub.add_argument("--recipient-timezone", help="default recipient_timezone, an IANA zone ('' clears)")
    listing = commands.add_parser("list", help="list accounts (never passwords; webhook secrets masked)")
    listing.add_argument(
        "--show-secrets", action="store_true", help="print each account's webhook secret in full instead of ...a1b2"
    )
    for name, text in (("disable", "refuse the account's credentials"), ("enable", "accept them again")):
        sub = commands.add_parser(name, help=text)
        sub.add_argument("api_key")
    rotate = commands.add_parser("rotate-password", help="set and print a new password")
    rotate.add_argument("api_key")
    args = parser.parse_args(argv)

    try:
        import boto3
        import botocore.exceptions

        endpoint, region, key, secret, table = args.endpoint_url, args.region, None, None, args.table
        if args.sandbox:
            found = running_sandbox(args.sandbox_dir)
            endpoint, region, table = found["aws_endpoint"], found["region"], found["accounts_table"]
            # the sandbox's moto enforces IAM: its administrator's credentials are in the running file
            key = found.get("aws_access_key_id", SANDBOX_AWS_KEY)
            secret = found.get("aws_secret_access_key", SANDBOX_AWS_KEY)
        session = boto3.session.Session(aws_access_key_id=key, aws_secret_access_key=secret, region_name=region)
        if session.region_name is None:
            raise AdminError("no AWS region: pass --region (or set AWS_DEFAULT_REGION)")
        table = table or _table_from_stack(session, args.stack, endpoint)
        store = DynamoAccountsStore(table, dynamodb=session.client("dynamodb", endpoint_url=endpoint))
        if args.command == "create":
            account, password = create_account(
                store,
                caller_id=args.caller_id,
                record=args.record,
                timezone=args.timezone,
                name=args.name,
                sms_from=args.sms_from,
                api_key=args.api_key,
                call_window=args.call_window,
                call_days=args.call_days,
                recipient_timezone=args.recipient_timezone,
            )
            # the new account's webhook secret in full, beside its password: the receiver needs it to verify
            out: Any = {**_public(account, show_secrets=True), "password": password}
        elif args.command == "set-call-defaults":
            out = _public(
                set_call_defaults(
                    store,
                    args.api_key,
                    call_window=args.call_window,
                    call_days=args.call_days,
                    recipient_timezone=args.recipient_timezone,
                )
            )
        elif args.command == "list":
            out = [_public(a, show_secrets=args.show_secrets) for a in store.list_accounts()]
        elif args.command in ("disable", "enable"):
            out = _public(set_enabled(store, args.api_key, args.command == "enable"))
        else:
            out = {"api_key": args.api_key, "password": rotate_password(store, args.api_key)}
    except AdminError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError, ServiceUnavailable) as exc:
        print(f"error: AWS: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
