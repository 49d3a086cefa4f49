"""Packaging contract: a light ``import ocilayout``, a pinned public API, working entry points, ``py.typed``.

Heavy or side-effectful modules (CLI framework, progress bars, network, crypto, codecs) must load lazily:
``import ocilayout`` is what build systems and other libraries pay for. On failure these tests name the
import chain that pulled the module in (from ``python -X importtime``).
"""

from __future__ import annotations

import importlib
import importlib.metadata
import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import ocilayout

ROOT = Path(__file__).resolve().parent.parent

#: The public API. Changing it is a deliberate act: update this list in the same commit.
EXPECTED_ALL = [
    "ArchiveReader",
    "Conflict",
    "CopyOptions",
    "CopyResult",
    "Descriptor",
    "Digest",
    "DigestMismatch",
    "FsckReport",
    "GcResult",
    "ImageConfig",
    "ImageReference",
    "IntegrityError",
    "InvalidArgument",
    "InvalidDigest",
    "InvalidKey",
    "InvalidManifest",
    "InvalidReference",
    "LayoutError",
    "LayoutReader",
    "LayoutStore",
    "Manifest",
    "NotFound",
    "OcilayoutError",
    "Platform",
    "RegistryError",
    "SignatureError",
    "SizeMismatch",
    "UnsafePath",
    "UnsupportedFormat",
    "VerificationError",
    "__version__",
    "fsck",
    "inspect_image",
    "manifest_digest",
    "open_source",
    "parse_reference",
]

#: Top-level packages ``import ocilayout`` must not load (CLI, progress, network, crypto, codecs).
HEAVY = [
    "typer", "click", "rich", "shellingham",  # CLI
    "tqdm",  # progress
    "urllib3", "requests", "http.client", "ssl",  # network
    "cryptography", "nacl",  # signatures
    "zstandard", "isal",  # codecs
    "yaml",  # sync --src yaml only
    "pydantic",  # typer 0.29 imports it on every command (+40 ms): pyproject pins typer < 0.29
]
#: ``ocilayout --help`` needs typer, but nothing that only some commands use. Not rich either: help is plain
#: text (``rich_markup_mode=None``), and rich costs about 100 ms.
HEAVY_FOR_HELP = ["rich", "tqdm", "urllib3", "requests", "http.client", "ssl", "cryptography", "nacl", "zstandard",
                  "isal", "yaml", "pydantic"]
#: ``ocilayout inspect`` of an oci: image: none of the above, and none of our modules for other commands: not
#: the copy planner and its walk (the platform choice is ocilayout.selection), nor OpenSSL's ``_hashlib``
#: (manifests and configs are hashed by the interpreter's small sha2 modules: digest.new_hash).
HEAVY_FOR_INSPECT = [*HEAVY_FOR_HELP, "ocilayout.signature", "ocilayout.validate", "ocilayout.gc", "ocilayout.archive",
                     "ocilayout.listing", "ocilayout.compression", "ocilayout.tags", "ocilayout.sample",
                     "ocilayout.copy", "ocilayout.plan", "ocilayout.graph", "ocilayout.pipeline", "_hashlib",
                     "base64", "ocilayout.sync", "ocilayout.semver"]


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("PYTHONSTARTUP", None)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def _importtime(code: list[str]) -> tuple[set[str], str]:
    """Run ``python -X importtime ARGS``; returns (modules in sys.modules at exit, importtime report)."""
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", *code],
        capture_output=True, text=True, timeout=60, env=_env(), cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    modules: set[str] = set()
    for line in proc.stdout.splitlines():
        if line.startswith("MODULES="):
            modules = set(json.loads(line[len("MODULES="):]))
    return modules, proc.stderr


def _chain(report: str, module: str) -> str:
    """``a <- b <- c``: who imported ``module``, read from a ``-X importtime`` report (children print first)."""
    rows: list[tuple[int, str]] = []
    for line in report.splitlines():
        if not line.startswith("import time:") or "|" not in line:
            continue
        name_col = line.rsplit("|", 1)[1]
        name = name_col.strip()
        if name == "imported package":
            continue
        rows.append((len(name_col) - len(name_col.lstrip()), name))
    for i, (depth, name) in enumerate(rows):
        if name == module or name.startswith(module + "."):
            chain, want = [name], depth
            for d, parent in rows[i + 1:]:
                if d < want:
                    chain.append(parent)
                    want = d
            return " <- ".join(chain)
    return f"{module} (not in the importtime report: imported before or by the interpreter)"


def _loaded(modules: set[str], names: list[str]) -> list[str]:
    return sorted(n for n in names if n in modules or any(m.startswith(n + ".") for m in modules))


def test_import_loads_no_heavy_modules() -> None:
    modules, report = _importtime(
        ["-c", "import json, sys, ocilayout; print('MODULES=' + json.dumps(sorted(sys.modules)))"])
    assert "ocilayout" in modules
    bad = _loaded(modules, [*HEAVY, "ocilayout.cli", "ocilayout.transports.registry"])
    assert not bad, "import ocilayout loaded: " + "; ".join(_chain(report, b) for b in bad)


def test_import_loads_only_the_exception_tree() -> None:
    """Every other public name is lazy (``ocilayout.__getattr__``): nothing of ours is imported for nothing."""
    modules, report = _importtime(
        ["-c", "import json, sys, ocilayout; print('MODULES=' + json.dumps(sorted(sys.modules)))"])
    ours = sorted(m for m in modules if m == "ocilayout" or m.startswith("ocilayout."))
    assert ours == ["ocilayout", "ocilayout.errors"], "import ocilayout loaded: " + "; ".join(
        _chain(report, m) for m in ours if m not in ("ocilayout", "ocilayout.errors"))
    # typing alone would be 80% of the cost of `import ocilayout`; annotations are strings, TYPE_CHECKING a constant.
    assert "typing" not in modules, _chain(report, "typing")


def _run_cli_modules(args: list[str]) -> tuple[set[str], str]:
    code = ("import json, sys, runpy\n"
            f"sys.argv = ['ocilayout', *{args!r}]\n"
            "try:\n    runpy.run_module('ocilayout', run_name='__main__')\n"
            "except SystemExit as e:\n    assert not e.code, e.code\n"
            "print('MODULES=' + json.dumps(sorted(sys.modules)))\n")
    return _importtime(["-c", code])


def test_help_loads_no_command_only_modules() -> None:
    modules, report = _run_cli_modules(["--help"])
    assert "ocilayout.cli" in modules
    bad = _loaded(modules, HEAVY_FOR_HELP)
    assert not bad, "ocilayout --help loaded: " + "; ".join(_chain(report, b) for b in bad)


def test_inspect_loads_no_other_commands_modules(tmp_path: Path) -> None:
    from ocilayout.sample import build_sample_layout

    build_sample_layout(tmp_path / "s")
    modules, report = _run_cli_modules(["inspect", f"oci:{tmp_path / 's'}:v1"])
    assert "ocilayout.inspect" in modules
    bad = _loaded(modules, HEAVY_FOR_INSPECT)
    assert not bad, "ocilayout inspect loaded: " + "; ".join(_chain(report, b) for b in bad)


@pytest.mark.parametrize("dest", ["dir:{t}/d", "oci:{t}/o:v1", "docker-archive:{t}/a.tar:app:1"])
def test_copy_of_an_unsigned_image_loads_no_signature_code(tmp_path: Path, dest: str) -> None:
    """A source with no signatures says so without importing ocilayout.signature.storage (~10 ms)."""
    from ocilayout.sample import build_sample_layout

    build_sample_layout(tmp_path / "s", compression="none")
    modules, report = _run_cli_modules(["copy", "-q", f"oci:{tmp_path / 's'}:v1", dest.format(t=tmp_path)])
    assert "ocilayout.copy" in modules
    bad = _loaded(modules, ["ocilayout.signature.storage", "ocilayout.signature.model"])
    assert not bad, "ocilayout copy loaded: " + "; ".join(_chain(report, b) for b in bad)


def test_small_documents_skip_openssl_only_for_the_first_mib() -> None:
    """digest.new_hash: small documents are hashed without loading OpenSSL's _hashlib (inspect's start-up),
    but only for the first MiB: the built-in module is ~6x slower per byte, so an fsck of many small blobs
    must still get OpenSSL. The digests are the same either way."""
    code = ("import sys, os\n"
            "from ocilayout.digest import Digest\n"
            "doc = os.urandom(8192)\n"
            "first = Digest.of(doc)\n"
            "assert '_hashlib' not in sys.modules\n"
            "for _ in range(200):\n"
            "    assert Digest.of(doc) == first\n"
            "assert '_hashlib' in sys.modules\n"
            "import hashlib\n"
            "assert first.hex == hashlib.sha256(doc).hexdigest()\n"
            "big = os.urandom(300 << 10)\n"
            "assert Digest.of(big, 'sha512').hex == hashlib.sha512(big).hexdigest()\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=_env())
    assert proc.returncode == 0, proc.stderr


def test_all_is_pinned_and_importable() -> None:
    assert sorted(ocilayout.__all__) == sorted(EXPECTED_ALL)
    assert len(set(ocilayout.__all__)) == len(ocilayout.__all__), "duplicates in __all__"
    for name in ocilayout.__all__:
        assert getattr(ocilayout, name, None) is not None, f"ocilayout.{name} is in __all__ but missing"
    namespace: dict[str, object] = {}
    exec("from ocilayout import *", namespace)
    assert set(EXPECTED_ALL) - {"__version__"} <= set(namespace)


def test_errors_share_one_root() -> None:
    for name in ocilayout.__all__:
        obj = getattr(ocilayout, name)
        if isinstance(obj, type) and issubclass(obj, Exception):
            assert issubclass(obj, ocilayout.OcilayoutError), name
            assert isinstance(obj.exit_code, int) and obj.exit_code > 0, name


def test_version_matches_metadata() -> None:
    assert ocilayout.__version__ == importlib.metadata.version("ocilayout")


def _console_script() -> str:
    exe = Path(sys.executable).with_name("ocilayout")
    if exe.exists():
        return str(exe)
    found = shutil.which("ocilayout")
    assert found, "the ocilayout console script is not installed (pip install -e '.[test]')"
    return found


def test_python_m_help() -> None:
    proc = subprocess.run([sys.executable, "-m", "ocilayout", "--help"], capture_output=True, text=True,
                          timeout=60, env=_env())
    assert proc.returncode == 0, proc.stderr
    assert "Usage" in proc.stdout and "ocilayout" in proc.stdout


def test_console_script_help() -> None:
    proc = subprocess.run([_console_script(), "--help"], capture_output=True, text=True, timeout=60, env=_env())
    assert proc.returncode == 0, proc.stderr
    assert "Usage" in proc.stdout


def test_console_script_usage_error_is_one_clean_line() -> None:
    """A usage error exits 2 with a message, never a traceback (recent typer vendors click as typer._click)."""
    proc = subprocess.run([_console_script(), "no-such-command"], capture_output=True, text=True, timeout=60,
                          env=_env())
    assert "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert proc.returncode == 2, proc.stderr
    assert "no-such-command" in proc.stderr


def test_py_typed_in_source_tree_and_package_data() -> None:
    import tomllib

    assert (Path(ocilayout.__file__).parent / "py.typed").is_file()
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "py.typed" in config["tool"]["setuptools"]["package-data"]["ocilayout"]


def _can_build_wheel_offline() -> bool:
    """pyproject's SPDX ``license`` string needs setuptools >= 77 (which has bdist_wheel built in)."""
    try:
        import setuptools
    except ImportError:
        return False
    major = int(setuptools.__version__.split(".")[0])
    return major >= 77


@pytest.mark.slow
@pytest.mark.skipif(not _can_build_wheel_offline(),
                    reason="building a wheel offline needs setuptools >= 77 in the venv (pip install -e '.[test]')")
def test_wheel_ships_py_typed(tmp_path: Path) -> None:
    """Build a real wheel from a copy of the tree (no network, no build isolation) and look inside."""
    src = tmp_path / "src"
    src.mkdir()
    shutil.copy2(ROOT / "pyproject.toml", src)
    if (ROOT / "README.md").exists():
        shutil.copy2(ROOT / "README.md", src)
    shutil.copytree(ROOT / "ocilayout", src / "ocilayout", ignore=shutil.ignore_patterns("__pycache__"))
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
         "--disable-pip-version-check", "-v", "-w", str(tmp_path / "dist"), str(src)],
        capture_output=True, text=True, timeout=300, env=_env(),
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    log = proc.stdout + proc.stderr  # -v: setuptools' warnings are in it
    assert "deprecat" not in log.lower(), log[-3000:]
    (wheel,) = (tmp_path / "dist").glob("ocilayout-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        metadata = next(n for n in names if n.endswith(".dist-info/METADATA"))
        entry_points = zf.read(metadata.replace("METADATA", "entry_points.txt")).decode()
        meta = zf.read(metadata).decode()
    assert "License-Expression: Apache-2.0" in meta.splitlines()
    assert "ocilayout/py.typed" in names
    assert "ocilayout/__main__.py" in names
    assert not any(n.startswith(("tests/", "fixtures/", "benchmarks/")) for n in names)
    assert "ocilayout = ocilayout.cli:run" in entry_points


def test_cli_module_is_importable_lazily() -> None:
    """The CLI lives in a subpackage that the library never imports; importing it explicitly works."""
    mod = importlib.import_module("ocilayout.cli")
    assert callable(mod.main)


def test_fixture_script_is_deterministic(tmp_path: Path) -> None:
    """fixtures/make_sample.py (the demo's input) gives the same bytes twice, and the digests it documents."""
    proc = subprocess.run([sys.executable, str(ROOT / "fixtures" / "make_sample.py"), "--check"],
                          capture_output=True, text=True, timeout=120, env=_env())
    assert proc.returncode == 0, proc.stderr
    out = subprocess.run([sys.executable, str(ROOT / "fixtures" / "make_sample.py"), str(tmp_path / "s")],
                         capture_output=True, text=True, timeout=120, env=_env(), check=True).stdout
    documented = (ROOT / "fixtures" / "README.md").read_text()
    for line in out.splitlines():
        assert line in documented, f"fixtures/README.md does not show {line!r}: update it with the new digests"


def test_the_readme_demo_runs_offline_and_checks_itself() -> None:
    """README's first command: scripts/demo runs the main job on the built-in sample (it exits non-zero
    when an output is not reproducible or not fsck-clean)."""
    root = Path(__file__).resolve().parent.parent
    env = {**os.environ, "OCILAYOUT_VENV": str(Path(sys.executable).resolve().parent.parent)}
    env.pop("SOURCE_DATE_EPOCH", None)
    proc = subprocess.run([str(root / "scripts" / "demo")], capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "demo OK" in proc.stderr and "(reproducible)" in proc.stdout
    assert proc.stderr.count(", 0 errors, ") == 6  # every fsck of the demo's outputs is clean
