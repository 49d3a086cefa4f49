"""``sync`` of 20 small images from a loopback docker-registry into ``dir:`` or ``oci:``: ocilayout vs skopeo.

    .venv/bin/python benchmarks/sync_bench.py                  # 3 rounds, 20 images, -j 8, into dir:
    .venv/bin/python benchmarks/sync_bench.py --dest oci       # into one oci: layout
    .venv/bin/python benchmarks/sync_bench.py --images 5 --runs 1   # smoke run

Every round starts a fresh registry (new storage, new port), pushes N distinct images (one repository, N
tags; each image two gzip layers of ~200 KB of incompressible bytes plus a config, built with
``ocilayout.sample``) and then times ``skopeo sync --src docker --dest D`` and ``ocilayout sync --src docker
--dest D -j J`` into fresh directories, alternating which goes first; skopeo's blob-info cache is deleted
before each skopeo run. Each result is checked: every tag's directory (``dir``) or ref name (``oci``) holds
the manifest the registry serves. The registry logs every request it completes; the requests each tool
made are counted from that log. Figures: wall time and CPU (user + sys of the child) per run, min and median
of the rounds. ``--floor`` adds ``sync_floor.py`` (a bare urllib3 client: what any Python sync pays here),
without and with fsync. Not a test; needs docker-registry and skopeo.
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
import urllib.request
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


def check(out: Path, digests: dict[str, str], dest: str, host: str) -> None:
    """Every tag's dir: image (or the oci: layout's ref name of it) holds the manifest pushed for it."""
    import hashlib

    if dest == "oci":
        index = json.loads((out / "index.json").read_text())
        names = {m.get("annotations", {}).get("org.opencontainers.image.ref.name"): m["digest"]
                 for m in index["manifests"]}
        for tag, want in digests.items():
            got = names.get(f"{host}/bench/app:{tag}")
            assert got == want, f"{out}: {tag}: manifest {got}, want {want}"
        return
    for tag, want in digests.items():
        raw = (out / f"app:{tag}" / "manifest.json").read_bytes()
        got = "sha256:" + hashlib.sha256(raw).hexdigest()
        assert got == want, f"{out}/app:{tag}: manifest {got}, want {want}"


def start_logged(root: Path) -> tuple[subprocess.Popen[bytes], str, Path]:
    """A fresh loopback docker-registry that logs every request it completes; (process, host, log file)."""
    proc, host = registry_bench.start(root)  # started once to find a port and the config layout
    registry_bench.stop(proc)
    cfg = root / "config.yml"
    cfg.write_text(cfg.read_text().replace("level: error", "level: info"))
    log = root / "requests.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(["docker-registry", "serve", str(cfg)], stdout=out, stderr=subprocess.STDOUT)
    for _ in range(400):
        try:
            urllib.request.urlopen(f"http://{host}/v2/", timeout=1).close()
            return proc, host, log
        except OSError:
            time.sleep(0.025)
    proc.kill()
    raise SystemExit("docker-registry did not start")


def requests_in(log: Path, start: int) -> tuple[int, dict[str, int], int]:
    """Requests the registry completed after byte ``start`` of its log: (total, by method, new end)."""
    import re

    data = log.read_bytes()
    counts: dict[str, int] = {}
    for line in data[start:].decode(errors="replace").splitlines():
        if "response completed" not in line:
            continue
        m = re.search(r'http\.request\.method=(\w+)', line)
        method = m.group(1) if m else "?"
        counts[method] = counts.get(method, 0) + 1
    return sum(counts.values()), counts, len(data)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--images", type=int, default=20)
    ap.add_argument("--jobs", type=int, default=8, help="ocilayout sync -j")
    ap.add_argument("--dest", choices=("dir", "oci"), default="dir", help="sync --dest")
    ap.add_argument("--ocilayout", type=Path, default=None,
                    help="the ocilayout executable (default: this checkout's .venv/bin/ocilayout)")
    ap.add_argument("--skopeo-oci", action="store_true", help="time skopeo into oci too (skopeo >= 1.10)")
    ap.add_argument("--before", type=Path, default=None,
                    help="another ocilayout executable (an older commit) timed in the same rotation as 'before'")
    ap.add_argument("--floor", action="store_true",
                    help="also time sync_floor.py (the least a Python client does: urllib3, no fsync) and "
                         "sync_floor.py --fsync in the same rotation, with ocilayout's -j")
    ap.add_argument("--work", type=Path, default=None, help="scratch directory (default: a temp dir)")
    ap.add_argument("--json", type=Path, default=None, help="write the figures here")
    args = ap.parse_args(argv)
    work = args.work or Path(tempfile.mkdtemp(prefix="sync-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    ol = str(args.ocilayout or ROOT / ".venv" / "bin" / "ocilayout")
    sk = shutil.which("skopeo")
    if sk is None:
        raise SystemExit("skopeo is not installed")
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(ROOT / "ocilayout")], check=True)
    # skopeo 1.9.3's sync has no oci destination ("oci" is not a valid destination transport; 1.22 has it)
    with_skopeo = args.dest == "dir" or args.skopeo_oci
    tools = ["ocilayout"] + (["skopeo"] if with_skopeo else []) + (["before"] if args.before is not None else [])
    if args.floor:
        if args.dest != "dir":
            raise SystemExit("--floor writes dir: images: use --dest dir")
        tools += ["floor", "floor+fsync"]
    if len(tools) == 1:
        raise SystemExit("nothing to compare with: give --before (skopeo 1.9.3 cannot sync into oci)")
    times: dict[str, list[float]] = {t: [] for t in tools}
    cpu: dict[str, list[float]] = {t: [] for t in tools}
    reqs: dict[str, list[dict[str, int]]] = {t: [] for t in tools}
    try:
        for run in range(args.runs):
            proc, host, log = start_logged(work / "reg")
            try:
                digests = populate(host, args.images, work, run)
                order = tools[run % len(tools):] + tools[:run % len(tools)]
                for tool in order:
                    out = work / f"out-{tool}"
                    shutil.rmtree(out, ignore_errors=True)
                    out.mkdir()
                    if tool == "skopeo":
                        bench.clear_skopeo_cache()
                        cmd = [sk, "--insecure-policy", "sync", "--src", "docker", "--dest", args.dest,
                               "--src-tls-verify=false", f"{host}/bench/app", str(out)]
                    elif tool.startswith("floor"):
                        cmd = [sys.executable, str(Path(__file__).resolve().parent / "sync_floor.py"),
                               f"{host}/bench/app", str(out), "-j", str(args.jobs)] + \
                              (["--fsync"] if tool == "floor+fsync" else [])
                    else:
                        exe = ol if tool == "ocilayout" else str(args.before)
                        cmd = [exe, "sync", "-q", "--src", "docker", "--dest", args.dest, "-j", str(args.jobs),
                               "--src-tls-verify=false", f"{host}/bench/app", str(out)]
                    _, _, mark = requests_in(log, 0)
                    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
                    times[tool].append(registry_bench.timed(cmd))
                    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
                    cpu[tool].append(r1.ru_utime - r0.ru_utime + r1.ru_stime - r0.ru_stime)
                    time.sleep(0.2)  # the registry writes its log line after the response
                    reqs[tool].append(requests_in(log, mark)[1])
                    check(out, digests, args.dest, host)
            finally:
                registry_bench.stop(proc)
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)
    med = {t: sorted(xs)[len(xs) // 2] for t, xs in times.items()}
    cpu_med = {t: sorted(xs)[len(xs) // 2] for t, xs in cpu.items()}
    base = "skopeo" if "skopeo" in tools else "before"
    ratio = med["ocilayout"] / med[base]
    load = os.getloadavg()
    mins = {t: min(xs) for t, xs in times.items()}
    cpu_min = {t: min(xs) for t, xs in cpu.items()}
    print(f"workload: {args.images} images (2 layers + config each) into --dest {args.dest}, fresh registry "
          f"each round; runs: {args.runs}; ocilayout -j {args.jobs}")
    for tool, xs in times.items():
        per = reqs[tool][-1]
        print(f"{tool:11} wall min {mins[tool]:5.2f} s median {med[tool]:5.2f} s | CPU min {cpu_min[tool]:5.2f} s "
              f"median {cpu_med[tool]:5.2f} s ({1000 * cpu_min[tool] / args.images:.0f} ms/image) | requests "
              f"{sum(per.values())} ({sum(per.values()) / args.images:.2f}/image: "
              f"{', '.join(f'{k} {v}' for k, v in sorted(per.items()))}) | runs {[round(x, 2) for x in xs]} "
              f"CPU {[round(x, 2) for x in cpu[tool]]}")
    print(f"ratio ocilayout/{base}: wall min/min {mins['ocilayout'] / mins[base]:.2f}x, median "
          f"{ratio:.2f}x; CPU min/min {cpu_min['ocilayout'] / cpu_min[base]:.2f}x, median "
          f"{cpu_med['ocilayout'] / cpu_med[base]:.2f}x; load average at the end {load[0]:.1f}")
    if args.floor and base == "skopeo":
        for floor in ("floor", "floor+fsync"):
            print(f"{floor}/skopeo: wall min/min {mins[floor] / mins['skopeo']:.2f}x, median "
                  f"{med[floor] / med['skopeo']:.2f}x; ocilayout/{floor}: median {med['ocilayout'] / med[floor]:.2f}x")
    if args.before is not None and base == "skopeo":
        print(f"before/skopeo: wall min/min {mins['before'] / mins['skopeo']:.2f}x, CPU min/min "
              f"{cpu_min['before'] / cpu_min['skopeo']:.2f}x")
    if args.json is not None:
        version = subprocess.run([sk, "--version"], capture_output=True, text=True).stdout.strip()
        facts = {"images": args.images, "jobs": args.jobs, "dest": args.dest, "runs": args.runs, "times": times,
                 "median": med, "min": mins, "cpu": cpu, "cpu_median": cpu_med, "cpu_min": cpu_min,
                 "requests": reqs, "ratio_to": base, "ratio": ratio, "ratio_min": mins["ocilayout"] / mins[base],
                 "loadavg": load, "skopeo": version,
                 "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        args.json.write_text(json.dumps(facts, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
