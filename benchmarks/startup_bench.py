#!/usr/bin/env python3
"""Start-up cost of ``ocilayout`` against a bare ``python -c 'import typer'``, in the same run. Not a test.

Target (issue 7): ``ocilayout inspect`` of a small image within 1.3x of ``python -c 'import typer'`` (median
wall time; both pay interpreter start-up, ``site`` and typer, so the difference is our own imports and work).

Every command runs ``--runs`` times (default 40) after one untimed warm-up, the commands rotated run by run
so drift hits them all alike; medians and minimums are printed, and with ``--json FILE`` every run's time.
``--importtime`` then prints, from ``python -X importtime``, the modules ``ocilayout inspect`` loads beyond
``import typer`` with their self and cumulative microseconds: that is where the difference goes.

Usage: .venv/bin/python benchmarks/startup_bench.py [--runs 40] [--importtime] [--json FILE]
Exit status 1 when the inspect/typer ratio misses the target.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGET = 1.3
HERE = Path(__file__).resolve().parent
REPO = HERE.parent


def _env() -> dict[str, str]:
    env = dict(os.environ)
    for name in ("PYTHONSTARTUP", "PYTHONDONTWRITEBYTECODE", "PYTHONPROFILEIMPORTTIME", "OCILAYOUT_DEBUG"):
        env.pop(name, None)
    return env


def _ocilayout() -> str:
    exe = Path(sys.executable).with_name("ocilayout")
    found = str(exe) if exe.exists() else shutil.which("ocilayout")
    if not found:
        sys.exit("startup_bench: no ocilayout console script next to this python (pip install -e .)")
    return found


def _time(cmd: list[str]) -> float:
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=_env(), cwd="/")
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.exit(f"startup_bench: {cmd} exited {proc.returncode}: {proc.stderr.decode(errors='replace')[-500:]}")
    return wall


def _importtime(args: list[str]) -> list[tuple[str, int, int]]:
    """(module, self us, cumulative us) rows of ``python -X importtime ARGS``."""
    proc = subprocess.run([sys.executable, "-X", "importtime", *args], capture_output=True, text=True, env=_env(),
                          cwd="/")
    rows = []
    for line in proc.stderr.splitlines():
        m = re.match(r"import time:\s+(\d+) \|\s+(\d+) \|\s*(\S+)", line)
        if m:
            rows.append((m.group(3), int(m.group(1)), int(m.group(2))))
    return rows


def report_importtime(inspect_args: list[str], top: int) -> None:
    base = {name for name, _s, _c in _importtime(["-c", "import typer"])}
    rows = [r for r in _importtime(["-m", "ocilayout", *inspect_args]) if r[0] not in base]
    own = sum(s for n, s, _c in rows if n.startswith("ocilayout"))
    print(f"\nmodules 'ocilayout inspect' loads beyond 'import typer': {len(rows)}, "
          f"self time {sum(s for _n, s, _c in rows) / 1000:.1f} ms (ocilayout.* {own / 1000:.1f} ms; "
          "importtime inflates absolute figures)")
    print(f"{'self us':>8} {'cum us':>8}  module")
    for name, self_us, cum_us in sorted(rows, key=lambda r: -r[1])[:top]:
        print(f"{self_us:8d} {cum_us:8d}  {name}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=40)
    ap.add_argument("--importtime", action="store_true", help="also show what the extra imports are")
    ap.add_argument("--top", type=int, default=25, help="rows of the --importtime report")
    ap.add_argument("--json", type=Path, help="write every run's wall time here")
    args = ap.parse_args()

    sys.path.insert(0, str(REPO))
    from ocilayout.sample import build_sample_layout

    ol = _ocilayout()
    with tempfile.TemporaryDirectory(prefix="ocilayout-startup-") as tmp:
        small = Path(tmp) / "small"
        build_sample_layout(small)
        inspect_args = ["inspect", f"oci:{small}:v1"]
        cmds = {
            "python -c pass": [sys.executable, "-c", "pass"],
            "python -c 'import typer'": [sys.executable, "-c", "import typer"],
            "python -c 'import ocilayout'": [sys.executable, "-c", "import ocilayout"],
            "ocilayout inspect": [ol, *inspect_args],
            "ocilayout --help": [ol, "--help"],
        }
        times: dict[str, list[float]] = {name: [] for name in cmds}
        for cmd in cmds.values():
            _time(cmd)  # warm-up: page cache, .pyc files
        for _ in range(args.runs):
            for name, cmd in cmds.items():
                times[name].append(_time(cmd))
        base = statistics.median(times["python -c 'import typer'"])
        print(f"startup, median (min) of {args.runs} runs, Python {sys.version.split()[0]}, "
              f"load average {os.getloadavg()[0]:.2f}")
        for name, ts in times.items():
            med = statistics.median(ts)
            print(f"  {name:30s} {med * 1000:6.1f} ms ({min(ts) * 1000:6.1f})  {med / base:5.2f}x typer")
        ratio = statistics.median(times["ocilayout inspect"]) / base
        met = ratio <= TARGET
        print(f"ocilayout inspect / import typer: {ratio:.2f} (target <= {TARGET}): {'met' if met else 'MISSED'}")
        if args.json:
            args.json.write_text(json.dumps({"runs": times, "ratio": ratio, "target": TARGET}, indent=1))
        if args.importtime:
            report_importtime(inspect_args, args.top)
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
