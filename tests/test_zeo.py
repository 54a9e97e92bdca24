"""Two worker processes share sessions through a real ZEO server.

Each worker is ``SessionMiddleware`` over ``zeo://...`` served by waitress
in a process of its own (``zodbsession.testing_servers``); the test is
the browser, sending one client's cookie to either worker.
"""
import pytest

from zodbsession.testing_servers import check_concurrent_increments
from zodbsession.testing_servers import check_shared_sessions
from zodbsession.testing_servers import session_worker
from zodbsession.testing_servers import zeo_server

pytest.importorskip('ZEO')

INCREMENTS = 25            # per thread; two threads per worker


@pytest.fixture(scope='module')
def workers(tmp_path_factory):
    directory = str(tmp_path_factory.mktemp('zeo'))
    with zeo_server(directory) as uri, \
            session_worker(uri, directory) as first, \
            session_worker(uri, directory) as second:
        yield first, second


def test_clients_are_shared_between_processes(workers):
    check_shared_sessions(*workers)


def test_concurrent_increments_across_processes(workers, record_property):
    retries = check_concurrent_increments(*workers, INCREMENTS)
    record_property('retries', retries)
    print(f'ZEO: {4 * INCREMENTS} increments from two processes needed'
          f' {retries} retries')
