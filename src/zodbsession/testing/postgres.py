"""A throwaway PostgreSQL cluster for tests (RelStorage), which a test may
stop and start again to play an outage."""
import contextlib
import os
import subprocess
import tempfile

from zodbsession.testing.processes import START_TIMEOUT
from zodbsession.testing.processes import STOP_TIMEOUT
from zodbsession.testing.processes import free_port


class PostgresCluster:
    """A throwaway PostgreSQL cluster of a test's own, which it may stop
    and start (same port, same data) to play an outage.

    Uses the newest ``/usr/lib/postgresql/*/bin`` (Debian's layout) or
    ``initdb`` on PATH; as root the server runs as the ``postgres`` user,
    since PostgreSQL refuses to run as root. ``unavailable_reason()``
    says why a cluster cannot be made here (None if it can).
    """

    DATABASE = 'zodbsession_test'

    def __init__(self, directory, port=None):
        self.directory = directory
        self.data = os.path.join(directory, 'data')
        self.port = port or free_port()
        self.bin = self.find_bin()
        self.as_owner = (['runuser', '-u', 'postgres', '--']
                         if os.geteuid() == 0 else [])

    @staticmethod
    def find_bin():
        import glob
        import shutil

        def version(path):
            name = os.path.basename(os.path.dirname(path))
            return [int(part) for part in name.split('.') if part.isdigit()]
        for path in sorted(glob.glob('/usr/lib/postgresql/*/bin'),
                           key=version, reverse=True):
            if os.access(os.path.join(path, 'pg_ctl'), os.X_OK):
                return path
        initdb = shutil.which('initdb')
        return os.path.dirname(initdb) if initdb else None

    @classmethod
    def unavailable_reason(cls):
        import pwd
        if cls.find_bin() is None:
            return ('no PostgreSQL server binaries (initdb, pg_ctl) in'
                    ' /usr/lib/postgresql/*/bin or on PATH')
        if os.geteuid() == 0:
            try:
                pwd.getpwnam('postgres')
            except KeyError:
                return ("running as root, but there is no 'postgres' user"
                        ' to run a PostgreSQL cluster as')
        return None

    @property
    def dsn(self):
        return (f'dbname={self.DATABASE} user=postgres host=127.0.0.1'
                f' port={self.port}')

    def uri(self, connect_timeout=5):
        """The zodburi (RelStorage) URI of the test database."""
        return (f'postgres://postgres@127.0.0.1:{self.port}/'
                f'{self.DATABASE}?connect_timeout={connect_timeout}')

    def new_database(self, name, connect_timeout=5):
        """Create an empty database ``name`` in the cluster; returns its
        zodburi (RelStorage) URI."""
        import psycopg2
        connection = psycopg2.connect(self.dsn, connect_timeout=5)
        try:
            connection.autocommit = True
            with connection.cursor() as cursor:
                cursor.execute(f'CREATE DATABASE "{name}"')
        finally:
            connection.close()
        return (f'postgres://postgres@127.0.0.1:{self.port}/{name}'
                f'?connect_timeout={connect_timeout}')

    def _run(self, program, *args, timeout=START_TIMEOUT):
        done = subprocess.run(
            self.as_owner + [os.path.join(self.bin, program), *args],
            cwd=self.directory, stdin=subprocess.DEVNULL,
            capture_output=True, text=True, timeout=timeout)
        if done.returncode:
            log = os.path.join(self.directory, 'server.log')
            tail = ''
            if os.path.exists(log):
                with open(log, errors='replace') as server_log:
                    tail = server_log.read()[-2000:]
            raise RuntimeError(
                f'{program} {" ".join(args)} failed ({done.returncode}):'
                f' {done.stdout}{done.stderr}{tail}')
        return done.stdout

    def create(self):
        """initdb, start, and create the test database."""
        if self.as_owner:
            import shutil
            shutil.chown(self.directory, 'postgres')
        # --no-sync: a throwaway cluster need not wait for the disk here;
        # the server itself runs with PostgreSQL's defaults (fsync on).
        self._run('initdb', '-D', self.data, '-U', 'postgres', '-A', 'trust',
                  '-E', 'UTF8', '--no-locale', '--no-sync')
        self.start()
        self._run('createdb', '-h', '127.0.0.1', '-p', str(self.port),
                  '-U', 'postgres', self.DATABASE)

    def start(self, timeout=START_TIMEOUT):
        """Start the server; returns once it accepts connections."""
        self._run('pg_ctl', '-D', self.data, '-w', '-t', str(timeout),
                  '-l', os.path.join(self.directory, 'server.log'),
                  '-o', f'-c listen_addresses=127.0.0.1 -p {self.port}'
                        f' -c unix_socket_directories={self.directory}',
                  'start', timeout=timeout + STOP_TIMEOUT)

    def stop(self, mode='fast'):
        """Stop the server: ``fast`` (roll back sessions and shut down
        cleanly) or ``immediate`` (no shutdown checkpoint: the next start
        recovers from the WAL, as after a crash)."""
        if os.path.exists(os.path.join(self.data, 'postmaster.pid')):
            self._run('pg_ctl', '-D', self.data, '-m', mode, '-w',
                      '-t', str(STOP_TIMEOUT), 'stop',
                      timeout=2 * STOP_TIMEOUT)

    def check_running(self):
        """Raise, with the server's log, unless it accepts connections."""
        import psycopg2
        try:
            psycopg2.connect(self.dsn, connect_timeout=5).close()
        except psycopg2.OperationalError as exc:
            log = os.path.join(self.directory, 'server.log')
            tail = ''
            if os.path.exists(log):
                with open(log, errors='replace') as server_log:
                    tail = server_log.read()[-3000:]
            running = os.path.exists(os.path.join(self.data, 'postmaster.pid'))
            raise RuntimeError(
                f'the test cluster on port {self.port} does not answer'
                f' (postmaster.pid {"present" if running else "absent"}):'
                f' {exc}\nserver log:\n{tail}') from exc

    def kill(self):
        """SIGKILL the postmaster, when pg_ctl could not stop it."""
        import signal
        try:
            with open(os.path.join(self.data, 'postmaster.pid')) as pid_file:
                os.kill(int(pid_file.readline()), signal.SIGKILL)
        except (OSError, ValueError):
            pass


@contextlib.contextmanager
def postgres_cluster():
    """A running ``PostgresCluster``; stopped and removed on exit.

    Its directory is a new one in the system's temporary directory: the
    ``postgres`` user must reach it, and pytest's own are private to
    the user running the tests.
    """
    import shutil
    directory = tempfile.mkdtemp(prefix='zodbsession-pg-')
    cluster = PostgresCluster(directory)
    try:
        cluster.create()
        cluster.check_running()
        yield cluster
    finally:
        try:
            cluster.stop('immediate')
        except Exception:
            cluster.kill()
        shutil.rmtree(directory, ignore_errors=True)
