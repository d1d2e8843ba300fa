"""The ward station: ``cryprint serve``, a local web page and an HTTP API over one ward's
gallery, for the nurses and clinicians who ask "whose cry is this?" without a terminal.

- :mod:`~cryprint.server.settings`: what the station serves and how (checked before it starts).
- :mod:`~cryprint.server.app`: the FastAPI application, its security headers and error pages.
- :mod:`~cryprint.server.security`: the access token (cookie or bearer) and same-origin checks.
- :mod:`~cryprint.server.work`: a bounded pool for the requests that embed audio.
- :mod:`~cryprint.server.pages` (HTML) and :mod:`~cryprint.server.api` (JSON, OpenAPI): both call
  the library's own enrol, identify and verify — the same as the CLI.
"""
