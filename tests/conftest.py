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
