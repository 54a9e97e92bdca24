"""Where one request's session machinery waits: keys of its WSGI environ.

They live below the core and its hosts, so that the core never imports
its hosts.
"""

# The request's context (zodbsession.context.RequestContext): everything
# the request resolved, put there by its host or made on first use.
CONTEXT_KEY = 'zodbsession.context'

# What the WSGI middleware offers the application (documented keys):
# the request's ISession ...
SESSION_KEY = 'zodbsession.session'
# ... a request that ISession(...) and IClientId(...) adapt ...
REQUEST_KEY = 'zodbsession.request'
# ... and which attempt this is (0 first; a conflict runs it again).
ATTEMPT_KEY = 'zodbsession.attempt'
