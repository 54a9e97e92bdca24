"""Where one request's session machinery waits: keys of its WSGI environ.

Hosts (the middleware, the Pyramid integration) put these in the environ
and the core reads them. They live below both layers, so that the core
never imports its hosts.
"""

# Set by whoever hosts the request: a callable returning the component
# registry that serves it, loaded on first use ...
REGISTRY_KEY = 'zodbsession.registry'
# ... the hosting's per-request site (zodbsession.site.ConnectionSite) ...
SITE_KEY = 'zodbsession.site'
# ... and the transaction manager of the request's transaction.
TRANSACTION_MANAGER_KEY = 'zodbsession.transaction_manager'

# Kept by the core and the request adapters:
# the request's ISession, so that every ISession(request) shares it;
SESSION_KEY = 'zodbsession.session'
# the cookies and headers its response must carry (a PendingResponse).
PENDING_KEY = 'zodbsession.response'
