"""zope.session 6.0's own tests, run against zodbsession and against
zope.session itself (see peer_suites.py for how).

Every example of its doctests and every test of its tests.py is one test
here, with the id ``[implementation-doctest-index]``. The examples listed
in NOT_APPLICABLE are deselected for zodbsession, with their reason; run
against zope.session, every test runs and passes.
"""
import pytest

import peer_suites

SUITE_NAME = 'zope.session'

# Only three reasons make a test not applicable (issue 15).
PRIVATE = 'reads a private attribute of zope.session'
SECRET = ('refuses a secret shorter than 16 bytes (docs/security.rst:'
          ' secrets)')

SECURITY_DEFAULT = ('expects a cookie without HttpOnly and SameSite=Lax,'
                    ' which zodbsession sets by default'
                    ' (docs/security.rst: cookies)')
LEGACY = ('emulates a legacy pickled SessionData through zope.session\'s'
          ' private _lastAccessTime')

# (doctest name, example index) -> (first line of its source, reason).
# The source is checked, so that another release of the peer fails
# loudly here instead of deselecting the wrong example.
_SESSION = 'zope.session.session.'
_HTTP = 'zope.session.http.'
NOT_APPLICABLE = {
    (_SESSION + 'PersistentSessionDataContainer.__getitem__', index): (
        'sdc._v_last_sweep = sdc._v_last_sweep - 4',
        PRIVATE + ' (_v_last_sweep)')
    for index in (5, 10, 44)
}
NOT_APPLICABLE.update({
    (_SESSION + 'SessionData', index): (source, LEGACY)
    for index, source in (
        (4, 'del legacy_session._lastAccessTime'),
        (5, 'legacy_session.getLastAccessTime()'),
        (6, "legacy_session.__dict__['lastAccessTime'] = 42"),
        (7, 'legacy_session.getLastAccessTime()'),
        (8, 'legacy_session.setLastAccessTime(13)'),
        (9, 'legacy_session._lastAccessTime.value'),
    )
})
NOT_APPLICABLE.update({
    (_HTTP + 'CookieClientIdManager.__init__', index): (source, SECRET)
    for index, source in (
        (5, "manager3 = CookieClientIdManager(secret='some_secret')"),
        (6, 'manager3.secret'),
        (7, "manager4 = CookieClientIdManager('service_cookie',"
            " 'some_secret')"),
        (8, 'manager4.namespace'),
        (9, 'manager4.secret'),
    )
})
NOT_APPLICABLE[_HTTP + 'CookieClientIdManager.setRequestId', 40] = (
    'pprint(request.response.getCookie(bim.namespace))', SECURITY_DEFAULT)


def _suite():
    try:
        return peer_suites.ZopeSessionSuite()
    except peer_suites.PeerUnavailable as exc:
        # Fails the collection of this module: loud, never skipped.
        raise RuntimeError(str(exc)) from None


SUITE = _suite()


def _cases():
    for implementation in peer_suites.IMPLEMENTATIONS:
        for name, index, first_line in SUITE.example_ids():
            marks = [pytest.mark.peer_suite(SUITE_NAME, implementation)]
            source, reason = NOT_APPLICABLE.get((name, index), (None, None))
            assert source in (None, first_line), (
                f'{name}[{index}] is {first_line!r}, not {source!r}: update'
                ' NOT_APPLICABLE for this release of zope.session')
            if reason and implementation == peer_suites.ZODBSESSION:
                marks.append(pytest.mark.peer_not_applicable(reason))
            yield pytest.param(implementation, name, index,
                               id=f'{implementation}-{name}-{index}',
                               marks=marks)


def _unit_cases():
    for implementation in peer_suites.IMPLEMENTATIONS:
        for name in SUITE.unit_test_names():
            yield pytest.param(
                implementation, name, id=f'{implementation}-tests.{name}',
                marks=[pytest.mark.peer_suite(SUITE_NAME, implementation)])


@pytest.fixture(scope='module', autouse=True)
def _finish_last_doctest():
    yield
    SUITE.finish()


@pytest.mark.parametrize('implementation,name,index', list(_cases()))
def test_example(implementation, name, index):
    report = SUITE.run_example(implementation, name, index)
    if report:
        pytest.fail(report, pytrace=False)


@pytest.mark.parametrize('implementation,name', list(_unit_cases()))
def test_unit(implementation, name):
    report = SUITE.run_unit_test(implementation, name)
    if report:
        pytest.fail(report, pytrace=False)


def test_the_redirect_gives_zodbsession_names_and_restores_them():
    import zope.session.session

    import zodbsession
    original = zope.session.session.Session
    with SUITE.redirect.active():
        from zope.session.http import CookieClientIdManager
        from zope.session.session import Session
        import zope.session.session as redirected
        assert Session is zodbsession.Session
        assert CookieClientIdManager is zodbsession.CookieClientIdManager
        assert redirected.PersistentSessionDataContainer is (
            zodbsession.PersistentSessionDataContainer)
    import zope.session.session as restored
    assert restored.Session is original is not zodbsession.Session
