"""Shared fixtures: a clean component registry and a FileStorage database.

Everything else tests need lives in ``zodbsession.testing``, where users
of the package can reach it too.
"""
import pytest
import zope.component

from zodbsession import testing


@pytest.fixture
def registry():
    """The global registry, reset, with zodbsession's adapters."""
    testing.setUp()
    yield zope.component.getGlobalSiteManager()
    testing.tearDown()


@pytest.fixture
def sessions():
    """(client id manager, unnamed container), registered globally."""
    yield testing.setUpSessions()
    testing.tearDown()


@pytest.fixture
def db(tmp_path):
    """A ZODB.DB on a FileStorage in this test's temporary directory."""
    with testing.filestorage_db(str(tmp_path)) as database:
        yield database


# -- the peers' own suites (tests/peer_suites.py) --------------------------
#
# A test of a peer's suite carries ``peer_suite(name, implementation)``;
# one marked ``peer_not_applicable(reason)`` is deselected (not skipped).
# Each suite's counts close the run, one line per implementation.

_PEER_COUNTS = {}       # (suite, implementation) -> {outcome: n}
_PEER_NOT_APPLICABLE = []   # (nodeid, reason)
_PEER_COUNTED = set()   # node ids already counted


def pytest_configure(config):
    config.addinivalue_line(
        'markers', 'peer_suite(name, implementation): a test of a peer'
        "'s own suite, run against zodbsession or the original")
    config.addinivalue_line(
        'markers', 'peer_not_applicable(reason): deselected, with its'
        ' reason, from a peer suite')


def _peer_count(key, outcome):
    counts = _PEER_COUNTS.setdefault(
        key, {'passed': 0, 'failed': 0, 'not applicable': 0})
    counts[outcome] += 1


@pytest.hookimpl(trylast=True)     # after -k and -m have deselected
def pytest_collection_modifyitems(config, items):
    kept, deselected = [], []
    for item in items:
        suite = item.get_closest_marker('peer_suite')
        if suite is not None:
            item.user_properties.append(('peer_suite', tuple(suite.args)))
        mark = item.get_closest_marker('peer_not_applicable')
        if mark is None:
            kept.append(item)
            continue
        deselected.append(item)
        _peer_count(tuple(suite.args), 'not applicable')
        _PEER_NOT_APPLICABLE.append((item.nodeid, mark.args[0]))
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = kept


def pytest_runtest_logreport(report):
    key = dict(report.user_properties).get('peer_suite')
    if key is None or report.nodeid in _PEER_COUNTED:
        return
    if report.failed:
        _PEER_COUNTED.add(report.nodeid)
        _peer_count(key, 'failed')
    elif report.when == 'call':
        _PEER_COUNTED.add(report.nodeid)
        _peer_count(key, 'passed' if report.passed else 'failed')


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    if not _PEER_COUNTS:
        return
    terminalreporter.section('peer suites')
    if config.getoption('verbose') > 0:
        for nodeid, reason in _PEER_NOT_APPLICABLE:
            terminalreporter.write_line(
                f'not applicable: {nodeid}: {reason}')
    for (suite, implementation), counts in sorted(_PEER_COUNTS.items()):
        terminalreporter.write_line(
            f'{suite} suite ({implementation}): {counts["passed"]} passed,'
            f' {counts["failed"]} failed,'
            f' {counts["not applicable"]} not applicable')
