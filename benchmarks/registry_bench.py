"""Push and pull of bench.py's ~1.3 GB image through a loopback docker-registry: ocilayout vs skopeo.

    .venv/bin/python benchmarks/registry_bench.py               # 3 runs each
    .venv/bin/python benchmarks/registry_bench.py --scale 0.02 --runs 1   # smoke run

Every round gets a fresh registry (new storage dir, new port) so no blob is already there, and skopeo's
blob-info cache is deleted before each skopeo run (it would otherwise turn pushes into cross-repository
mounts). Tools alternate run by run. Push: ``oci:src:bench -> docker://127.0.0.1:PORT/bench/app:bench``;
pull: that registry -> a fresh ``oci:`` directory. skopeo gets ``--preserve-digests`` (push) and
``--dest-oci-accept-uncompressed-layers --preserve-digests`` (pull) so both tools move the same bytes
(skopeo otherwise gzips the uncompressed 1 GB layer). Each result is checked: the registry (push) or the
layout (pull) must hold the source manifest digest. Not a test; needs docker-registry and skopeo.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench  # the workload builder and the skopeo cache helper

ROOT = Path(__file__).resolve().parent.parent


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start(root: Path) -> tuple[subprocess.Popen[bytes], str]:
    """A fresh docker-registry on loopback; returns (process, host:port)."""
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    port = _port()
    cfg = root / "config.yml"
    cfg.write_text(f"version: 0.1\nlog: {{level: error}}\nstorage:\n  filesystem: {{rootdirectory: {root}/s}}\n"
                   f"http:\n  addr: 127.0.0.1:{port}\n")
    proc = subprocess.Popen(["docker-registry", "serve", str(cfg)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    for _ in range(400):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/", timeout=1).close()
            return proc, f"127.0.0.1:{port}"
        except OSError:
            time.sleep(0.025)
    proc.kill()
    raise SystemExit("docker-registry did not start")


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    proc.wait(timeout=10)


def registry_digest(host: str) -> str | None:
    req = urllib.request.Request(f"http://{host}/v2/bench/app/manifests/bench",
                                 headers={"Accept": "application/vnd.oci.image.manifest.v1+json"})
    with urllib.request.urlopen(req, timeout=30) as resp:
        return resp.headers.get("Docker-Content-Digest")


def layout_digest(path: Path) -> str | None:
    doc = json.loads((path / "index.json").read_text())
    return next((m["digest"] for m in doc["manifests"]), None)


#: An installed package has its bytecode compiled; a source checkout under PYTHONDONTWRITEBYTECODE=1 would
#: recompile ocilayout and urllib3 on every run (~0.2 s), which is not what users run.
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def timed(cmd: list[str]) -> float:
    subprocess.run(["sync"], check=True)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=ENV)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed: {proc.stderr[-2000:]}")
    return wall


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--scale", type=float, default=1.0)
    ap.add_argument("--work", type=Path, default=ROOT / "benchmarks" / "work")
    args = ap.parse_args(argv)
    info = bench.build_workload(args.work, args.scale, rebuild=False)
    src = args.work / "src"
    want = info["manifest_digest"]
    ol = str(ROOT / ".venv" / "bin" / "ocilayout")
    sk = shutil.which("skopeo")
    tools = {"ocilayout": ol, **({"skopeo": sk} if sk else {})}
    results: dict[str, dict[str, list[float]]] = {t: {"push": [], "pull": []} for t in tools}
    scratch = args.work / "registry"
    for run in range(args.runs):
        order = list(tools) if run % 2 == 0 else list(reversed(tools))
        for tool in order:
            proc, host = start(scratch / "reg")
            try:
                ref = f"docker://{host}/bench/app:bench"
                out = scratch / "pulled"
                if out.exists():
                    shutil.rmtree(out)
                if tool == "skopeo":
                    bench.clear_skopeo_cache()
                    push = [sk, "--insecure-policy", "copy", "-q", "--preserve-digests", "--dest-tls-verify=false",
                            f"oci:{src}:bench", ref]
                    pull = [sk, "--insecure-policy", "copy", "-q", "--preserve-digests",
                            "--dest-oci-accept-uncompressed-layers", "--src-tls-verify=false", ref, f"oci:{out}:bench"]
                else:
                    push = [ol, "copy", "-q", "--dest-tls-verify=false", f"oci:{src}:bench", ref]
                    pull = [ol, "copy", "-q", "--src-tls-verify=false", ref, f"oci:{out}:bench"]
                results[tool]["push"].append(timed(push))
                assert registry_digest(host) == want, f"{tool} push: wrong digest in the registry"
                if tool == "skopeo":
                    bench.clear_skopeo_cache()
                results[tool]["pull"].append(timed(pull))
                assert layout_digest(out) == want, f"{tool} pull: wrong digest in the layout"
            finally:
                stop(proc)
    shutil.rmtree(scratch, ignore_errors=True)
    mb = info["blob_bytes"] / 1e6
    print(f"workload: {info['blob_count']} blobs, {mb:.0f} MB; runs: {args.runs}; fresh registry each round")
    for what in ("push", "pull"):
        for tool in tools:
            xs = sorted(results[tool][what])
            med = xs[len(xs) // 2]
            print(f"{what:5} {tool:10} median {med:6.2f} s  min {xs[0]:6.2f} s  ({mb / med:5.0f} MB/s)  "
                  f"runs {[round(x, 2) for x in results[tool][what]]}")
        if "skopeo" in tools:
            a = sorted(results["ocilayout"][what])[args.runs // 2]
            b = sorted(results["skopeo"][what])[args.runs // 2]
            print(f"{what:5} ratio ocilayout/skopeo: {a / b:.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
