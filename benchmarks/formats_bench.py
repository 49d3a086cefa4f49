#!/usr/bin/env python3
"""``oci -> dir`` and ``oci -> docker-archive`` against skopeo, in the same run. Not a test.

Issue 8's targets, set against skopeo 1.22: ``oci -> docker-archive`` at most 0.5x skopeo's wall time (1.22 is
as fast as Debian's 1.9.3 there, so 0.5x of 1.9.3), ``oci -> dir`` at most 0.5x of 1.22, which runs it 1.8x
faster than 1.9.3 on this machine: 0.28x of 1.9.3.

Workloads (built once, cached under ``--work``, default ``benchmarks/work/formats``):

* ``plain``: four uncompressed ``application/vnd.oci.image.layer.v1.tar`` layers of 64 MiB of random data
  (the docker-archive guide's workload): a docker-archive copy is a byte copy plus hashing here;
* ``mixed``: bench.py's workload at ``--scale`` (default 0.25: four gzip -1 layers of text / random / mixed
  data and one uncompressed layer, ~320 MB on disk): docker-archive needs the gzip layers decompressed.

Each copy runs as a fresh process into a fresh destination: ``ocilayout copy -q oci:SRC:bench DST`` and
``skopeo --insecure-policy copy -q oci:SRC:bench DST``; one untimed warm-up each, then the tools take turns
going first, run by run; each output is deleted after its run, then ``sync`` and a 1 s pause (``--settle``:
this root is mounted with online discard, which charged the next writer for the deletion); ``sync``
before every run, skopeo's blob-info cache removed before each of its runs. Wall time
and CPU time (user + system, from ``wait4``) are recorded; medians and minimums are printed with the
ratios ocilayout / skopeo. On a shared machine wall times include waiting for a CPU and for other jobs'
writeback: compare the CPU figures then, and the minimums. Every result is checked (``ocilayout fsck``
for dir:, the layer count in ``manifest.json`` for docker-archive).

Usage: .venv/bin/python benchmarks/formats_bench.py [--runs 5] [--only plain-dir,mixed-docker-archive]
       [--json FILE] [--baseline 'python /path/to/old/ocilayout/__main__.py']
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import tarfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import bench  # noqa: E402 - the workload builder and skopeo helpers live there

MiB = 1 << 20
TAG = "bench"
#: (workload, destination transport) -> ratio target against skopeo 1.9.3 (wall time).
TARGETS = {"dir": 0.28, "docker-archive": 0.5}


def build_plain(work: Path) -> Path:
    """Four uncompressed random 64 MiB layers (cached)."""
    from ocilayout.manifest import Manifest, canonical_json
    from ocilayout.store import LayoutStore

    src = work / "plain"
    stamp = src / ".formats-workload"
    if stamp.exists():
        return src
    if src.exists():
        shutil.rmtree(src)
    store = LayoutStore.create(src)
    text = bench._text_blocks(7)
    layers = [bench._write_layer(src, [("random", 64)], gzip=False, seed=200 + i, scale=1.0, text=text)
              for i in range(4)]
    config = {"created": "2024-01-01T00:00:00Z", "architecture": "amd64", "os": "linux",
              "rootfs": {"type": "layers", "diff_ids": [lay["diff_id"] for lay in layers]}}
    cfg = store.put_bytes(canonical_json(config), "application/vnd.oci.image.config.v1+json")
    doc = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json", "config": cfg.to_dict(),
           "layers": [{k: lay[k] for k in ("mediaType", "digest", "size")} for lay in layers]}
    store.set_ref(TAG, store.put_manifest(Manifest.from_doc(doc)))
    stamp.write_text("1\n")
    return src


def build_mixed(work: Path, scale: float) -> Path:
    bench.build_workload(work / "mixed", scale, rebuild=False)
    return work / "mixed" / "src"


def measure(cmd: list[str], log: Path) -> dict[str, float]:
    """Wall and CPU seconds of one run of ``cmd`` (exits non-zero: the harness stops)."""
    with log.open("a") as f:
        f.write(shlex.join(cmd) + "\n")
    subprocess.run(["sync"], check=True)
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    assert proc.stderr is not None
    err = proc.stderr.read()
    _pid, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"formats_bench: {shlex.join(cmd)} failed: {err.decode(errors='replace')[-800:]}")
    return {"wall": wall, "cpu": usage.ru_utime + usage.ru_stime, "user": usage.ru_utime, "sys": usage.ru_stime,
            "rss_kb": usage.ru_maxrss}


def remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def settle(seconds: float) -> None:
    """Let the filesystem finish with the output just deleted before the next run starts: this machine's root
    is mounted with online ``discard``, and freeing (discarding) a deleted 268 MB output cost the next
    writer 0.3-0.5 s of system time in some phases, whichever tool that was. ``sync`` commits the deletion;
    the pause lets the discards drain."""
    subprocess.run(["sync"], check=True)
    time.sleep(seconds)


def check(ol: list[str], dest: str, path: Path, layers: int) -> None:
    if dest == "dir":
        subprocess.run([*ol, "fsck", f"dir:{path}"], check=True, stdout=subprocess.DEVNULL)
        return
    with tarfile.open(path) as tar:
        f = tar.extractfile("manifest.json")
        assert f is not None
        items = json.load(f)
    if len(items) != 1 or len(items[0]["Layers"]) != layers:
        sys.exit(f"formats_bench: {path} is not the image copied")


def one(tool: str, cmd_prefix: list[str], src: Path, dest: str, out: Path, log: Path) -> dict[str, float]:
    remove(out)
    target = f"dir:{out}" if dest == "dir" else f"docker-archive:{out}:bench/img:{TAG}"
    if tool == "skopeo":
        bench.clear_skopeo_cache()
        cmd = [*cmd_prefix, "--insecure-policy", "copy", "-q", f"oci:{src}:{TAG}", target]
    else:
        cmd = [*cmd_prefix, "copy", "-q", f"oci:{src}:{TAG}", target]
    return measure(cmd, log)


def summarize(runs: list[dict[str, float]], key: str) -> tuple[float, float]:
    xs = [r[key] for r in runs]
    return statistics.median(xs), min(xs)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--scale", type=float, default=0.25, help="size of the mixed workload (bench.py's --scale)")
    ap.add_argument("--work", type=Path, default=HERE / "work" / "formats")
    ap.add_argument("--only", default="plain-dir,plain-docker-archive,mixed-dir,mixed-docker-archive")
    ap.add_argument("--baseline", help="another ocilayout command line to run in the same rotation")
    ap.add_argument("--settle", type=float, default=1.0,
                    help="seconds to wait after deleting a run's output (see settle()); 0: none")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    log = args.work / "commands.log"
    ol = [str(Path(sys.executable).with_name("ocilayout"))]
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(HERE.parent / "ocilayout")], check=True,
                   stdout=subprocess.DEVNULL, env={k: v for k, v in os.environ.items()
                                                   if k != "PYTHONDONTWRITEBYTECODE"})
    tools: dict[str, list[str]] = {"ocilayout": ol}
    if args.baseline:
        tools["baseline"] = shlex.split(args.baseline)
    if shutil.which("skopeo"):
        tools["skopeo"] = ["skopeo"]
    results: dict[str, dict[str, list[dict[str, float]]]] = {}
    for case in args.only.split(","):
        workload, _, dest = case.partition("-")
        src = build_plain(args.work) if workload == "plain" else build_mixed(args.work, args.scale)
        index = json.loads((src / "index.json").read_bytes())
        manifest = json.loads((src / "blobs" / "sha256" / index["manifests"][0]["digest"][7:]).read_bytes())
        layers = len(manifest["layers"])
        runs: dict[str, list[dict[str, float]]] = {t: [] for t in tools}
        names = list(tools)
        for r in range(args.runs + 1):  # run 0 is the warm-up
            # Rotate who goes first: the first tool of a round writes right after the last one's output of the
            # round before was deleted, which on this VM costs the writer extra system time in some phases.
            for tool in names[r % len(names):] + names[:r % len(names)]:
                prefix = tools[tool]
                out = args.work / f"out-{tool}" if dest == "dir" else args.work / f"out-{tool}.tar"
                got = one(tool, prefix, src, dest, out, log)
                if tool != "skopeo" and r == 0:
                    check(ol, dest, out, layers)
                if r:
                    runs[tool].append(got)
                remove(out)
                settle(args.settle)
        results[case] = runs
        print(f"\n{case}: {args.runs} runs each, load average {os.getloadavg()[0]:.1f}")
        print(f"  {'':12s} {'wall median (min)':>20s} {'CPU median (min)':>20s}  {'user':>6s} {'sys':>6s} {'RSS':>7s}")
        for tool, rs in runs.items():
            wm, wn = summarize(rs, "wall")
            cm, cn = summarize(rs, "cpu")
            um, _ = summarize(rs, "user")
            sm, _ = summarize(rs, "sys")
            print(f"  {tool:12s} {wm:9.2f} s ({wn:5.2f})   {cm:9.2f} s ({cn:5.2f})  {um:6.2f} {sm:6.2f} "
                  f"{max(x['rss_kb'] for x in rs) / 1024:5.1f}MB")
        if "skopeo" in runs:
            for tool in tools:
                if tool == "skopeo":
                    continue
                w = summarize(runs[tool], "wall")[0] / summarize(runs["skopeo"], "wall")[0]
                wmin = summarize(runs[tool], "wall")[1] / summarize(runs["skopeo"], "wall")[1]
                c = summarize(runs[tool], "cpu")[0] / summarize(runs["skopeo"], "cpu")[0]
                cmin = summarize(runs[tool], "cpu")[1] / summarize(runs["skopeo"], "cpu")[1]
                print(f"  {tool} / skopeo: wall {w:.2f}x (min/min {wmin:.2f}x), CPU {c:.2f}x (min/min {cmin:.2f}x);"
                      f" target <= {TARGETS[dest]}x wall")
    if args.json:
        facts: dict[str, Any] = {"date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "runs": args.runs,
                                 "scale": args.scale, "results": results}
        args.json.write_text(json.dumps(facts, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
