"""Operating a session store: metrics for Prometheus and an admin page.

Both are WSGI applications that a deployment mounts where it likes (they
need no SessionMiddleware; each reads the database in a transaction of
its own):

- ``metrics_app(db, token=None)``: the figures of ``zodbsession.stats``
  in the Prometheus text format (needs the ``metrics`` extra,
  prometheus_client). With a token, a scrape must send
  ``Authorization: Bearer TOKEN``.
- ``admin_app(db, token=...)``: a page with the same figures, charts of
  sessions over time and of the live time slices, and buttons to sweep
  and to pack. There is no default token: without one it will not start.

For Pyramid: ``config.include('zodbsession.admin.pyramid')`` (see there).
"""
from zodbsession.admin.auth import TokenError
from zodbsession.admin.metrics import metrics_app
from zodbsession.admin.page import admin_app

__all__ = ['admin_app', 'metrics_app', 'TokenError']
