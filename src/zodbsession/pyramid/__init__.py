"""Pyramid integration: ``config.include('zodbsession.pyramid')``.

``request.session`` is then a transactional ZODB session (Pyramid's
ISession, plus ``regenerate()``), and ``ISession(request)[pkg_id]`` works
in views as it does everywhere. The factory comes from the
``zodbsession.*`` settings unless the application sets its own with
``config.set_session_factory(zodbsession.pyramid.session_factory(...))``.

Settings (all optional)::

    zodbsession.db_uri     = file://var/sessions.fs   (zodburi URI)
    zodbsession.pkg_id     = pyramid.session
    zodbsession.retries    = none     (most re-runs of a request after a
                                       conflict; none: only the budget)
    zodbsession.retry_timeout = 10    (seconds a request may keep retrying)
    zodbsession.pack_interval = 86400 (seconds between background packs of
                                       the storage; 0: never)
    zodbsession.timeout    = 3600     (seconds of inactivity; 0: never)
    zodbsession.resolution = 600      (seconds; last access written at most
                                       once per resolution)
    zodbsession.namespace  = zodbsession   (cookie name)
    zodbsession.secret     = (generated and kept in the database; list
                              several, the first signs)
    zodbsession.cookieLifetime, .secure, .httpOnly, .sameSite, .path,
    .domain, .postOnly, .thirdparty   (the client id cookie)

Transactions: with pyramid_tm active, the session commits or aborts with
the request's transaction, as pyramid_tm decides; set
``tm.commit_veto = pyramid_tm.default_commit_veto``, or pyramid_tm aborts
whenever the view raised, a ``raise HTTPFound(...)`` after
``request.session.flash(...)`` included. Without pyramid_tm, zodbsession's
tween begins the transaction and ends it by that veto's rule: it commits
when the response (an exception view's too) is 2xx or 3xx and aborts on
4xx and 5xx (a response's ``X-Tm`` header, when present, decides:
``commit`` commits, any other value aborts); it also aborts on an error
no exception view answered, on a conflict, and when the transaction is
doomed. Conflicts are retried by pyramid_retry when the application
includes it (its ``retry.attempts``), otherwise by zodbsession's execution
policy; either way one client's contending requests take turns in the
process, and a conflict that outlasts the retries is answered with a
503.
"""
import transaction.interfaces
from pyramid.interfaces import IExecutionPolicy
from pyramid.interfaces import ISessionFactory
from pyramid.tweens import EXCVIEW
from pyramid.tweens import INGRESS

from zodbsession.pyramid.factory import HOSTED_MARK
from zodbsession.pyramid.factory import SessionFactory
from zodbsession.pyramid.factory import session_factory
from zodbsession.pyramid.factory import session_factory_from_settings
from zodbsession.pyramid.hosting import manage_transaction
from zodbsession.pyramid.hosting import ATTEMPT_KEY
from zodbsession.pyramid.hosting import answering_unavailable
from zodbsession.pyramid.hosting import prepare_request
from zodbsession.pyramid.hosting import retrying_policy
from zodbsession.pyramid.principals import remember
from zodbsession.pyramid.session import PyramidSession
from zodbsession.procstats import counters as process_counters
from zodbsession.adaptation.registration import register_adapters

__all__ = ['includeme', 'session_factory', 'SessionFactory',
           'PyramidSession', 'session_tween_factory', 'remember']

# After set_session_factory and set_execution_policy actions (order 0).
_COMPLETE_ORDER = 10


def includeme(config):
    # ISession(request) finds its adapters in the global registry, or in
    # Pyramid's when the application calls config.hook_zca().
    register_adapters()
    register_adapters(config.registry)
    _mark_transient_errors_retryable()
    config.add_tween('zodbsession.pyramid.session_tween_factory',
                     over=EXCVIEW,
                     under=('pyramid_tm.tm_tween_factory', INGRESS))
    config.action(None, _complete, args=(config.registry,),
                  order=_COMPLETE_ORDER)


def _complete(registry):
    factory = registry.queryUtility(ISessionFactory)
    if factory is None:
        factory = session_factory_from_settings(registry.settings)
        registry.registerUtility(factory, ISessionFactory)
    if not isinstance(factory, SessionFactory):
        return
    policy = registry.queryUtility(IExecutionPolicy)
    if policy is None:
        registry.registerUtility(
            retrying_policy(factory.retry_policy, factory.db),
            IExecutionPolicy)
    else:
        registry.registerUtility(answering_unavailable(policy),
                                 IExecutionPolicy)


def _mark_transient_errors_retryable():
    try:
        from pyramid_retry import mark_error_retryable
    except ImportError:
        return
    mark_error_retryable(transaction.interfaces.TransientError)


def session_tween_factory(handler, registry):
    """Hosts each request's sessions; manages the transaction unless
    pyramid_tm does."""
    factory = registry.queryUtility(ISessionFactory)
    if not isinstance(factory, SessionFactory):
        return handler
    registry[HOSTED_MARK] = True

    def session_tween(request):
        process_counters.count_request()
        hosting = prepare_request(request, factory.db)
        environ = request.environ
        if environ.get('tm.active'):
            if ATTEMPT_KEY not in environ:
                # Another policy retries (pyramid_retry): take turns here,
                # until the request finishes after pyramid_tm's commit.
                hosting.take_turn(environ.get('retry.attempt', 0) > 0,
                                  factory.db)
            return handler(request)
        return manage_transaction(handler, request, hosting)

    return session_tween
