"""`python -m sandbox`: run all of callbridge on this machine — no AWS account, no carrier account, no Docker."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
import time
from pathlib import Path
from types import FrameType

from sandbox.runtime import PortBusy, Sandbox, SandboxConfig


def _account(value: str) -> tuple[str, str]:
    key, sep, password = value.partition(":")
    if not sep or not key or not password:
        raise argparse.ArgumentTypeError("must be KEY:PASSWORD")
    return key, password


def _positive(value: str) -> float:
    number = float(value)
    if number <= 0:
        raise argparse.ArgumentTypeError("must be greater than 0")
    return number


def _digits(value: str) -> str:
    if any(c not in "0123456789*#w" for c in value):
        raise argparse.ArgumentTypeError("must be DTMF digits (0-9, *, #)")
    return value


def parse_args(argv: list[str] | None = None) -> SandboxConfig:
    parser = argparse.ArgumentParser(
        prog="python -m sandbox",
        description=(
            "Run callbridge locally: moto (server mode) as AWS with every resource of template.yaml, "
            "the real Lambda handlers behind a local API Gateway, the queue/stream/schedule event sources, "
            "and a carrier simulator speaking Twilio's protocol."
        ),
    )
    parser.add_argument("--host", default="127.0.0.1", help="interface to serve the API on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=3000, help="API port (default 3000)")
    parser.add_argument(
        "--account",
        type=_account,
        metavar="KEY:PASSWORD",
        help="demo account credentials (default: those kept in the state directory, generated on the first start)",
    )
    parser.add_argument(
        "--state-dir",
        type=Path,
        default=Path(".sandbox"),
        metavar="DIR",
        help="keeps the demo account across restarts and tells `make admin` where the sandbox is (default .sandbox)",
    )
    parser.add_argument(
        "--speed", type=_positive, default=1.0, metavar="N", help="play simulated call time N times faster"
    )
    parser.add_argument(
        "--press", type=_digits, default="1", metavar="DIGITS", help="digits the simulated person presses at a Gather"
    )
    parser.add_argument(
        "--schedule-every",
        type=_positive,
        metavar="SECONDS",
        help="fire the scheduler this often instead of the template's rate divided by --speed (at least 1 s)",
    )
    parser.add_argument(
        "--faults", action="store_true", help="duplicate, reorder, delay and drop carrier status callbacks"
    )
    parser.add_argument(
        "--seed",
        type=int,
        metavar="N",
        help="seed for the carrier's fault draws (with --faults; default: drawn, and printed at start)",
    )
    parser.add_argument(
        "--parameter-overrides",
        nargs="+",
        default=[],
        metavar="KEY=VALUE",
        help="template parameters, as `sam deploy --parameter-overrides` takes them (e.g. CarrierCallsPerSecond=5)",
    )
    args = parser.parse_args(argv)
    overrides = {}
    for item in args.parameter_overrides:
        key, sep, value = item.partition("=")
        if not sep or not key:
            parser.error(f"--parameter-overrides: {item!r} is not KEY=VALUE")
        overrides[key] = value
    return SandboxConfig(
        host=args.host,
        port=args.port,
        account=args.account,
        speed=args.speed,
        press=args.press,
        schedule_every=args.schedule_every,
        faults=args.faults,
        seed=args.seed,
        parameters=overrides,
        state_dir=args.state_dir,
        log=lambda line: print(f"{time.strftime('%H:%M:%S')} {line}", flush=True),
    )


def banner(sandbox: Sandbox) -> str:
    info = sandbox.summary()
    return "\n".join(
        [
            "callbridge sandbox is running",
            f"  API            {info['base_url']}/pcall/  (docs: {info['base_url']}/pcall/docs)",
            f"  AWS (moto)     {info['aws_endpoint']}",
            f"  demo account   {info['api_key']}:{info['password']}",
            f"  webhook secret {info['webhook_secret']}  (signs outcome callbacks: X-Callbridge-Signature)",
            f"  console        {info['base_url']}/pcall/console",
            "",
            "Try the vendor's curl example:",
            f"  curl -u {info['api_key']}:{info['password']} "
            f'--data "to=12812345670&answer_play=http://example.com/file.wav" {info["base_url"]}/pcall/call',
            "",
            "Press Ctrl-C to stop.",
        ]
    )


def main(argv: list[str] | None = None) -> int:
    config = parse_args(argv)
    sandbox = Sandbox(config)
    stop = threading.Event()

    def _signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, _signal)
    signal.signal(signal.SIGTERM, _signal)
    try:
        sandbox.start()
    except (PortBusy, ValueError) as exc:
        sandbox.stop()
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except BaseException:
        sandbox.stop()
        raise
    print(banner(sandbox), flush=True)
    try:
        while not stop.wait(0.5):
            pass
    finally:
        config.log("stopping")
        sandbox.stop()
        config.log("stopped")
    return 0


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    # Everything is stopped; skip the interpreter's slow teardown of every loaded module so Ctrl-C ends it at once.
    os._exit(code)
