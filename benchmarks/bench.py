#!/usr/bin/env python3
"""ocilayout vs skopeo on one local ~1.3 GB workload, in the same run. Not a test: a measuring harness.

Builds (once, cached) under the work dir (default ``benchmarks/work/``, gitignored):

* ``src/``: an OCI layout, tag ``bench``: four gzip (level 1) layers of deterministic text / random / mixed
  data (~320 MiB uncompressed, ~150 MiB on disk) and one uncompressed ``application/vnd.oci.image.layer.v1.tar``
  layer of 1 GiB (16 files of 64 MiB, alternating incompressible random and compressible text);
* ``small/``: the built-in sample (``ocilayout.sample.build_sample_layout``), tag ``v1``, for ``inspect``.

Then measures, alternating the tools run by run with fresh destinations, after a warm-up run of each (the
source stays in the page cache; dirty pages are flushed with ``sync`` before every timed run; skopeo's
blob-info cache is deleted before every skopeo run):

=====================================  =======================================  ====================
metric                                 compared with                            target
=====================================  =======================================  ====================
copy oci -> oci wall time              skopeo copy, same refs                   ratio <= 0.5
copy oci -> oci-archive wall time      skopeo copy, same refs                   ratio <= 0.5
fsck throughput (blob bytes / s)       plain hashlib.sha256 over the blob files ratio >= 0.8
peak RSS of ocilayout copy (1 GiB      -                                        < 100 MB
layer in the image)
ocilayout inspect of a small image     (skopeo inspect, for information)        median < 150 ms
=====================================  =======================================  ====================

Prints a table and writes every figure to a JSON file (default ``WORK/results.json``).

Usage: .venv/bin/python benchmarks/bench.py [--runs 5] [--scale 1.0] [--only copy,fsck,inspect] [--profile]
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import hashlib
import json
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import tarfile
import time
import zlib
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
DEFAULT_WORK = HERE / "work"
WORKLOAD_VERSION = 1
MiB = 1 << 20
TAG = "bench"
LAYER_TAR = "application/vnd.oci.image.layer.v1.tar"
SKOPEO_CACHE_DIRS = (Path("/var/lib/containers/cache"), Path.home() / ".local/share/containers/cache")

# (kind, uncompressed MiB) per file; layers in manifest order. Sizes scale with --scale.
GZIP_LAYERS: list[list[tuple[str, int]]] = [
    [("text", 48), ("text", 48)],
    [("text", 96)],
    [("random", 64)],
    [("mixed", 64)],
]
BIG_LAYER: list[tuple[str, int]] = [("random" if i % 2 == 0 else "text", 64) for i in range(16)]  # 1 GiB


# --------------------------------------------------------------------------------------------------------------
# Workload
# --------------------------------------------------------------------------------------------------------------
def _text_blocks(seed: int, count: int = 4) -> list[bytes]:
    """Deterministic, compressible (about 4.5x at gzip -1) 1 MiB blocks of pseudo-words."""
    rng = random.Random(seed)
    words = ["".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(2, 10)))
             for _ in range(2000)]
    blocks = []
    for b in range(count):
        lines, size, n = [], 0, 0
        while size < MiB:
            line = f"{b:02d}{n:08d} " + " ".join(rng.choice(words) for _ in range(12)) + "\n"
            lines.append(line)
            size += len(line)
            n += 1
        blocks.append("".join(lines).encode()[:MiB])
    return blocks


class DataSource:
    """A file-like reader of ``size`` deterministic bytes of one kind: random, text or mixed (alternating MiBs)."""

    def __init__(self, kind: str, size: int, seed: int, text: list[bytes]) -> None:
        self.kind, self.left, self.pos = kind, size, 0
        self.rng = random.Random(seed)
        self.text = text

    def _chunk(self, n: int) -> bytes:
        mib = self.pos // MiB
        kind = self.kind if self.kind != "mixed" else ("random" if mib % 2 == 0 else "text")
        if kind == "random":
            return self.rng.randbytes(n)
        block = self.text[mib % len(self.text)]
        off = self.pos % MiB
        out = block[off:off + n]
        while len(out) < n:
            out += block[: n - len(out)]
        return out

    def read(self, n: int = -1) -> bytes:
        if n < 0 or n > self.left:
            n = self.left
        out = bytearray()
        while len(out) < n:
            step = min(n - len(out), MiB - self.pos % MiB)
            out += self._chunk(step)
            self.pos += step
        self.left -= n
        return bytes(out)


class HashSink:
    """Write-through sink that hashes and counts what passes."""

    def __init__(self, out: Any) -> None:
        self.out, self.hash, self.size = out, hashlib.sha256(), 0

    def write(self, data: bytes) -> int:
        self.hash.update(data)
        self.size += len(data)
        self.out.write(data)
        return len(data)

    def tell(self) -> int:
        return self.size

    def flush(self) -> None:
        pass


class GzipSink:
    """Deterministic gzip (level 1, mtime 0) into ``out``; isal when available (the same bytes every run)."""

    def __init__(self, out: Any) -> None:
        try:
            from isal import isal_zlib as z
        except ImportError:  # pragma: no cover - isal is a runtime dependency
            z = zlib  # type: ignore[assignment]
        self.out = out
        self.comp = z.compressobj(1, z.DEFLATED, 31)

    def write(self, data: bytes) -> int:
        self.out.write(self.comp.compress(data))
        return len(data)

    def close(self) -> None:
        self.out.write(self.comp.flush())


def _write_layer(root: Path, files: list[tuple[str, int]], *, gzip: bool, seed: int, scale: float,
                 text: list[bytes]) -> dict[str, Any]:
    """Stream one layer tar (optionally gzipped) into ``root/blobs/sha256``; returns descriptor + diff_id."""
    tmp = root / f".bench-layer-{os.getpid()}.tmp"
    with open(tmp, "wb") as f:
        blob = HashSink(f)
        gz = GzipSink(blob) if gzip else None
        tar_sink = HashSink(gz if gz is not None else blob)
        with tarfile.open(fileobj=tar_sink, mode="w", format=tarfile.PAX_FORMAT) as tar:  # type: ignore[call-overload]
            tar.copybufsize = MiB
            d = tarfile.TarInfo("data/")
            d.type, d.mode, d.mtime = tarfile.DIRTYPE, 0o755, 0
            tar.addfile(d)
            for i, (kind, mib) in enumerate(files):
                size = max(1, round(mib * scale * MiB))
                ti = tarfile.TarInfo(f"data/{i:03d}-{kind}.bin")
                ti.size, ti.mode, ti.mtime = size, 0o644, 0
                tar.addfile(ti, DataSource(kind, size, seed * 1000 + i, text))  # type: ignore[arg-type]
        if gz is not None:
            gz.close()
    digest = blob.hash.hexdigest()
    final = root / "blobs" / "sha256" / digest
    final.parent.mkdir(parents=True, exist_ok=True)
    os.replace(tmp, final)
    return {
        "mediaType": LAYER_TAR + ("+gzip" if gzip else ""),
        "digest": f"sha256:{digest}",
        "size": blob.size,
        "diff_id": f"sha256:{tar_sink.hash.hexdigest()}",
        "uncompressed": tar_sink.size,
    }


def build_workload(work: Path, scale: float, rebuild: bool) -> dict[str, Any]:
    """Build (or reuse) ``work/src`` and ``work/small``; returns the workload description."""
    from ocilayout.manifest import Manifest, canonical_json
    from ocilayout.sample import build_sample_layout
    from ocilayout.store import LayoutStore

    src, small, stamp = work / "src", work / "small", work / "src" / ".bench-workload.json"
    want = {"version": WORKLOAD_VERSION, "scale": scale}
    if not rebuild and stamp.exists():
        info = json.loads(stamp.read_text())
        if {k: info.get(k) for k in want} == want and (small / "index.json").exists():
            return info
    for p in (src, small):
        if p.exists():
            shutil.rmtree(p)
    t0 = time.perf_counter()
    store = LayoutStore.create(src)
    text = _text_blocks(7)
    layers = [_write_layer(src, files, gzip=True, seed=i + 1, scale=scale, text=text)
              for i, files in enumerate(GZIP_LAYERS)]
    layers.append(_write_layer(src, BIG_LAYER, gzip=False, seed=99, scale=scale, text=text))
    config = {
        "created": "2024-01-01T00:00:00Z", "architecture": "amd64", "os": "linux",
        "config": {"Env": ["PATH=/usr/bin:/bin"], "Cmd": ["/bin/sh"]},
        "rootfs": {"type": "layers", "diff_ids": [lay["diff_id"] for lay in layers]},
        "history": [{"created": "2024-01-01T00:00:00Z", "created_by": f"bench layer {i}"} for i in range(len(layers))],
    }
    cfg = store.put_bytes(canonical_json(config), "application/vnd.oci.image.config.v1+json")
    doc = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": cfg.to_dict(),
        "layers": [{k: lay[k] for k in ("mediaType", "digest", "size")} for lay in layers],
    }
    desc = store.put_manifest(Manifest.from_doc(doc))
    store.set_ref(TAG, desc)
    build_sample_layout(small)
    blob_bytes = sum(p.stat().st_size for p in (src / "blobs" / "sha256").iterdir())
    info = {
        **want,
        "manifest_digest": str(desc.digest),
        "layers": [{k: lay[k] for k in ("mediaType", "digest", "size", "uncompressed")} for lay in layers],
        "blob_count": len(list((src / "blobs" / "sha256").iterdir())),
        "blob_bytes": blob_bytes,
        "largest_layer_uncompressed": max(lay["uncompressed"] for lay in layers),
        "build_seconds": round(time.perf_counter() - t0, 1),
    }
    stamp.write_text(json.dumps(info, indent=2))
    return info


# --------------------------------------------------------------------------------------------------------------
# Running things
# --------------------------------------------------------------------------------------------------------------
@dataclass
class Run:
    tool: str
    what: str
    wall: float
    max_rss_kb: int
    rc: int
    user: float = 0.0
    sys: float = 0.0
    note: str = ""


GNU_TIME = Path("/usr/bin/time")
#: Fallback when GNU time is missing: fork from a small process so the child's peak RSS is its own.
RSS_WRAPPER = """
import os, sys
pid = os.fork()
if pid == 0:
    os.execvp(sys.argv[2], sys.argv[2:])
_, status, usage = os.wait4(pid, 0)
with open(sys.argv[1], "w") as f:
    f.write(str(usage.ru_maxrss))
sys.exit(os.waitstatus_to_exitcode(status))
"""


def run_measured(cmd: Sequence[str], *, tool: str, what: str, log: Path, rss: bool = True) -> Run:
    """Run ``cmd``; wall time from spawn to reap; CPU times from ``wait4``; peak RSS of the command itself.

    The peak RSS comes from GNU time (or a small forking wrapper), never from ``wait4`` on a child of this
    process: Linux carries the parent's high-water RSS into a vforked or forked child across ``exec``, so
    every child would look at least as big as this harness.
    """
    rss_file = log.with_name("maxrss.tmp")
    full = list(cmd)
    if rss:
        rss_file.unlink(missing_ok=True)
        if GNU_TIME.exists():
            full = [str(GNU_TIME), "-q", "-o", str(rss_file), "-f", "%M", *cmd]
        else:
            full = [sys.executable, "-c", RSS_WRAPPER, str(rss_file), *cmd]
    with open(log, "ab") as out:
        out.write(("\n$ " + " ".join(cmd) + "\n").encode())
        out.flush()
        t0 = time.perf_counter()
        proc = subprocess.Popen(full, stdout=out, stderr=out, stdin=subprocess.DEVNULL)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
    max_rss = 0
    if rss:
        with contextlib.suppress(OSError, ValueError):
            max_rss = int(rss_file.read_text().split()[-1])
    return Run(tool, what, wall, max_rss, proc.returncode, round(usage.ru_utime, 3), round(usage.ru_stime, 3))


def clear_skopeo_cache() -> None:
    for d in SKOPEO_CACHE_DIRS:
        for name in ("blob-info-cache-v1.boltdb", "blob-info-cache-v1.sqlite"):
            with contextlib.suppress(OSError):
                (d / name).unlink()


def remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def _index_digest(index: dict[str, Any], tag: str) -> str | None:
    for m in index.get("manifests", []):
        if m.get("annotations", {}).get("org.opencontainers.image.ref.name") == tag:
            return m.get("digest")
    return None


def check_copy(dst: Path, archive: bool, want: str) -> str:
    """'' when the destination holds ``TAG`` -> the source manifest digest, else a short note."""
    try:
        if archive:
            with tarfile.open(dst) as tar:
                member = tar.extractfile("index.json")
                index = json.load(member) if member else {}
        else:
            index = json.loads((dst / "index.json").read_text())
    except (OSError, tarfile.TarError, KeyError, ValueError) as err:
        return f"unreadable destination: {err}"
    got = _index_digest(index, TAG)
    return "" if got == want else f"manifest digest {got} != source {want}"


#: The I/O floor: what any copy that writes and fsyncs every blob must pay, with no hashing, no checks and
#: no tar headers (one process, copy_file_range/sendfile for directories, 1 MiB read/write for the archive).
FLOOR_SCRIPT = """
import os, shutil, sys
src, dst, archive = sys.argv[1], sys.argv[2], sys.argv[3] == "1"
blobs = os.path.join(src, "blobs", "sha256")
names = sorted(os.listdir(blobs))
if archive:
    with open(dst, "wb") as out:
        for n in names:
            with open(os.path.join(blobs, n), "rb") as f:
                shutil.copyfileobj(f, out, 1 << 20)
        out.flush()
        os.fsync(out.fileno())
else:
    d = os.path.join(dst, "blobs", "sha256")
    os.makedirs(d)
    for n in names:
        shutil.copyfile(os.path.join(blobs, n), os.path.join(d, n))
        fd = os.open(os.path.join(d, n), os.O_RDONLY)
        os.fsync(fd)
        os.close(fd)
"""


def copy_cmd(tool: str, exe: str, src: Path, dst: Path, archive: bool) -> list[str]:
    if tool == "floor":
        return [sys.executable, "-c", FLOOR_SCRIPT, str(src), str(dst), "1" if archive else "0"]
    dst_ref = f"oci-archive:{dst}:{TAG}" if archive else f"oci:{dst}:{TAG}"
    if tool == "skopeo":
        # Like for like: keep the uncompressed layer as is (skopeo gzips it by default for oci destinations,
        # which would change the digests and turn the benchmark into a compression race), fail on any change.
        return [exe, "--insecure-policy", "copy", "-q", "--dest-oci-accept-uncompressed-layers", "--preserve-digests",
                f"oci:{src}:{TAG}", dst_ref]
    return [exe, "copy", "-q", f"oci:{src}:{TAG}", dst_ref]


def bench_copy(tools: dict[str, str], work: Path, info: dict[str, Any], runs: int, archive: bool,
               log: Path) -> list[Run]:
    kind = "oci-archive" if archive else "oci"
    src, out = work / "src", work / "dst"
    out.mkdir(exist_ok=True)
    results: list[Run] = []
    order = [*tools, "floor"]
    for i in range(-1, runs):  # -1: warm-up of each tool, not counted
        for tool in order[i % len(order):] + order[:i % len(order)]:  # rotate who goes first
            dst = out / (f"{tool}.tar" if archive else tool)
            remove(dst)
            os.sync()
            if tool == "skopeo":
                clear_skopeo_cache()
            r = run_measured(copy_cmd(tool, tools.get(tool, ""), src, dst, archive), tool=tool,
                             what=f"copy oci->{kind}", log=log)
            if r.rc == 0 and tool == "floor":
                r.note = ""
            elif r.rc == 0:
                r.note = check_copy(dst, archive, info["manifest_digest"])
            else:
                r.note = f"exit {r.rc} (see {log})"
            if i >= 0:
                results.append(r)
            label = "warm-up" if i < 0 else f"run {i + 1}"
            print(f"  {label}: {tool:9s} {r.wall:6.2f}s (user {r.user:5.2f} sys {r.sys:5.2f}) "
                  f"rss={r.max_rss_kb / 1024:5.1f}MiB {r.note}", file=sys.stderr)
            remove(dst)
    os.sync()
    return results


def hash_files(paths: list[Path]) -> int:
    total = 0
    buf = bytearray(MiB)
    view = memoryview(buf)
    for p in paths:
        h = hashlib.sha256()
        with open(p, "rb", buffering=0) as f:
            while n := f.readinto(buf):
                h.update(view[:n])
                total += n
    return total


def bench_fsck(ol: str, work: Path, runs: int, log: Path) -> tuple[list[Run], list[float], int]:
    src = work / "src"
    blobs = sorted((src / "blobs" / "sha256").iterdir())
    total = sum(p.stat().st_size for p in blobs)
    runs_ol: list[Run] = []
    base: list[float] = []
    for i in range(-1, runs):
        t0 = time.perf_counter()
        hash_files(blobs)
        t_base = time.perf_counter() - t0
        r = run_measured([ol, "fsck", str(src)], tool="ocilayout", what="fsck", log=log)
        if r.rc != 0:
            r.note = f"exit {r.rc} (see {log})"
        print(f"  {'warm-up' if i < 0 else f'run {i + 1}'}: sha256 {t_base:6.2f}s  ocilayout fsck {r.wall:6.2f}s "
              f"{r.note}", file=sys.stderr)
        if i >= 0:
            base.append(t_base)
            runs_ol.append(r)
    return runs_ol, base, total


def bench_startup(tools: dict[str, str], work: Path, runs: int, log: Path) -> dict[str, list[Run]]:
    small = work / "small"
    cmds = {
        "ocilayout inspect": [tools["ocilayout"], "inspect", f"oci:{small}:v1"],
        "ocilayout --help": [tools["ocilayout"], "--help"],
        "python -c 'import ocilayout'": [sys.executable, "-c", "import ocilayout"],
    }
    if "skopeo" in tools:
        cmds["skopeo inspect"] = [tools["skopeo"], "--insecure-policy", "inspect", f"oci:{small}:v1"]
    out: dict[str, list[Run]] = {}
    for name, cmd in cmds.items():
        run_measured(cmd, tool=name, what=name, log=log, rss=False)  # warm-up
        out[name] = [run_measured(cmd, tool=name, what=name, log=log, rss=False) for _ in range(runs)]
        bad = [r.rc for r in out[name] if r.rc != 0]
        print(f"  {name}: median {statistics.median(r.wall for r in out[name]) * 1000:.0f} ms"
              + (f" (exit codes {bad})" if bad else ""), file=sys.stderr)
    return out


def profile_copy(ol: str, work: Path, archive: bool) -> Path:
    """One ocilayout copy under cProfile (main thread only); writes a text report next to the results."""
    import pstats

    kind = "archive" if archive else "oci"
    dst = work / "dst" / f"profile.{kind}"
    remove(dst)
    prof = work / f"profile-copy-{kind}.prof"
    cmd = copy_cmd("ocilayout", ol, work / "src", dst, archive)[1:]
    subprocess.run([sys.executable, "-m", "cProfile", "-o", str(prof), "-m", "ocilayout", *cmd], check=False,
                   stdout=subprocess.DEVNULL)
    remove(dst)
    report = work / f"profile-copy-{kind}.txt"
    with open(report, "w") as f:
        stats = pstats.Stats(str(prof), stream=f)
        stats.sort_stats("tottime").print_stats(25)
        stats.sort_stats("cumulative").print_stats(25)
    return report


# --------------------------------------------------------------------------------------------------------------
# Reporting
# --------------------------------------------------------------------------------------------------------------
def _git(*args: str) -> str:
    try:
        proc = subprocess.run(["git", "-C", str(REPO), *args], capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        return ""
    return proc.stdout.strip()


def machine_facts(work: Path, tools: dict[str, str]) -> dict[str, Any]:
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / (1 << 30)
    fs = subprocess.run(["stat", "-f", "-c", "%T", str(work)], capture_output=True, text=True).stdout.strip()
    versions = {}
    for name, exe in tools.items():
        arg = ["--version"]
        proc = subprocess.run([exe, *arg], capture_output=True, text=True)
        versions[name] = (proc.stdout or proc.stderr).strip().splitlines()[0] if proc.returncode == 0 else "?"
    if "ocilayout" in tools:
        import ocilayout

        versions["ocilayout"] = ocilayout.__version__
    dirty = bool(_git("status", "--porcelain", "--untracked-files=no", "ocilayout"))
    return {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "cpu": cpu, "cpus": os.cpu_count(), "mem_gib": round(mem_gib, 1),
        "kernel": platform.release(), "python": platform.python_version(), "filesystem": fs,
        "load_avg_at_start": [round(x, 2) for x in os.getloadavg()],
        "git_commit": _git("rev-parse", "--short", "HEAD"), "ocilayout_tree_dirty": dirty,
        "versions": versions,
    }


@dataclass
class Row:
    metric: str
    ocilayout: str
    reference: str
    ratio: float | None
    target: str
    ok: bool | None
    data: dict[str, Any] = field(default_factory=dict)


def _median(xs: list[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


def print_table(rows: list[Row]) -> None:
    head = ("metric", "ocilayout", "reference", "ratio", "target", "met")
    body = [(r.metric, r.ocilayout, r.reference, "-" if r.ratio is None else f"{r.ratio:.2f}", r.target,
             "-" if r.ok is None else ("yes" if r.ok else "NO")) for r in rows]
    widths = [max(len(str(x[i])) for x in (head, *body)) for i in range(len(head))]
    line = "  ".join("-" * w for w in widths)
    print(line)
    print("  ".join(str(h).ljust(w) for h, w in zip(head, widths, strict=True)))
    print(line)
    for b in body:
        print("  ".join(str(c).ljust(w) for c, w in zip(b, widths, strict=True)))
    print(line)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", type=Path, default=DEFAULT_WORK, help="work directory (default: benchmarks/work)")
    ap.add_argument("--runs", type=int, default=5, help="timed runs per tool for copy and fsck (median reported)")
    ap.add_argument("--inspect-runs", type=int, default=10, help="timed runs for the startup figures")
    ap.add_argument("--scale", type=float, default=1.0, help="shrink the workload for a smoke run, e.g. 0.02")
    ap.add_argument("--only", default="copy,fsck,inspect", help="comma list of: copy, fsck, inspect")
    ap.add_argument("--rebuild", action="store_true", help="rebuild the workload even if cached")
    ap.add_argument("--profile", action="store_true", help="also run one ocilayout copy of each kind under cProfile")
    ap.add_argument("--json", type=Path, help="results file (default: WORK/results.json)")
    ap.add_argument("--ocilayout", default=str(Path(sys.executable).with_name("ocilayout")))
    ap.add_argument("--skopeo", default=shutil.which("skopeo") or "")
    args = ap.parse_args(argv)
    only = set(args.only.split(","))
    work: Path = args.work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    log = work / "commands.log"
    log.write_text("")

    tools = {"ocilayout": args.ocilayout}
    if args.skopeo:
        tools["skopeo"] = args.skopeo
    else:
        print("bench: skopeo not found: ratios against skopeo are skipped", file=sys.stderr)
    facts = machine_facts(work, tools)
    print(f"bench: {facts['cpu']} x{facts['cpus']}, {facts['mem_gib']} GiB, {facts['filesystem']}, "
          f"commit {facts['git_commit']}{' (+uncommitted ocilayout/)' if facts['ocilayout_tree_dirty'] else ''}",
          file=sys.stderr)

    print(f"bench: workload in {work} (scale {args.scale})", file=sys.stderr)
    info = build_workload(work, args.scale, args.rebuild)
    print(f"  {info['blob_count']} blobs, {info['blob_bytes'] / 1e9:.2f} GB on disk, largest layer "
          f"{info['largest_layer_uncompressed'] / 1e9:.2f} GB uncompressed (built in {info['build_seconds']}s)",
          file=sys.stderr)

    rows: list[Row] = []
    raw: dict[str, Any] = {}
    rss_kb: list[int] = []
    skopeo_rss_kb: list[int] = []
    if "copy" in only:
        for archive in (False, True):
            kind = "oci-archive" if archive else "oci"
            print(f"bench: copy oci -> {kind}, {args.runs} runs", file=sys.stderr)
            runs = bench_copy(tools, work, info, args.runs, archive, log)
            raw[f"copy_{kind}"] = [asdict(r) for r in runs]
            ol = [r.wall for r in runs if r.tool == "ocilayout" and r.rc == 0 and not r.note]
            sk = [r.wall for r in runs if r.tool == "skopeo" and r.rc == 0 and not r.note]
            rss_kb += [r.max_rss_kb for r in runs if r.tool == "ocilayout" and r.rc == 0]
            skopeo_rss_kb += [r.max_rss_kb for r in runs if r.tool == "skopeo" and r.rc == 0]
            fl = [r.wall for r in runs if r.tool == "floor" and r.rc == 0]
            sk_rss = max((r.max_rss_kb for r in runs if r.tool == "skopeo"), default=0)
            ratio = _median(ol) / _median(sk) if ol and sk else None
            mbps = info["blob_bytes"] / _median(ol) / 1e6 if ol else float("nan")
            rows.append(Row(
                f"copy oci->{kind} (median of {args.runs})",
                f"{_median(ol):.2f}s (min {min(ol):.2f}, {mbps:.0f} MB/s)" if ol else "FAILED",
                f"skopeo {_median(sk):.2f}s (min {min(sk):.2f})" if sk else "-",
                ratio, "ratio <= 0.50", None if ratio is None else ratio <= 0.5,
                {"ocilayout_s": ol, "skopeo_s": sk, "skopeo_max_rss_kb": sk_rss,
                 "ratio_of_minimums": min(ol) / min(sk) if ol and sk else None},
            ))
            rows.append(Row(
                "  same, vs I/O floor (copy+fsync, no hashing)", f"{_median(ol):.2f}s" if ol else "FAILED",
                f"floor {_median(fl):.2f}s" if fl else "-",
                _median(ol) / _median(fl) if ol and fl else None, "(info)", None, {"floor_s": fl},
            ))
        peak = max(rss_kb, default=0)
        sk_peak = max(skopeo_rss_kb, default=0)
        rows.append(Row("peak RSS, ocilayout copy (1 GiB layer)", f"{peak / 1024:.1f} MiB" if peak else "FAILED",
                        f"skopeo {sk_peak / 1024:.1f} MiB" if sk_peak else "-", None, "< 100 MB",
                        (peak * 1024 < 100e6) if peak else False,
                        {"max_rss_kb": peak, "all_kb": rss_kb, "skopeo_max_rss_kb": sk_peak}))
    if "fsck" in only:
        print(f"bench: fsck vs sha256, {args.runs} runs", file=sys.stderr)
        runs, base, total = bench_fsck(tools["ocilayout"], work, args.runs, log)
        raw["fsck"] = [asdict(r) for r in runs]
        ok = [r.wall for r in runs if r.rc == 0]
        fs_mbps = total / _median(ok) / 1e6 if ok else float("nan")
        base_mbps = total / _median(base) / 1e6
        ratio = fs_mbps / base_mbps if ok else None
        rows.append(Row(f"fsck throughput (median of {args.runs})", f"{fs_mbps:.0f} MB/s" if ok else "FAILED",
                        f"sha256 {base_mbps:.0f} MB/s", ratio, "ratio >= 0.80",
                        None if ratio is None else ratio >= 0.8,
                        {"bytes": total, "ocilayout_s": ok, "sha256_s": base,
                         "fsck_max_rss_kb": max((r.max_rss_kb for r in runs), default=0)}))
    if "inspect" in only:
        print(f"bench: startup, {args.inspect_runs} runs each", file=sys.stderr)
        st = bench_startup(tools, work, args.inspect_runs, log)
        raw["startup"] = {k: [asdict(r) for r in v] for k, v in st.items()}
        ins = [r.wall for r in st["ocilayout inspect"] if r.rc == 0]
        sk = st.get("skopeo inspect", [])
        med = _median(ins) * 1000
        rows.append(Row(f"ocilayout inspect small image (median of {args.inspect_runs})",
                        f"{med:.0f} ms" if ins else "FAILED",
                        f"skopeo {_median([r.wall for r in sk]) * 1000:.0f} ms" if sk else "-",
                        None, "< 150 ms", (med < 150) if ins else False, {"ocilayout_s": ins}))
        for name in ("ocilayout --help", "python -c 'import ocilayout'"):
            rows.append(Row(f"{name} (median)", f"{_median([r.wall for r in st[name]]) * 1000:.0f} ms", "-", None,
                            "(info)", None))

    profiles = []
    if args.profile:
        for archive in (False, True):
            profiles.append(str(profile_copy(tools["ocilayout"], work, archive)))
            print(f"bench: profile written to {profiles[-1]}", file=sys.stderr)

    print()
    print_table(rows)
    result = {"machine": facts, "workload": info, "runs": args.runs, "rows": [asdict(r) for r in rows],
              "raw": raw, "profiles": profiles}
    out = args.json or work / "results.json"
    out.write_text(json.dumps(result, indent=2))
    print(f"\nresults: {out}")
    return 0 if all(r.ok is not False for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
