#!/usr/bin/env python3
"""The floor of a Python sync: the least a Python program does to sync a repository into ``dir:``.

    python benchmarks/sync_floor.py HOST/REPO OUT [-j N] [--fsync]

Not ocilayout and not a tool: ``sync_bench.py --floor`` times it in the same rotation as ocilayout and
skopeo, to show how much of a sync's time any Python client on this machine pays. It imports urllib3 (one
pool, ``-j`` kept-alive connections) and nothing else outside the standard library; lists the tags, then,
``-j`` images at a time, GETs each manifest and its blobs, checks every digest, and writes
``OUT/REPO-NAME:TAG/{<hex>,manifest.json,version}`` as containers/image's ``dir:`` does. Everything else
ocilayout does is left out: no CLI parsing, no plan, no media-type checks or size limits, no retries, no
auth, no staging directory or atomic commit, no signatures or referrers, and without ``--fsync`` no fsync at
all (skopeo fsyncs the blobs; ocilayout every file it writes).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
from concurrent.futures import ThreadPoolExecutor

import urllib3

ACCEPT = ("application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("source", help="HOST:PORT/REPO of a plain-HTTP registry")
    ap.add_argument("out")
    ap.add_argument("-j", type=int, default=8)
    ap.add_argument("--fsync", action="store_true", help="fsync every file written")
    args = ap.parse_args()
    host, _, repo = args.source.partition("/")
    name, port = host.split(":")
    pool = urllib3.HTTPConnectionPool(name, int(port), maxsize=args.j)

    def get(path: str, accept: str | None = None) -> bytes:
        resp = pool.request("GET", path, headers={"Accept": accept} if accept else {})
        if resp.status != 200:
            raise SystemExit(f"GET {path}: {resp.status}")
        return bytes(resp.data)

    def write(directory: str, file: str, data: bytes) -> None:
        fd = os.open(os.path.join(directory, file), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            os.write(fd, data)
            if args.fsync:
                os.fsync(fd)
        finally:
            os.close(fd)

    def image(tag: str) -> None:
        directory = os.path.join(args.out, f"{repo.rsplit('/', 1)[-1]}:{tag}")
        os.mkdir(directory)
        raw = get(f"/v2/{repo}/manifests/{tag}", ACCEPT)
        manifest = json.loads(raw)
        for desc in [manifest["config"], *manifest["layers"]]:
            blob = get(f"/v2/{repo}/blobs/{desc['digest']}")
            if "sha256:" + hashlib.sha256(blob).hexdigest() != desc["digest"]:
                raise SystemExit(f"{desc['digest']}: digest mismatch")
            write(directory, desc["digest"].split(":", 1)[1], blob)
        write(directory, "manifest.json", raw)
        write(directory, "version", b"Directory Transport Version: 1.1\n")

    tags = json.loads(get(f"/v2/{repo}/tags/list"))["tags"]
    with ThreadPoolExecutor(args.j) as workers:
        list(workers.map(image, tags))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
