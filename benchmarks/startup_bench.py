#!/usr/bin/env python3
"""Start-up cost of ``ocilayout`` against a bare ``python -c 'import typer'``, in the same run. Not a test.

Target (issue 7): ``ocilayout inspect`` of a small image within 1.3x of ``python -c 'import typer'`` (median
wall time; both pay interpreter start-up, ``site`` and typer, so the difference is our own imports and work).

Every command runs ``--runs`` times (default 40) after one untimed warm-up, the commands rotated run by run
so drift hits them all alike; medians and minimums of wall time and of CPU time (user + system, from
``wait4``) are printed, and with ``--json FILE`` every run's figures. On a busy machine wall times include
waiting for a CPU; the CPU figures barely move, so they are the ones to compare between runs then.
``--instructions`` also counts the instructions each command executes (valgrind callgrind, PYTHONHASHSEED=0):
deterministic to 0.1%, so it compares two builds even while other jobs make wall times wander.
``--importtime`` then prints, from ``python -X importtime``, the modules ``ocilayout inspect`` loads beyond
``import typer`` with their self and cumulative microseconds: that is where the difference goes.

Usage: .venv/bin/python benchmarks/startup_bench.py [--runs 40] [--instructions] [--importtime] [--json FILE]
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


def _time(cmd: list[str]) -> tuple[float, float]:
    """(wall seconds, CPU seconds: user + system) of one run of ``cmd``."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=_env(), cwd="/")
    assert proc.stderr is not None
    err = proc.stderr.read()
    _pid, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        sys.exit(f"startup_bench: {cmd} exited {proc.returncode}: {err.decode(errors='replace')[-500:]}")
    return wall, usage.ru_utime + usage.ru_stime


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


def instructions(cmd: list[str]) -> int:
    """Instructions executed by one run of ``cmd`` (valgrind callgrind's Ir; PYTHONHASHSEED=0): the same
    within 0.1% run to run, so it compares builds even on a busy machine where wall times wander by 50%."""
    env = _env()
    env["PYTHONHASHSEED"] = "0"
    proc = subprocess.run(["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", *cmd],
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env, cwd="/")
    m = re.search(r"Collected : (\d+)", proc.stderr)
    if proc.returncode != 0 or not m:
        sys.exit(f"startup_bench: valgrind {cmd} failed: {proc.stderr[-500:]}")
    return int(m.group(1))


def report_instructions(cmds: dict[str, list[str]]) -> None:
    counts = {name: instructions(cmd) for name, cmd in cmds.items()}
    base = counts["python -c 'import typer'"]
    print("\ninstructions (valgrind --tool=callgrind, one run each, PYTHONHASHSEED=0)")
    for name, n in counts.items():
        print(f"  {name:30s} {n / 1e6:8.1f} M  {n / base:5.2f}x typer")


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
    ap.add_argument("--instructions", action="store_true",
                    help="also count instructions under valgrind (steady on a busy machine; ~5 s per command)")
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
        walls: dict[str, list[float]] = {name: [] for name in cmds}
        cpus: dict[str, list[float]] = {name: [] for name in cmds}
        for cmd in cmds.values():
            _time(cmd)  # warm-up: page cache, .pyc files
        for _ in range(args.runs):
            for name, cmd in cmds.items():
                wall, cpu = _time(cmd)
                walls[name].append(wall)
                cpus[name].append(cpu)
        typer_wall = statistics.median(walls["python -c 'import typer'"])
        typer_cpu = statistics.median(cpus["python -c 'import typer'"])
        print(f"startup, {args.runs} runs each, Python {sys.version.split()[0]}, load average "
              f"{os.getloadavg()[0]:.2f} at the end")
        print(f"  {'':30s} {'wall median (min)':>19s} {'ratio':>6s}   {'CPU median (min)':>18s} {'ratio':>6s}")
        for name in cmds:
            w, c = statistics.median(walls[name]), statistics.median(cpus[name])
            print(f"  {name:30s} {w * 1000:7.1f} ms ({min(walls[name]) * 1000:5.1f}) {w / typer_wall:5.2f}x   "
                  f"{c * 1000:6.1f} ms ({min(cpus[name]) * 1000:5.1f}) {c / typer_cpu:5.2f}x")
        ratio = statistics.median(walls["ocilayout inspect"]) / typer_wall
        cpu_ratio = statistics.median(cpus["ocilayout inspect"]) / typer_cpu
        met = ratio <= TARGET
        print(f"ocilayout inspect / import typer: wall {ratio:.2f}, CPU {cpu_ratio:.2f} (target <= {TARGET}, on wall "
              f"time): {'met' if met else 'MISSED'}")
        if os.getloadavg()[0] > 0.5 * (os.cpu_count() or 1):
            print("  (the machine was busy: wall times include waiting for a CPU; the CPU ratio is the steadier one)")
        if args.json:
            args.json.write_text(json.dumps({"wall": walls, "cpu": cpus, "ratio": ratio, "cpu_ratio": cpu_ratio,
                                             "target": TARGET, "load": os.getloadavg()[0]}, indent=1))
        if args.instructions:
            if shutil.which("valgrind"):
                report_instructions(cmds)
            else:
                print("\n--instructions: valgrind is not installed")
        if args.importtime:
            report_importtime(inspect_args, args.top)
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
