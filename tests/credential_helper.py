"""A real docker-credential helper for the tests: docker's store/get/erase/list protocol over stdin/stdout.

Run as ``docker-credential-<name> ACTION`` (a wrapper in a temp bin directory execs this file). It keeps its
store in ``$TEST_CRED_STORE`` (one JSON file per server URL) and appends ``ACTION SERVER`` to
``$TEST_CRED_STORE/calls.log``. ``$TEST_CRED_FAIL`` (actions, comma-separated) makes those actions fail
with a message that repeats what it was given (so a caller that shows helper output unredacted leaks the
secret).
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path

NOT_FOUND = "credentials not found in native keychain"


def main() -> int:
    action = sys.argv[1] if len(sys.argv) > 1 else ""
    store = Path(os.environ["TEST_CRED_STORE"])
    store.mkdir(parents=True, exist_ok=True)
    data = sys.stdin.read()
    if action in os.environ.get("TEST_CRED_FAIL", "").split(","):
        print(f"helper broke while handling: {data}")
        return 1
    server = data.strip()
    if action == "store":
        doc = json.loads(data)
        server = doc["ServerURL"]
    with (store / "calls.log").open("a") as log:
        log.write(f"{action} {server}\n")

    def entry(url: str) -> Path:
        return store / (hashlib.sha256(url.encode()).hexdigest() + ".json")

    if action == "store":
        entry(server).write_text(json.dumps(doc))
        return 0
    if action == "get":
        if not entry(server).exists():
            print(NOT_FOUND)
            return 1
        print(entry(server).read_text())
        return 0
    if action == "erase":
        if not entry(server).exists():
            print(NOT_FOUND)
            return 1
        entry(server).unlink()
        return 0
    if action == "list":
        out = {}
        for f in store.glob("*.json"):
            doc = json.loads(f.read_text())
            out[doc["ServerURL"]] = doc["Username"]
        print(json.dumps(out))
        return 0
    print(f"unknown action {action!r}")
    return 1


if __name__ == "__main__":
    sys.exit(main())
