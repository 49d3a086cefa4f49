"""``referrers``: list what refers to an image through its ``subject`` (OCI 1.1)."""

from __future__ import annotations

import typer

from . import _options as _o
from ._app import app
from ._registry import registry_options, using
from .images import _write


@app.command()
def referrers(
    image: str = typer.Argument(..., metavar="IMAGE-NAME", help="docker://HOST/REPO[:TAG|@DIGEST]"),
    artifact_type: str | None = typer.Option(None, "--artifact-type", metavar="TYPE",
                                             help="Only referrers of this artifactType."),
    tls_verify: str | None = _o.TLS_VERIFY,
    creds: str | None = _o.CREDS,
    authfile: str | None = _o.AUTHFILE,
    cert_dir: str | None = _o.CERT_DIR,
    registries_conf: str | None = _o.REGISTRIES_CONF,
) -> None:
    """List the manifests whose subject is the image (signatures, SBOMs, attestations) as an OCI image index:
    the registry's referrers API, else its sha256-<hex> fallback tag."""
    import json

    from ..referrers import empty_index, list_referrers

    reg = registry_options(tls_verify, creds, authfile, cert_dir=cert_dir, registries_conf=registries_conf)
    with using(reg):
        found = list_referrers(image, artifact_type)
    doc = empty_index() | {"manifests": [d.to_dict() for d in found]}
    _write(json.dumps(doc, indent=4) + "\n")
