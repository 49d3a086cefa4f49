"""Registry support for ``docker://``: options (light), credentials and tokens (:mod:`.auth`), HTTP (:mod:`.client`).

Only :mod:`.options` may be imported by code that runs without a ``docker://`` reference (the CLI sets
options through it). :mod:`.client` loads urllib3 and is imported by :mod:`ocilayout.transports.registry`
and by :mod:`.login` (which checks credentials before ``ocilayout login`` records them).
:mod:`.credentials` (auth files, ``docker-credential-*`` helpers) and :mod:`.auth` use the standard library
only; the ``login``/``logout`` commands import them without any network code.
"""
