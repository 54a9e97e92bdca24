"""Pyramid's login with the principal index: ``zodbsession.pyramid.remember``.

Call it where ``pyramid.security.remember`` would be called, after
``request.session.regenerate()``: the client's session is filed under the
principal (``zodbsession.principals.remember_principal``), so that
``revoke_sessions(request, principal_id)`` can end it later, and the
security policy's headers are returned as Pyramid's ``remember`` returns
them.
"""
import pyramid.security

from zodbsession.principals import remember_principal


def remember(request, principal_id, **kw):
    """``pyramid.security.remember(request, principal_id, **kw)``, with
    the session filed under ``principal_id``; returns its headers."""
    remember_principal(request, principal_id)
    return pyramid.security.remember(request, principal_id, **kw)
