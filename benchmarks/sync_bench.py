"""``sync`` of 20 small images from a loopback docker-registry into ``dir:``: ocilayout vs skopeo.

    .venv/bin/python benchmarks/sync_bench.py                  # 3 rounds, 20 images, -j 8
    .venv/bin/python benchmarks/sync_bench.py --images 5 --runs 1   # smoke run

Every round starts a fresh registry (new storage, new port), pushes N distinct images (one repository, N
tags; each image two gzip layers of ~200 KB of incompressible bytes plus a config, built with
``ocilayout.sample``) and then times ``skopeo sync --src docker --dest dir`` and ``ocilayout sync --src docker
--dest dir -j J`` into fresh directories, alternating which goes first; skopeo's blob-info cache is deleted
before each skopeo run. Each result is checked: every tag's directory holds the manifest the registry
serves. Not a test; needs docker-registry and skopeo.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench  # the skopeo cache helper
import registry_bench  # start/stop a fresh registry, the environment with byte-compiled imports

ROOT = Path(__file__).resolve().parent.parent


def populate(host: str, images: int, work: Path, seed: int) -> dict[str, str]:
    """Push ``images`` distinct small images as ``bench/app:t00``...; returns tag -> manifest digest."""
    from ocilayout.copy import CopyOptions, copy
    from ocilayout.registry.options import RegistryOptions, use_options
    from ocilayout.sample import make_image
    from ocilayout.store import LayoutStore

    layout = work / "images"
    shutil.rmtree(layout, ignore_errors=True)
    store = LayoutStore.create(layout)
    digests: dict[str, str] = {}
    opts = RegistryOptions(tls_verify=False)
    for i in range(images):
        tag = f"t{i:02d}"
        rnd = os.urandom(200_000)  # incompressible: the layers stay ~200 KB gzipped
        desc = make_image(store, [{"bin/data": rnd}, {"etc/id": f"{seed}-{i}\n".encode() * 1000}], tag=tag)
        digests[tag] = str(desc.digest)
        with use_options(opts, opts):
            copy(f"oci:{layout}:{tag}", f"docker://{host}/bench/app:{tag}", CopyOptions(jobs=4))
    return digests


def check(out: Path, digests: dict[str, str]) -> None:
    """Every tag's dir: image holds the manifest pushed for it."""
    import hashlib

    for tag, want in digests.items():
        raw = (out / f"app:{tag}" / "manifest.json").read_bytes()
        got = "sha256:" + hashlib.sha256(raw).hexdigest()
        assert got == want, f"{out}/app:{tag}: manifest {got}, want {want}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--images", type=int, default=20)
    ap.add_argument("--jobs", type=int, default=8, help="ocilayout sync -j")
    ap.add_argument("--work", type=Path, default=None, help="scratch directory (default: a temp dir)")
    ap.add_argument("--json", type=Path, default=None, help="write the figures here")
    args = ap.parse_args(argv)
    work = args.work or Path(tempfile.mkdtemp(prefix="sync-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    ol = str(ROOT / ".venv" / "bin" / "ocilayout")
    sk = shutil.which("skopeo")
    if sk is None:
        raise SystemExit("skopeo is not installed")
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(ROOT / "ocilayout")], check=True)
    times: dict[str, list[float]] = {"ocilayout": [], "skopeo": []}
    cpu: dict[str, list[float]] = {"ocilayout": [], "skopeo": []}
    try:
        for run in range(args.runs):
            proc, host = registry_bench.start(work / "reg")
            try:
                digests = populate(host, args.images, work, run)
                order = ["ocilayout", "skopeo"] if run % 2 == 0 else ["skopeo", "ocilayout"]
                for tool in order:
                    out = work / f"out-{tool}"
                    shutil.rmtree(out, ignore_errors=True)
                    out.mkdir()
                    if tool == "skopeo":
                        bench.clear_skopeo_cache()
                        cmd = [sk, "--insecure-policy", "sync", "--src", "docker", "--dest", "dir",
                               "--src-tls-verify=false", f"{host}/bench/app", str(out)]
                    else:
                        cmd = [ol, "sync", "-q", "--src", "docker", "--dest", "dir", "-j", str(args.jobs),
                               "--src-tls-verify=false", f"{host}/bench/app", str(out)]
                    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
                    times[tool].append(registry_bench.timed(cmd))
                    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
                    cpu[tool].append(r1.ru_utime - r0.ru_utime + r1.ru_stime - r0.ru_stime)
                    check(out, digests)
            finally:
                registry_bench.stop(proc)
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)
    med = {t: sorted(xs)[len(xs) // 2] for t, xs in times.items()}
    cpu_med = {t: sorted(xs)[len(xs) // 2] for t, xs in cpu.items()}
    ratio = med["ocilayout"] / med["skopeo"]
    load = os.getloadavg()
    print(f"workload: {args.images} images (2 layers + config each), fresh registry each round; "
          f"runs: {args.runs}; ocilayout -j {args.jobs}")
    for tool, xs in times.items():
        print(f"{tool:10} median {med[tool]:6.2f} s  min {min(xs):6.2f} s  CPU (user+sys) median "
              f"{cpu_med[tool]:5.2f} s  runs {[round(x, 2) for x in xs]}")
    print(f"ratio ocilayout/skopeo: wall {ratio:.2f}x (target <= 0.5x), CPU "
          f"{cpu_med['ocilayout'] / cpu_med['skopeo']:.2f}x; load average at the end {load[0]:.1f}")
    if args.json is not None:
        version = subprocess.run([sk, "--version"], capture_output=True, text=True).stdout.strip()
        facts = {"images": args.images, "jobs": args.jobs, "runs": args.runs, "times": times, "median": med,
                 "cpu": cpu, "cpu_median": cpu_med, "ratio": ratio, "loadavg": load, "skopeo": version,
                 "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        args.json.write_text(json.dumps(facts, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
