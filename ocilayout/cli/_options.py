"""The typer declarations of the flags several commands share, and their help texts.

What the flags do lives beside the commands that use them, in modules that never import typer (the
command line's fast path, :mod:`._fast`, runs ``copy`` without it): :mod:`._registry` (the registry flags)
and :mod:`._write` (naming, output and ``--jobs`` of every write). These objects are only read by typer;
they are never mutated.
"""

from __future__ import annotations

import typer

# -- every write (copy, the edit commands) ---------------------------------------------------------------
REF_NAME_HELP = ("How the image is named in an oci:/oci-archive: index.json: tag (containerd/BuildKit: the tag, "
                 "plus io.containerd.image.name with --image-name), full (Jib: the full reference), none "
                 "(ko/rules_oci: unnamed). Default: the destination's name as typed (in place: the names the "
                 "image had).")
IMAGE_NAME_HELP = "The full reference (REGISTRY/REPO[:TAG]) --ref-name tag or full records."

REF_NAME = typer.Option(None, "--ref-name", metavar="tag|full|none", help=REF_NAME_HELP)
IMAGE_NAME = typer.Option(None, "--image-name", metavar="NAME", help=IMAGE_NAME_HELP)
QUIET = typer.Option(False, "--quiet", "-q", help="Print only the digest (and warnings): no progress, no summary.")
DIGESTFILE = typer.Option(None, "--digestfile", metavar="FILE", help="Write the new digest here too.")
JOBS = typer.Option(4, "--jobs", "-j", min=1, max=64, metavar="N", help="Blobs copied in parallel.")

# -- docker:// references: every single-image command; copy and sync have --src-/--dest- forms -----------
TLS_HELP = "Require HTTPS with verified certificates for docker:// (default true; false also allows plain HTTP)."
CREDS_HELP = "USER:PASSWORD for the docker:// registry (never printed)."
AUTHFILE_HELP = "auth.json to read registry credentials from (default: $REGISTRY_AUTH_FILE, then the usual files)."
CERT_DIR_HELP = "Directory of *.crt CAs and *.cert/*.key client certificates for docker:// (default: certs.d)."
CONF_HELP = "registries.conf to use (default: $CONTAINERS_REGISTRIES_CONF, then the user or system file)."

TLS_VERIFY = typer.Option(None, "--tls-verify", metavar="BOOL", help=TLS_HELP)
CREDS = typer.Option(None, "--creds", metavar="USER:PASSWORD", help=CREDS_HELP)
AUTHFILE = typer.Option(None, "--authfile", metavar="FILE", help=AUTHFILE_HELP)
CERT_DIR = typer.Option(None, "--cert-dir", metavar="DIR", help=CERT_DIR_HELP)
REGISTRIES_CONF = typer.Option(None, "--registries-conf", metavar="FILE", help=CONF_HELP)
# ... and the two sides of copy and sync.
SRC_AUTHFILE = typer.Option(None, "--src-authfile", metavar="FILE", help="--authfile for the source only.")
DEST_AUTHFILE = typer.Option(None, "--dest-authfile", metavar="FILE", help="--authfile for the destination only.")
SRC_CREDS = typer.Option(None, "--src-creds", metavar="USER:PASSWORD", help=CREDS_HELP)
DEST_CREDS = typer.Option(None, "--dest-creds", metavar="USER:PASSWORD", help=CREDS_HELP)
SRC_TLS_VERIFY = typer.Option(None, "--src-tls-verify", metavar="BOOL", help=TLS_HELP)
DEST_TLS_VERIFY = typer.Option(None, "--dest-tls-verify", metavar="BOOL", help=TLS_HELP)
SRC_CERT_DIR = typer.Option(None, "--src-cert-dir", metavar="DIR", help=CERT_DIR_HELP)
DEST_CERT_DIR = typer.Option(None, "--dest-cert-dir", metavar="DIR", help=CERT_DIR_HELP)
