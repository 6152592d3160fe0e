"""`python -m sandbox.carrier`: the carrier simulator on its own, for trying a Twilio client against it."""

from __future__ import annotations

import argparse
import sys
import threading
import time

from sandbox.carrier.simulator import DEFAULT_ACCOUNT_SID, DEFAULT_AUTH_TOKEN, DEFAULT_NUMBERS, CarrierSimulator


def main(argv: list[str] | None = None) -> int:
    """Run until Ctrl-C, printing one line per call event."""
    parser = argparse.ArgumentParser(prog="python -m sandbox.carrier", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=0, help="port (default: any free port)")
    parser.add_argument("--account-sid", default=DEFAULT_ACCOUNT_SID)
    parser.add_argument("--auth-token", default=DEFAULT_AUTH_TOKEN)
    parser.add_argument("--cps", type=float, default=1.0, help="calls per second before calls queue (0: no limit)")
    parser.add_argument("--speed", type=float, default=1.0, help="simulated time runs N times faster")
    parser.add_argument("--press", default="1", help="digits the simulated person presses at a <Gather>")
    parser.add_argument("--faults", action="store_true", help="duplicate, reorder, delay and drop status callbacks")
    parser.add_argument("--seed", type=int, default=None, help="seed for the faults")
    parser.add_argument(
        "--number",
        action="append",
        default=None,
        metavar="E164",
        help="a number the account owns, the only kind Twilio accepts as From (repeatable; default +15005550006)",
    )
    args = parser.parse_args(argv)

    def log(line: str) -> None:
        print(f"{time.strftime('%H:%M:%S')} {line}", flush=True)

    sim = CarrierSimulator(
        args.account_sid,
        args.auth_token,
        cps=args.cps or None,
        speed=args.speed,
        press=args.press,
        faults=args.faults,
        seed=args.seed,
        log=log,
        numbers=args.number or DEFAULT_NUMBERS,
    )
    sim.start(host=args.host, port=args.port)
    print(f"carrier simulator on {sim.api_url}/Calls.json  (Basic {args.account_sid}:{args.auth_token})", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        sim.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
