"""The CLI's one error boundary (cli/_main.main): closed output streams, OS errors, usage errors, exit codes.

Closed pipes and descriptors are tested with real subprocesses: that is where they happen.
"""

from __future__ import annotations

import errno
import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import assert_fsck

from ocilayout.errors import InvalidArgument, NotFound, OcilayoutError
from ocilayout.store import LayoutStore

CLI = [sys.executable, "-m", "ocilayout"]


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("OCILAYOUT_DEBUG", None)
    return env


def _closed_pipe() -> int:
    """The write end of a pipe whose read end is already closed: every write gets EPIPE."""
    r, w = os.pipe()
    os.close(r)
    return w


@pytest.mark.parametrize("args", [
    ["inspect", "oci:{s}:v1"],
    ["inspect", "--raw", "oci:{s}:v1"],
    ["list-tags", "oci:{s}"],
    ["images", "{s}"],
    ["fsck", "--json", "{s}"],
    ["--help"],
    ["copy", "--help"],
], ids=" ".join)
def test_closed_stdout_pipe_exits_141_quietly(sample: Path, args: list[str]) -> None:
    w = _closed_pipe()
    try:
        proc = subprocess.run([*CLI, *(a.format(s=sample) for a in args)], stdout=w, stderr=subprocess.PIPE,
                              timeout=60, env=_env())
    finally:
        os.close(w)
    assert proc.returncode == 141, proc.stderr
    assert proc.stderr == b""  # no traceback, no "Exception ignored ... BrokenPipeError"


def test_head_c1(sample: Path) -> None:
    """``ocilayout list-tags ... | head -c1`` with more output than a pipe holds: head exits, we stop quietly."""
    doc = json.loads((sample / "index.json").read_bytes())
    entry = doc["manifests"][0]
    doc["manifests"] = [{**entry, "annotations": {"org.opencontainers.image.ref.name": f"tag-{i:05d}"}}
                        for i in range(8000)]  # ~170 kB of list-tags output; a pipe holds 64 KiB
    (sample / "index.json").write_text(json.dumps(doc))
    producer = subprocess.Popen([*CLI, "list-tags", f"oci:{sample}"], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, env=_env())
    assert producer.stdout is not None and producer.stderr is not None
    head = subprocess.run(["head", "-c1"], stdin=producer.stdout, capture_output=True, timeout=60)
    producer.stdout.close()
    err = producer.stderr.read()
    assert producer.wait(timeout=60) == 141, err
    assert err == b""
    assert head.stdout == b"{"


def test_closed_stderr_pipe_keeps_the_error_code(sample: Path, tmp_path: Path) -> None:
    w = _closed_pipe()
    try:
        failed = subprocess.run([*CLI, "inspect", f"oci:{tmp_path}/none:v1"], stdout=subprocess.PIPE, stderr=w,
                                timeout=60, env=_env())
        copied = subprocess.run([*CLI, "copy", f"oci:{sample}:v1", f"oci:{tmp_path}/d:v1"],
                                stdout=subprocess.PIPE, stderr=w, timeout=60, env=_env())
    finally:
        os.close(w)
    assert failed.returncode == 3 and failed.stdout == b""  # the message was lost, not the failure
    assert copied.returncode == 141  # the copy is done; only its report could not be written
    assert_fsck(tmp_path / "d")


CONSOLE = [str(Path(sys.executable).with_name("ocilayout"))]


@pytest.mark.parametrize("args", [
    ["inspect", "oci:{s}:v1"],
    ["inspect", "oci:{s}/none:v1"],
    ["list-tags", "oci:{s}"],
    ["no-such-command"],
    ["--help"],
], ids=" ".join)
@pytest.mark.parametrize("closed", [False, True], ids=["open", "closed-stdout"])
def test_console_script_exits_as_python_m(sample: Path, args: list[str], closed: bool) -> None:
    """The console script (cli.run: main, flush, exit without the interpreter's teardown) prints the same
    bytes and exits with the same code as ``python -m ocilayout`` (the ordinary exit), also into a closed pipe."""
    argv = [a.format(s=sample) for a in args]
    results = []
    for cmd in (CLI, CONSOLE):
        w = _closed_pipe() if closed else subprocess.PIPE
        try:
            proc = subprocess.run([*cmd, *argv], stdout=w, stderr=subprocess.PIPE, timeout=60, env=_env())
        finally:
            if closed:
                os.close(w)  # type: ignore[arg-type]
        results.append((proc.returncode, proc.stdout, proc.stderr))
    assert results[0] == results[1]
    if "none" in args[-1] or args[0] == "no-such-command":
        assert results[0][0] == (3 if "none" in args[-1] else 2)  # an error: nothing for stdout
    else:
        assert results[0][0] == (141 if closed else 0)


def test_closed_stdout_descriptor(sample: Path) -> None:
    proc = subprocess.run(["sh", "-c", 'exec "$@" >&-', "sh", *CLI, "inspect", f"oci:{sample}:v1"],
                          capture_output=True, text=True, timeout=60, env=_env())
    assert proc.returncode == 74, proc.stderr
    assert proc.stderr == "ocilayout: error: bad file descriptor: standard output\n"


def test_closed_std_descriptors_are_not_reused() -> None:
    """With 0-2 closed at start, files the command opens must not land on them (a child would write there)."""
    code = ("import os, sys\n"
            "from ocilayout.cli._main import _guard_std_fds\n"
            "_guard_std_fds()\n"
            "fd = os.open(os.devnull, os.O_RDONLY)\n"
            "os.write(2, str(fd).encode())\n")
    proc = subprocess.run(["sh", "-c", 'exec "$@" <&- >&-', "sh", sys.executable, "-c", code],
                          capture_output=True, text=True, timeout=60, env=_env())
    assert proc.returncode == 0, proc.stderr
    assert int(proc.stderr) >= 3


@pytest.mark.skipif(not (os.path.exists("/dev/full") and stat.S_ISCHR(os.stat("/dev/full").st_mode)),
                    reason="needs /dev/full")
@pytest.mark.parametrize("args", [["inspect", "oci:{s}:v1"], ["inspect", "--raw", "oci:{s}:v1"], ["images", "{s}"]],
                         ids=" ".join)
def test_full_stdout_is_an_os_error(sample: Path, args: list[str]) -> None:
    with open("/dev/full", "wb") as full:
        proc = subprocess.run([*CLI, *(a.format(s=sample) for a in args)], stdout=full, stderr=subprocess.PIPE,
                              text=True, timeout=60, env=_env())
    assert proc.returncode == 74, proc.stderr
    assert proc.stderr == "ocilayout: error: no space left on device: standard output\n"


@pytest.mark.parametrize("code,sentence,exit_code", [
    (errno.EACCES, "permission denied", 74),
    (errno.ENOSPC, "no space left on device", 74),
    (errno.EROFS, "read-only file system", 74),
    (errno.ELOOP, "too many levels of symbolic links", 74),
    (errno.EISDIR, "is a directory", 74),
    (errno.ENOTDIR, "not a directory", 74),
    (errno.EDQUOT, "disk quota exceeded", 74),
    (errno.ENOENT, "no such file or directory", 3),
    (errno.ENOEXEC, "exec format error", 74),  # not in the table: strerror, lower-cased
])
def test_os_errors_are_a_sentence_and_a_code(cli, monkeypatch: pytest.MonkeyPatch, code: int, sentence: str,  # type: ignore[no-untyped-def]
                                             exit_code: int) -> None:
    import ocilayout.transports

    def refuse(*_a: object, **_k: object) -> None:
        raise OSError(code, os.strerror(code), "/srv/lay\x1bout/index.json")

    monkeypatch.setattr(ocilayout.transports, "open_source", refuse)
    res = cli("inspect", "oci:/srv/layout:v1")
    assert res.exit_code == exit_code, res
    assert res.stderr.startswith(f"ocilayout: error: {sentence}"), res
    assert res.stderr.endswith(": /srv/lay\\x1bout/index.json\n"), res
    assert "Errno" not in res.stderr


def test_os_error_with_two_paths_and_without_errno(cli, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    import ocilayout.transports

    errors = [OSError(errno.EXDEV, "Invalid cross-device link", "/a", None, "/b"), OSError("something odd")]

    def refuse(*_a: object, **_k: object) -> None:
        raise errors.pop(0)

    monkeypatch.setattr(ocilayout.transports, "open_source", refuse)
    assert cli("inspect", "oci:/x:v1").stderr == "ocilayout: error: cross-device link: /a -> /b\n"
    res = cli("inspect", "oci:/x:v1")
    assert (res.exit_code, res.stderr) == (74, "ocilayout: error: something odd\n")


@pytest.mark.skipif(not os.path.isdir("/sys/kernel") or os.path.exists("/sys/x.private"), reason="needs sysfs")
def test_real_os_error_end_to_end(tmp_path: Path) -> None:
    """sysfs refuses new files (EACCES, or EROFS when mounted read-only), even for root."""
    passfile = tmp_path / "pass"
    passfile.write_text("secret\n")
    proc = subprocess.run([*CLI, "generate-sigstore-key", "--output-prefix", "/sys/x", "--passphrase-file",
                           str(passfile)], capture_output=True, text=True, timeout=60, env=_env())
    assert proc.returncode == 74, proc.stderr
    assert proc.stderr in ("ocilayout: error: permission denied: /sys/x.private\n",
                           "ocilayout: error: read-only file system: /sys/x.private\n")


def test_error_notes_are_shown(cli, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    import ocilayout.transports

    def missing(*_a: object, **_k: object) -> None:
        err = NotFound("no image tagged 'x'")
        err.add_note("in /srv/layout/index.json")
        raise err

    monkeypatch.setattr(ocilayout.transports, "open_source", missing)
    res = cli("inspect", "oci:/srv/layout:x")
    assert (res.exit_code, res.stderr) == (3, "ocilayout: error: no image tagged 'x' (in /srv/layout/index.json)\n")


def test_internal_errors_exit_70_and_debug_raises(cli, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    import ocilayout.transports

    def bug(*_a: object, **_k: object) -> None:
        raise KeyError("oops")

    monkeypatch.setattr(ocilayout.transports, "open_source", bug)
    res = cli("inspect", "oci:/x:v1")
    assert res.exit_code == 70 and res.stderr.startswith("ocilayout: internal error: KeyError"), res
    res = cli("--debug", "inspect", "oci:/x:v1")
    assert res.exit_code == 70 and "Traceback" in res.stderr and "KeyError: 'oops'" in res.stderr, res


@pytest.mark.parametrize("value", ["nan", "NaN", "inf", "-inf", "-1", "-0.5"])
def test_gc_grace_must_be_finite_and_not_negative(cli, sample: Path, value: str) -> None:  # type: ignore[no-untyped-def]
    store = LayoutStore.open(sample)
    orphan = store.put_bytes(b"nobody refers to me")
    old = os.stat(store.blob_path(orphan.digest)).st_mtime - 7200
    os.utime(store.blob_path(orphan.digest), (old, old))
    res = cli("gc", "--grace", value, sample)
    assert res.exit_code == 2, res
    assert res.stderr.startswith("ocilayout: error: Invalid value for '--grace'"), res
    assert res.stderr.count("\n") == 1
    assert store.has_blob(orphan.digest)  # nothing removed
    res = cli("gc", "--grace", "3600", sample)
    assert res.exit_code == 0 and not store.has_blob(orphan.digest), res


def test_fail_raises_into_the_exception_tree(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from ocilayout.cli._app import fail

    err = fail("give one of A or B")
    assert isinstance(err, InvalidArgument) and isinstance(err, OcilayoutError) and err.exit_code == 2
    manifest = tmp_path / "m.json"
    manifest.write_bytes(b'{"schemaVersion":2}')
    res = cli("standalone-sign", manifest, "docker.io/library/x:1", "-o", tmp_path / "sig")
    assert (res.exit_code, res.stderr.count("\n")) == (2, 1), res
    assert res.stderr.startswith("ocilayout: error: give either --key"), res
    assert not (tmp_path / "sig").exists()


def test_closed_stderr_descriptor(sample: Path, tmp_path: Path) -> None:
    """stderr closed at start: a quiet copy works; a chatty one copies, then cannot report it (74, not 70)."""
    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["sh", "-c", 'exec "$@" 2>&-', "sh", *CLI, *args], capture_output=True, text=True,
                              timeout=60, env=_env())

    assert run("copy", "-q", f"oci:{sample}:v1", f"oci:{tmp_path}/q:v1").returncode == 0
    assert run("copy", f"oci:{sample}:v1", f"oci:{tmp_path}/c:v1").returncode == 74
    assert run("inspect", f"oci:{tmp_path}/none:v1").returncode == 3
    assert_fsck(tmp_path / "q")
    assert_fsck(tmp_path / "c")


def test_closed_stdin_is_no_terminal(tmp_path: Path) -> None:
    """A passphrase prompt with stdin closed at start: the usual one-line error (exit 8), not exit 70."""
    env = _env()
    env.pop("OCILAYOUT_PASSPHRASE", None)
    proc = subprocess.run(["sh", "-c", 'exec "$@" <&-', "sh", *CLI, "generate-sigstore-key", "--output-prefix",
                           str(tmp_path / "k")], capture_output=True, text=True, timeout=60, env=env)
    assert proc.returncode == 8, proc.stderr
    assert proc.stderr.startswith("ocilayout: error: a passphrase is needed") and proc.stderr.count("\n") == 1
    assert not list(tmp_path.glob("k*"))
