#!/usr/bin/env python3
"""fsck: wall time against plain hashlib over the same files, and peak memory against the blob count.

Not a test: a measuring harness. Builds (once, cached) under ``WORK`` (default ``benchmarks/work/fsck/``,
gitignored):

* ``one/``: one image whose only layer is a 500 MB incompressible uncompressed-tar blob (seeded);
* ``many-5k/``, ``many-51k/``: 100 and 1,000 images of 49 tiny layers each (5,100 and 51,000 blobs).

Then, alternating the two commands run by run after a warm-up (page cache warm), it times

* ``ocilayout fsck one`` against ``python -c '<hashlib.sha256 over the same blob files, 1 MiB readinto>'``,
  both as fresh processes, start-up included: the ratio fsck / hashlib (target <= 1.25);
* ``ocilayout fsck many-5k`` and ``many-51k``: wall time and peak RSS (GNU ``time -f %M``); memory is flat
  when the 45,900 extra blobs cost little (target: < 512 bytes of peak RSS per extra blob: one compact key
  each, no per-blob job objects).

Usage: .venv/bin/python benchmarks/fsck_bench.py [--runs 7] [--work DIR] [--size-mb 500] [--json FILE]
       [--baseline 'CMD'] (another ocilayout, e.g. an older checkout, measured in the same rotation)
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
DEFAULT_WORK = HERE / "work" / "fsck"
MiB = 1 << 20
LAYER_TAR = "application/vnd.oci.image.layer.v1.tar"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
PLAIN = """
import hashlib, sys
buf = bytearray(1 << 20); view = memoryview(buf)
for p in sys.argv[1:]:
    h = hashlib.sha256()
    with open(p, "rb") as f:
        while n := f.readinto(buf):
            h.update(view[:n])
    print(h.hexdigest())
"""


def _put(root: Path, data: bytes) -> dict[str, Any]:
    hexd = hashlib.sha256(data).hexdigest()
    (root / "blobs" / "sha256" / hexd).write_bytes(data)
    return {"digest": f"sha256:{hexd}", "size": len(data)}


def _layout(root: Path, entries: list[dict[str, Any]]) -> None:
    (root / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    index = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": entries}
    (root / "index.json").write_text(json.dumps(index, separators=(",", ":")))


def _image(root: Path, layers: list[dict[str, Any]], diff_ids: list[str], tag: str) -> dict[str, Any]:
    cfg = {"architecture": "amd64", "os": "linux", "created": "2024-01-01T00:00:00Z",
           "rootfs": {"type": "layers", "diff_ids": diff_ids}, "config": {"Env": ["PATH=/bin"]}}
    config = _put(root, json.dumps(cfg, separators=(",", ":")).encode())
    doc = {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": {"mediaType": OCI_CONFIG, **config},
           "layers": [{"mediaType": LAYER_TAR, **layer} for layer in layers]}
    entry = _put(root, json.dumps(doc, separators=(",", ":")).encode())
    return {"mediaType": OCI_MANIFEST, **entry, "annotations": {"org.opencontainers.image.ref.name": tag}}


def build_one(root: Path, size_mb: int) -> Path:
    """One image with one incompressible layer of ``size_mb`` MB (written in 1 MiB chunks, seeded)."""
    stamp = root / ".built"
    if stamp.exists() and stamp.read_text() == str(size_mb):
        return root
    shutil.rmtree(root, ignore_errors=True)
    (root / "blobs" / "sha256").mkdir(parents=True)
    rng = random.Random(1)
    h = hashlib.sha256()
    size = size_mb * 1000 * 1000
    tmp = root / "blobs" / "sha256" / "tmp"
    with open(tmp, "wb") as f:
        left = size
        while left:
            chunk = rng.randbytes(min(MiB, left))
            h.update(chunk)
            f.write(chunk)
            left -= len(chunk)
    hexd = h.hexdigest()
    tmp.rename(tmp.with_name(hexd))
    layer = {"digest": f"sha256:{hexd}", "size": size}
    _layout(root, [_image(root, [layer], [f"sha256:{hexd}"], "one")])
    stamp.write_text(str(size_mb))
    return root


def build_many(root: Path, images: int, layers: int = 49) -> Path:
    """``images`` images of ``layers`` distinct tiny layers each: images * (layers + 2) blobs."""
    stamp = root / ".built"
    if stamp.exists() and stamp.read_text() == f"{images}x{layers}":
        return root
    shutil.rmtree(root, ignore_errors=True)
    (root / "blobs" / "sha256").mkdir(parents=True)
    entries = []
    for i in range(images):
        descs = [_put(root, f"image {i} layer {j}\n".encode()) for j in range(layers)]
        entries.append(_image(root, descs, [d["digest"] for d in descs], f"t{i}"))
    _layout(root, entries)
    stamp.write_text(f"{images}x{layers}")
    return root


def _ocilayout() -> list[str]:
    script = Path(sys.executable).with_name("ocilayout")
    return [str(script)] if script.exists() else [sys.executable, "-m", "ocilayout"]


def run(cmd: list[str]) -> tuple[float, int, float]:
    """(wall seconds, peak RSS in KiB, user + system CPU seconds) of one run of ``cmd``; raises when it fails."""
    gnu_time = shutil.which("time", path="/usr/bin")
    with tempfile.NamedTemporaryFile("r") as out:
        full = [gnu_time, "-f", "%M %U %S", "-o", out.name, *cmd] if gnu_time else cmd
        t = time.perf_counter()
        proc = subprocess.run(full, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        wall = time.perf_counter() - t
        if proc.returncode != 0:
            raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}): {proc.stderr.decode()[-500:]}")
        rss, user, system = out.read().strip().splitlines()[-1].split() if gnu_time else ("0", "0", "0")
    return wall, int(rss), float(user) + float(system)


def measure(cmds: dict[str, list[str]], runs: int) -> dict[str, dict[str, Any]]:
    """Each command once as a warm-up, then ``runs`` times, rotating; median and min wall, median CPU time
    (steadier than wall time on a busy machine), max RSS."""
    for cmd in cmds.values():
        run(cmd)
    walls: dict[str, list[float]] = {k: [] for k in cmds}
    rss: dict[str, list[int]] = {k: [] for k in cmds}
    cpu: dict[str, list[float]] = {k: [] for k in cmds}
    for _ in range(runs):
        for name, cmd in cmds.items():
            w, r, c = run(cmd)
            walls[name].append(w)
            rss[name].append(r)
            cpu[name].append(c)
    return {k: {"median_s": statistics.median(walls[k]), "min_s": min(walls[k]), "runs_s": walls[k],
                "cpu_median_s": statistics.median(cpu[k]), "peak_rss_mb": max(rss[k]) / 1024} for k in cmds}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--work", type=Path, default=DEFAULT_WORK)
    ap.add_argument("--size-mb", type=int, default=500)
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--ocilayout", default=None, help="command to run instead of the venv's ocilayout")
    ap.add_argument("--baseline", default=None, help="another ocilayout command (an older checkout) measured "
                    "in the same rotation, for before/after figures")
    args = ap.parse_args(argv)
    work = args.work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    t = time.perf_counter()
    one = build_one(work / "one", args.size_mb)
    small = build_many(work / "many-5k", 100)
    big = build_many(work / "many-51k", 1000)
    print(f"workloads ready in {time.perf_counter() - t:.1f} s under {work}", file=sys.stderr)

    # A real install has byte-code; with PYTHONDONTWRITEBYTECODE=1 (set here) an editable checkout would be
    # compiled from source on every run (+25 ms). Byte-compile it once, as pip does on install.
    import compileall
    import importlib.util

    spec = importlib.util.find_spec("ocilayout")
    if spec is not None and spec.submodule_search_locations:
        for location in spec.submodule_search_locations:
            compileall.compile_dir(location, quiet=1)
    ocl = shlex.split(args.ocilayout) if args.ocilayout else _ocilayout()
    one_blobs = sorted(str(p) for p in (one / "blobs" / "sha256").iterdir())
    base = shlex.split(args.baseline) if args.baseline else None
    cmds = {"fsck": [*ocl, "fsck", str(one)], "hashlib": [sys.executable, "-c", PLAIN, *one_blobs]}
    many_cmds = {"5k": [*ocl, "fsck", str(small)], "51k": [*ocl, "fsck", str(big)]}
    if base:
        cmds["baseline fsck"] = [*base, "fsck", str(one)]
        many_cmds |= {"baseline 5k": [*base, "fsck", str(small)], "baseline 51k": [*base, "fsck", str(big)]}
    res = measure(cmds, args.runs)
    many = measure(many_cmds, max(3, args.runs // 2))
    ratio = res["fsck"]["median_s"] / res["hashlib"]["median_s"]
    ratio_min = res["fsck"]["min_s"] / res["hashlib"]["min_s"]
    rss_ratio = many["51k"]["peak_rss_mb"] / many["5k"]["peak_rss_mb"]
    extra_blobs = 51000 - 5100
    per_blob = (many["51k"]["peak_rss_mb"] - many["5k"]["peak_rss_mb"]) * MiB / extra_blobs
    cpu_ratio = res["fsck"]["cpu_median_s"] / res["hashlib"]["cpu_median_s"]
    print(f"one {args.size_mb} MB blob: fsck median {res['fsck']['median_s']:.3f} s (min {res['fsck']['min_s']:.3f}), "
          f"hashlib median {res['hashlib']['median_s']:.3f} s (min {res['hashlib']['min_s']:.3f}); "
          f"ratio {ratio:.2f}x (of minimums {ratio_min:.2f}x, of CPU times {cpu_ratio:.2f}x; target <= 1.25); "
          f"fsck peak RSS {res['fsck']['peak_rss_mb']:.0f} MB")
    for k in many:
        print(f"fsck of {k} blobs: median {many[k]['median_s']:.2f} s, peak RSS {many[k]['peak_rss_mb']:.0f} MB")
    print(f"peak RSS 51k / 5k: {rss_ratio:.2f}x, {per_blob:.0f} bytes per extra blob (target < 512: one "
          "compact key per blob, no per-blob job objects)")
    if base:
        b, h = res["baseline fsck"], res["hashlib"]
        b51, b5 = many["baseline 51k"]["peak_rss_mb"], many["baseline 5k"]["peak_rss_mb"]
        b_rss = f"{b51 / b5:.2f}x, {(b51 - b5) * MiB / extra_blobs:.0f} bytes per extra blob"
        print(f"baseline: one blob median {b['median_s']:.3f} s, ratio {b['median_s'] / h['median_s']:.2f}x "
              f"(of minimums {b['min_s'] / h['min_s']:.2f}x, of CPU times "
              f"{b['cpu_median_s'] / h['cpu_median_s']:.2f}x); 51k / 5k peak RSS {b_rss}")
    out = {"one": res, "many": many, "ratio_median": ratio, "ratio_min": ratio_min, "ratio_cpu": cpu_ratio,
           "rss_ratio": rss_ratio, "rss_bytes_per_extra_blob": per_blob,
           "size_mb": args.size_mb, "python": sys.version.split()[0], "cpus": os.cpu_count()}
    (args.json or work / "results.json").write_text(json.dumps(out, indent=2))
    return 0 if ratio <= 1.25 and per_blob < 512 else 1


if __name__ == "__main__":
    sys.exit(main())
