"""Pyramid 2.1's own session tests, run against zodbsession's Pyramid
session and against Pyramid's (see peer_suites.py).

From Pyramid's sdist: tests/test_session.py's tests of the ISession API
(SharedCookieSessionTests, as TestSignedCookieSession runs them),
tests/test_testing.py's TestDummySession (Pyramid's own ISession
contract) and tests/test_csrf.py's SessionCSRFStoragePolicy and
check_csrf_token tests. Against zodbsession, only each test's
``_makeOne`` (or the request it builds) is overridden: it returns a
``zodbsession.pyramid`` session bound to that request, on a Configurator
with ``config.include('zodbsession.pyramid')`` and a FileStorage.
"""
import unittest

import pytest
import transaction

import peer_suites

SUITE_NAME = 'Pyramid'

SERIALIZER = ("tests the cookie factory's serializer (the test builds the"
              ' cookie with _serialize)')
FACTORY_ARGUMENT = ("passes an argument of Pyramid's cookie session"
                    ' factory ({}) to _makeOne')
SET_COOKIE = "tests the cookie factory's _set_cookie"
DIRTY = "reads the cookie factory's _dirty"
RESPONSE_CALLBACK = ("calls the cookie factory's _set_cookie (its one"
                     ' response callback) by hand, outside any request and'
                     ' transaction')

# (module, class, test) -> reason, for zodbsession.
NOT_APPLICABLE = {
    ('test_session', 'SharedCookieSessionTests', name): reason
    for name, reason in (
        ('test_ctor_with_cookie_still_valid', SERIALIZER),
        ('test_ctor_with_cookie_expired', SERIALIZER),
        ('test_ctor_with_bad_cookie_not_tuple', SERIALIZER),
        ('test_timeout', SERIALIZER),
        ('test_timeout_never', SERIALIZER),
        ('test_timeout_str', SERIALIZER),
        ('test_timeout_invalid', FACTORY_ARGUMENT.format('timeout')),
        ('test_changed', DIRTY),
        ('test_reissue_triggered', SERIALIZER),
        ('test__set_cookie_on_exception', SET_COOKIE),
        ('test__set_cookie_on_exception_no_request_exception', SET_COOKIE),
        ('test__set_cookie_cookieval_too_long', SET_COOKIE),
        ('test__set_cookie_real_webob_response', SET_COOKIE),
        ('test__set_cookie_options', SET_COOKIE),
        ('test_no_set_cookie_with_exception',
         FACTORY_ARGUMENT.format('set_on_exception')),
        ('test_set_cookie_with_exception', RESPONSE_CALLBACK),
        ('test_cookie_is_set', RESPONSE_CALLBACK),
    )
}

# (module, class the original runs, class whose tests are taken)
CLASSES = (
    ('test_session', 'TestSignedCookieSession', 'SharedCookieSessionTests'),
    ('test_testing', 'TestDummySession', 'TestDummySession'),
    ('test_csrf', 'TestSessionCSRFStoragePolicy',
     'TestSessionCSRFStoragePolicy'),
    ('test_csrf', 'Test_check_csrf_token', 'Test_check_csrf_token'),
    ('test_csrf', 'Test_check_csrf_token_without_defaults_configured',
     'Test_check_csrf_token_without_defaults_configured'),
)


def _modules():
    try:
        return {name: peer_suites.load_pyramid_test_module(name)
                for name in peer_suites.PYRAMID_MODULES}
    except peer_suites.PeerUnavailable as exc:
        raise RuntimeError(str(exc)) from None


MODULES = _modules()


def _test_names(module, class_name):
    cls = getattr(module, class_name)
    return sorted(name for name in dir(cls) if name.startswith('test'))


def _cases():
    for implementation in peer_suites.IMPLEMENTATIONS:
        for module_name, runner_class, source_class in CLASSES:
            module = MODULES[module_name]
            for name in _test_names(module, source_class):
                marks = [pytest.mark.peer_suite(SUITE_NAME, implementation)]
                reason = NOT_APPLICABLE.get((module_name, source_class, name))
                if reason and implementation == peer_suites.ZODBSESSION:
                    marks.append(pytest.mark.peer_not_applicable(reason))
                yield pytest.param(
                    implementation, module_name, runner_class, source_class,
                    name,
                    id=f'{implementation}-{module_name}.{source_class}.{name}',
                    marks=marks)


# -- the overrides, zodbsession's sessions in place of Pyramid's -----------

def _zodbsession_class(module_name, class_name):
    """The test class with its _makeOne (or the request it builds)
    returning zodbsession's session."""
    module = peer_suites.load_pyramid_test_module(module_name)
    base = getattr(module, class_name)
    host = {}

    def start(case):
        host['host'] = peer_suites.PyramidHost(
            getattr(case, 'config', None))
        case.addCleanup(lambda: host.pop('host').close())
        return host['host']

    if module_name == 'test_session':
        class Case(base, unittest.TestCase):    # base: the shared tests
            def setUp(self):
                start(self)

            def _makeOne(self, request, **kw):
                assert not kw, kw     # factory arguments: not applicable
                return host['host'].session(request)
        return Case

    if class_name == 'TestDummySession':
        class Case(base):
            def setUp(self):
                start(self)

            def _makeOne(self):
                return host['host'].request().session
        return Case

    if class_name == 'TestSessionCSRFStoragePolicy':
        def dummy_request(registry=None, session=None):
            request = host['host'].request()
            request.session.update(session or {})
            return request
        module.DummyRequest = dummy_request

        class Case(base):
            def setUp(self):
                start(self)
        return Case

    # check_csrf_token: the requests of pyramid.testing the tests build.
    import types

    from pyramid import testing
    stand_in = types.ModuleType('pyramid.testing')
    stand_in.__dict__.update(vars(testing))
    stand_in.DummyRequest = lambda **kw: host['host'].request(**kw)
    module.testing = stand_in

    class Case(base):
        def setUp(self):
            super().setUp()
            start(self)
    return Case


def _run(implementation, module_name, runner_class, source_class, name):
    if implementation == peer_suites.ZODBSESSION:
        cls = _zodbsession_class(module_name, source_class)
    else:
        cls = getattr(peer_suites.load_pyramid_test_module(module_name),
                      runner_class)
    result = unittest.TestResult()
    try:
        cls(name).run(result)
    finally:
        # Some of these classes call testing.setUp() and never tear down
        # (it hooks zope.component's site manager): leave nothing behind.
        from pyramid import testing
        testing.tearDown()
        transaction.abort()
    problems = result.errors + result.failures
    if problems:
        pytest.fail('\n'.join(text for _test, text in problems),
                    pytrace=False)
    assert result.testsRun == 1 and not result.skipped, result.skipped


@pytest.mark.parametrize(
    'implementation,module_name,runner_class,source_class,name',
    list(_cases()))
def test_pyramid(implementation, module_name, runner_class, source_class,
                 name):
    _run(implementation, module_name, runner_class, source_class, name)
