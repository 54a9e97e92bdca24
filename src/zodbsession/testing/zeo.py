"""A real ZEO server for tests, in a process of its own, which a test may
stop and start again to play an outage."""
import contextlib
import os
import subprocess
import tempfile

from zodbsession.testing.processes import START_TIMEOUT
from zodbsession.testing.processes import child_command
from zodbsession.testing.processes import child_environment
from zodbsession.testing.processes import free_port
from zodbsession.testing.processes import stop_process
from zodbsession.testing.processes import wait_for_port


class ZEOServer:
    """A ZEO server on a FileStorage that a test can stop and start again
    (same port, same file), to play an outage."""

    def __init__(self, directory, port=None):
        self.directory = directory
        self.port = port or free_port()
        self.log_path = os.path.join(directory, 'zeo.log')
        self.process = None

    @property
    def uri(self):
        return f'zeo://127.0.0.1:{self.port}'

    def start(self, timeout=START_TIMEOUT):
        """Start the server; returns once it accepts connections."""
        with open(self.log_path, 'ab') as log:
            self.process = subprocess.Popen(
                child_command('-m', 'ZEO.runzeo',
                              '-a', f'127.0.0.1:{self.port}',
                              '-f', os.path.join(self.directory, 'zeo.fs')),
                stdin=subprocess.DEVNULL, stdout=log,
                stderr=subprocess.STDOUT, env=child_environment())
        try:
            wait_for_port(self.port, self.process, self.log_path, timeout)
        except BaseException:
            self.stop()
            raise

    def stop(self):
        """Stop the server (SIGTERM, then SIGKILL if it lingers)."""
        if self.process is not None:
            stop_process(self.process)
            self.process = None


@contextlib.contextmanager
def zeo_server(directory=None, timeout=START_TIMEOUT):
    """Run a ZEO server on a FileStorage; yields its ``zeo://`` URI."""
    own_directory = directory is None
    if own_directory:
        directory = tempfile.mkdtemp(prefix='zodbsession-zeo-')
    server = ZEOServer(directory)
    try:
        server.start(timeout)
        yield server.uri
    finally:
        server.stop()
        if own_directory:
            import shutil
            shutil.rmtree(directory, ignore_errors=True)


def count_round_trips(db):
    """A list that grows by one with each round trip ``db``'s ZEO client
    makes to order other processes' commits before a request (its
    ``ping``, zodbsession's invalidation barrier). Call it before the
    database serves its first request: the barrier is looked up once."""
    trips = []
    ping = db.storage.ping

    def counted_ping():
        trips.append(1)
        return ping()
    db.storage.ping = counted_ping
    return trips
