"""Registry support for ``docker://``: options (light), credentials and tokens (:mod:`.auth`), HTTP (:mod:`.client`).

Only :mod:`.options` may be imported by code that runs without a ``docker://`` reference (the CLI sets
options through it); :mod:`.client` and :mod:`.auth` load urllib3 and are imported by
:mod:`ocilayout.transports.registry` alone.
"""
