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
SECRET = ('refuses a secret shorter than 16 bytes (SECURITY.rst:'
          ' secrets)')

# (doctest name, first line of the example's source) -> reason.
NOT_APPLICABLE = {
}


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
            reason = NOT_APPLICABLE.get((name, first_line))
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
