"""Hosting: what serves a request, above the core.

Opening a database from a URI (``db``), the retry policy and the client
turns (``retry``, ``contention``), how a request's transaction ends
(``transactions``), settings from text (``settings``), a cluster's cold
start (``coldstart``), the site's snapshot, connection and changes
(``snapshot``, ``connection``, ``sitechanges``), background sweeping and
packing (``maintenance``, ``packing``), and the WSGI middleware
(``wsgi``). The hosts of
other frameworks (``zodbsession.pyramid``, ``flask``, ``asgi``,
``beaker``) build on these.
"""
