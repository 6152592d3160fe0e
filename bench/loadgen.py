"""`python -m bench.loadgen BASE_URL KEY PASSWORD N CONCURRENCY [JSON_PARAMS [RATE]]`: POST N calls, print timings.

A separate process, as API callers are: the sandbox's own threads do not compete with the client
for the interpreter lock, and the times it prints are `time.monotonic()`, which on Linux is the
same clock (CLOCK_MONOTONIC) in every process of the machine. One JSON object per call on stdout:
{"i", "callid", "sent", "done", "status"}; a list of params may be given, used round-robin, where
"{i}" in a value becomes the call's number ("-": the default). RATE > 0 sends call i at i / RATE seconds
after the start (open loop, as independent callers do) instead of as fast as CONCURRENCY allows.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx

DEFAULT_PARAMS = [{"to": "12812345670", "answer_play": "http://example.com/bench.wav"}]


def main(argv: list[str]) -> int:
    base_url, key, password, count, concurrency = argv[0], argv[1], argv[2], int(argv[3]), int(argv[4])
    params_list: list[dict[str, str]] = json.loads(argv[5]) if len(argv) > 5 and argv[5] != "-" else DEFAULT_PARAMS
    rate = float(argv[6]) if len(argv) > 6 else 0.0
    start = time.monotonic() + 0.2
    local = threading.local()
    lock = threading.Lock()

    def client() -> httpx.Client:
        if not hasattr(local, "client"):
            local.client = httpx.Client(base_url=base_url, auth=(key, password), timeout=60)
        return local.client  # type: ignore[no-any-return]

    def one(i: int) -> None:
        params = {k: v.replace("{i}", str(i)) for k, v in params_list[i % len(params_list)].items()}
        if rate > 0:
            time.sleep(max(0.0, start + i / rate - time.monotonic()))
        sent = time.monotonic()
        try:
            response = client().post("/pcall/call", data=params)
            status = response.status_code
            callid = response.json().get("data", {}).get("callid", "") if status == 200 else ""
            error = "" if status == 200 else response.text[:200]
        except httpx.HTTPError as exc:
            status, callid, error = 0, "", f"{type(exc).__name__}: {exc}"
        done = time.monotonic()
        line = json.dumps({"i": i, "callid": callid, "sent": sent, "done": done, "status": status, "error": error})
        with lock:
            sys.stdout.write(line + "\n")

    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(one, range(count)))
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
