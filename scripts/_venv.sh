# shellcheck shell=bash
# Sourced by scripts/demo and scripts/test: make sure ./.venv exists and holds `pip install -e '.[test]'`.
#
# Idempotent and cheap on re-runs: the install is skipped while a stamp (hash of pyproject.toml + the
# interpreter version) matches and `import ocilayout` works. Environment:
#   PYTHON              interpreter used to create the venv (default: python3; needs >= 3.11)
#   OCILAYOUT_VENV      venv directory (default: <repo>/.venv)
#   OCILAYOUT_REINSTALL=1   force `pip install -e '.[test]'` even when the stamp matches

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV=${OCILAYOUT_VENV:-$ROOT/.venv}
VPY=$VENV/bin/python

_say() { printf '%s\n' "$*" >&2; }

ensure_venv() {
    local py=${PYTHON:-python3}
    if ! "$VPY" -c 'import sys' >/dev/null 2>&1; then
        command -v "$py" >/dev/null || { _say "error: $py not found (need Python >= 3.11)"; return 1; }
        "$py" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
            || { _say "error: $("$py" -V 2>&1) is too old (need Python >= 3.11; set PYTHON=...)"; return 1; }
        _say "==> creating $VENV with $("$py" -V 2>&1)"
        rm -rf "$VENV"
        if ! "$py" -m venv "$VENV"; then
            _say "error: '$py -m venv' failed; on Debian/Ubuntu: apt-get install python3-venv"
            rm -rf "$VENV"
            return 1
        fi
    fi
    local stamp_file=$VENV/.ocilayout-install-stamp want
    # Bump "setup-N" when this function changes what it installs, so existing venvs pick it up once.
    want="setup-2 $(sha256sum "$ROOT/pyproject.toml" | cut -d' ' -f1) $("$VPY" -V 2>&1)"
    if [[ ${OCILAYOUT_REINSTALL:-0} != 1 && -f $stamp_file && $(cat "$stamp_file") == "$want" ]] \
            && "$VPY" -c 'import ocilayout, pytest' >/dev/null 2>&1; then
        return 0
    fi
    _say "==> pip install -e '.[test]' into $VENV"
    # setuptools >= 70.1 builds wheels without the 'wheel' package: tests/test_packaging.py builds one offline.
    "$VPY" -m pip install --disable-pip-version-check -q --upgrade pip 'setuptools>=70.1' >&2 \
        || _say "(pip/setuptools upgrade failed; going on)"
    "$VPY" -m pip install --disable-pip-version-check -q -e "$ROOT[test]" >&2
    printf '%s\n' "$want" > "$stamp_file"
}
