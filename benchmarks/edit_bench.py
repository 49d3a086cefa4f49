#!/usr/bin/env python3
"""append and flatten against umoci, in the same run. Not a test: a measuring harness.

Builds (once, cached) under ``WORK`` (default ``benchmarks/work/edit/``, gitignored):

* ``tree/``: ~``--append-mb`` MB of files: real files copied from ``/usr/bin`` and ``/usr/share`` (about 70%)
  and generated ones (compressible pseudo-text and incompressible random, 4 KiB to 8 MiB, seeded);
* ``base/``: the built-in sample layout (``ocilayout.sample``), tag ``v1``, the image appended to;
* ``stack/``: tag ``v1``, a 3-layer image of ~``--flatten-mb`` MB uncompressed: real files from ``/usr/lib``,
  then two layers of generated files that also overwrite and white out (``.wh.``) files of the layers below
  and make a directory opaque. Built with ``ocilayout append --empty`` under SOURCE_DATE_EPOCH.

Then, after one untimed warm-up of each command, rotating the commands run by run with fresh destinations
(``sync`` before every timed run), it times

=================  ==========================================================================================
append, ours       ``ocilayout append -q oci:base:v1 oci:DST:v1 --layer tree``
append, umoci      ``umoci insert --rootless --image L:v1 tree /`` (L: a fresh copy of base)
append, umoci 2    ``umoci unpack --rootless`` + ``cp -a tree/. rootfs/`` + ``umoci repack`` (what the issue names)
flatten, ours      ``ocilayout flatten -q oci:stack:v1 oci:DST:v1``
flatten, umoci     ``umoci unpack --rootless --image stack:v1 B`` + ``umoci init`` / ``new`` +
                   ``umoci insert --rootless --image N:v1 B/rootfs /`` (one layer holding the unpacked stack)
=================  ==========================================================================================

and reports median wall and CPU times and the ratio ours / umoci (target <= 1.0). Every ocilayout result is
fsck-clean and its digest is the one printed; the flattened image unpacked by umoci is compared with
umoci's unpacking of the stack once (paths, types, sizes).

Usage: .venv/bin/python benchmarks/edit_bench.py [--runs 3] [--append-mb 500] [--flatten-mb 1000] [--json FILE]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import random
import resource
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
DEFAULT_WORK = HERE / "work" / "edit"
MiB = 1 << 20
EPOCH = "1704067200"
OCILAYOUT = [sys.executable, "-m", "ocilayout"]
WORKLOAD_VERSION = 1


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def run(cmd: Sequence[str | Path], **kw: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(c) for c in cmd], check=True, capture_output=True, text=True, **kw)


# -- workload -----------------------------------------------------------------------------------------------
def copy_real(roots: Sequence[str], dest: Path, limit: int) -> int:
    """Copy regular files under ``roots`` (sorted walk) into ``dest`` keeping relative paths, up to ``limit``
    bytes; returns the bytes copied."""
    total = 0
    for root in roots:
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames.sort()
            for name in sorted(filenames):
                src = Path(dirpath, name)
                try:
                    st = src.lstat()
                except OSError:
                    continue
                if not src.is_file() or src.is_symlink() or not os.access(src, os.R_OK) or st.st_size > 64 * MiB:
                    continue
                target = dest / src.relative_to("/")
                target.parent.mkdir(parents=True, exist_ok=True)
                try:
                    shutil.copy2(src, target)
                except OSError:
                    continue
                total += st.st_size
                if total >= limit:
                    return total
    return total


def generate(dest: Path, limit: int, seed: int) -> int:
    """Seeded files, half pseudo-text, half random, 4 KiB - 8 MiB, in 16 directories; returns bytes written."""
    rng = random.Random(seed)
    words = [bytes(rng.choice(b"abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(2, 10)))
             for _ in range(2000)]
    text = b" ".join(rng.choice(words) for _ in range(400_000))[: 2 * MiB]
    total = i = 0
    while total < limit:
        size = min(int(rng.choice((4, 16, 64, 256, 1024, 4096, 8192)) * 1024 * rng.uniform(0.5, 1.0)), limit - total)
        d = dest / f"gen{i % 16:02d}"
        d.mkdir(parents=True, exist_ok=True)
        data = rng.randbytes(size) if i % 2 else (text * (size // len(text) + 1))[:size]
        (d / f"file{i:05d}.{'bin' if i % 2 else 'txt'}").write_bytes(data)
        total += size
        i += 1
    return total


def build(work: Path, append_mb: int, flatten_mb: int) -> dict[str, Any]:
    stamp = work / "workload.json"
    want = {"version": WORKLOAD_VERSION, "append_mb": append_mb, "flatten_mb": flatten_mb}
    if stamp.exists() and json.loads(stamp.read_text()).get("params") == want:
        return json.loads(stamp.read_text())
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    log("building the workload ...")
    from ocilayout.sample import build_sample_layout

    build_sample_layout(work / "base")
    tree = work / "tree"
    real = copy_real(["/usr/bin", "/usr/share"], tree, int(append_mb * MiB * 0.7))
    gen = generate(tree / "generated", append_mb * MiB - real, seed=1)
    third = flatten_mb * MiB // 3
    layers = [work / "l1", work / "l2", work / "l3"]
    l1 = copy_real(["/usr/lib"], layers[0], third)
    # layer 2: overwrite and white out some of layer 1, plus generated files
    l1_files = sorted(p for p in layers[0].rglob("*") if p.is_file())
    for j, p in enumerate(l1_files[::50]):
        rel = p.relative_to(layers[0])
        target = layers[1] / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        if j % 2:
            (target.parent / f".wh.{rel.name}").write_bytes(b"")
        else:
            target.write_bytes(b"overwritten in layer 2\n")
    l2 = generate(layers[1] / "generated", third, seed=2)
    # layer 3: an opaque directory over layer 2's first generated directory, plus more files
    (layers[2] / "generated" / "gen00").mkdir(parents=True)
    (layers[2] / "generated" / "gen00" / ".wh..wh..opq").write_bytes(b"")
    l3 = generate(layers[2] / "more", third, seed=3)
    env = {**os.environ, "SOURCE_DATE_EPOCH": EPOCH}
    cmd: list[str | Path] = [*OCILAYOUT, "append", "-q", "--empty", f"oci:{work / 'stack'}:v1"]
    for layer in layers:
        cmd += ["--layer", layer]
    run(cmd, env=env)
    for layer in layers:
        shutil.rmtree(layer)
    info = {"params": want, "append_bytes": real + gen, "append_real": real, "flatten_bytes": l1 + l2 + l3,
            "append_files": sum(1 for p in tree.rglob("*") if p.is_file())}
    stamp.write_text(json.dumps(info))
    return info


# -- timing -------------------------------------------------------------------------------------------------
def timed(fn: Callable[[], None]) -> tuple[float, float]:
    """(wall, CPU of children) seconds of ``fn``."""
    subprocess.run(["sync"], check=True)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    fn()
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def fresh(path: Path) -> Path:
    shutil.rmtree(path, ignore_errors=True)
    return path


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--append-mb", type=int, default=500)
    ap.add_argument("--flatten-mb", type=int, default=1000)
    ap.add_argument("--work", type=Path, default=DEFAULT_WORK)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    if shutil.which("umoci") is None:
        log("umoci is not installed: nothing to compare with")
        return 2
    work = args.work.resolve()
    info = build(work, args.append_mb, args.flatten_mb)
    scratch = work / "scratch"
    scratch.mkdir(exist_ok=True)
    base, tree, stack = work / "base", work / "tree", work / "stack"

    def ours_append() -> None:
        out = run([*OCILAYOUT, "append", "-q", f"oci:{base}:v1", f"oci:{fresh(scratch / 'a')}:v1", "--layer", tree])
        assert out.stdout.startswith("sha256:")

    def prep_umoci() -> Path:
        layout = fresh(scratch / "u")
        shutil.copytree(base, layout)
        return layout

    def umoci_insert(layout: Path) -> None:
        run(["umoci", "insert", "--rootless", "--image", f"{layout}:v1", tree, "/"])

    def umoci_repack(layout: Path) -> None:
        bundle = fresh(scratch / "ub")
        run(["umoci", "unpack", "--rootless", "--image", f"{layout}:v1", bundle])
        run(["cp", "-a", f"{tree}/.", f"{bundle}/rootfs/"])
        run(["umoci", "repack", "--image", f"{layout}:v1", bundle])

    def ours_flatten() -> None:
        out = run([*OCILAYOUT, "flatten", "-q", f"oci:{stack}:v1", f"oci:{fresh(scratch / 'f')}:v1"])
        assert out.stdout.startswith("sha256:")

    def umoci_flatten() -> None:
        bundle, new = fresh(scratch / "fb"), fresh(scratch / "fn")
        run(["umoci", "unpack", "--rootless", "--image", f"{stack}:v1", bundle])
        run(["umoci", "init", "--layout", new])
        run(["umoci", "new", "--image", f"{new}:v1"])
        run(["umoci", "insert", "--rootless", "--image", f"{new}:v1", f"{bundle}/rootfs", "/"])

    cases: dict[str, tuple[Callable[[], Any] | None, Callable[..., None]]] = {
        "append ocilayout": (None, lambda _=None: ours_append()),
        "append umoci insert": (prep_umoci, umoci_insert),
        "append umoci unpack+cp+repack": (prep_umoci, umoci_repack),
        "flatten ocilayout": (None, lambda _=None: ours_flatten()),
        "flatten umoci unpack+insert": (None, lambda _=None: umoci_flatten()),
    }
    results: dict[str, list[tuple[float, float]]] = {k: [] for k in cases}
    for rnd in range(args.runs + 1):  # round 0: warm-up, not counted
        order = list(cases)
        order = order[rnd % len(order):] + order[:rnd % len(order)]
        for name in order:
            prep, fn = cases[name]
            arg = prep() if prep else None
            wall, cpu = timed(lambda fn=fn, arg=arg: fn(arg))
            log(f"{'warm-up' if rnd == 0 else f'run {rnd}'}: {name}: {wall:.2f} s wall, {cpu:.2f} s CPU")
            if rnd:
                results[name].append((wall, cpu))
    check(scratch)
    med = {k: (statistics.median(w for w, _ in v), statistics.median(c for _, c in v)) for k, v in results.items()}
    rows = [("append", "append ocilayout", "append umoci insert"),
            ("append", "append ocilayout", "append umoci unpack+cp+repack"),
            ("flatten", "flatten ocilayout", "flatten umoci unpack+insert")]
    print(f"workload: append {info['append_bytes'] / 1e6:.0f} MB in {info['append_files']} files "
          f"({info['append_real'] / 1e6:.0f} MB real), flatten {info['flatten_bytes'] / 1e6:.0f} MB in 3 layers; "
          f"{args.runs} runs, medians")
    print(f"{'command':34} {'wall s':>8} {'CPU s':>8}")
    for k, (w, c) in med.items():
        print(f"{k:34} {w:8.2f} {c:8.2f}")
    ok = True
    for what, ours, theirs in rows:
        ratio = med[ours][0] / med[theirs][0]
        ok &= ratio <= 1.0
        print(f"ratio {what}: ocilayout / {theirs.removeprefix(what + ' ')} = {ratio:.2f} (target <= 1.0)")
    out = args.json or work / "results.json"
    out.write_text(json.dumps({"date": dt.datetime.now(dt.UTC).isoformat(), "workload": info, "runs": results,
                               "medians": med}, indent=1))
    return 0 if ok else 1


def check(scratch: Path) -> None:
    """ocilayout's results are fsck-clean; the flattened image unpacks to what umoci unpacked from the stack."""
    run([*OCILAYOUT, "fsck", scratch / "a"])
    run([*OCILAYOUT, "fsck", scratch / "f"])
    bundle = fresh(scratch / "check")
    run(["umoci", "unpack", "--rootless", "--image", f"{scratch / 'f'}:v1", bundle])

    def listing(root: Path) -> dict[str, tuple[str, int]]:
        out = {}
        for p in root.rglob("*"):
            st = p.lstat()
            kind = "l" if p.is_symlink() else "d" if p.is_dir() else "f"
            out[str(p.relative_to(root))] = (kind, st.st_size if kind == "f" else 0)
        return out

    mine, theirs = listing(bundle / "rootfs"), listing(scratch / "fb" / "rootfs")
    if mine != theirs:
        diff = sorted(set(mine.items()) ^ set(theirs.items()))[:10]
        raise SystemExit(f"flatten differs from umoci's unpacked stack: {diff}")
    log(f"checked: results fsck-clean; flattened rootfs == umoci's unpacked stack ({len(mine)} paths)")


if __name__ == "__main__":
    sys.exit(main())
