"""``referrers``: list what refers to an image through its ``subject`` (OCI 1.1)."""

from __future__ import annotations

import typer

from ._app import app
from .images import _AUTHFILE_HELP, _CERT_DIR_HELP, _CONF_HELP, _CREDS_HELP, _TLS_HELP, _registry, _using, _write


@app.command()
def referrers(
    image: str = typer.Argument(..., metavar="IMAGE-NAME", help="docker://HOST/REPO[:TAG|@DIGEST]"),
    artifact_type: str | None = typer.Option(None, "--artifact-type", metavar="TYPE",
                                             help="Only referrers of this artifactType."),
    tls_verify: str | None = typer.Option(None, "--tls-verify", metavar="BOOL", help=_TLS_HELP),
    creds: str | None = typer.Option(None, "--creds", metavar="USER:PASSWORD", help=_CREDS_HELP),
    authfile: str | None = typer.Option(None, "--authfile", help=_AUTHFILE_HELP),
    cert_dir: str | None = typer.Option(None, "--cert-dir", metavar="DIR", help=_CERT_DIR_HELP),
    registries_conf: str | None = typer.Option(None, "--registries-conf", metavar="FILE", help=_CONF_HELP),
) -> None:
    """List the manifests whose subject is the image (signatures, SBOMs, attestations) as an OCI image index:
    the registry's referrers API, else its sha256-<hex> fallback tag."""
    import json

    from ..referrers import empty_index, list_referrers

    reg = _registry(tls_verify, creds, authfile, cert_dir=cert_dir, registries_conf=registries_conf)
    with _using(reg):
        found = list_referrers(image, artifact_type)
    doc = empty_index() | {"manifests": [d.to_dict() for d in found]}
    _write(json.dumps(doc, indent=4) + "\n")
