"""The ``zodbsession`` command, run for real in a subprocess."""
import os
import socket
import subprocess
import sys
import time

import pytest
import ZODB
import ZODB.FileStorage

from zodbsession import SessionData
from zodbsession import SessionPkgData
from zodbsession import clock
from zodbsession.demo.app import ensure_cart_container
from zodbsession.site import ensure_site
from zodbsession.site import site_of
from zodbsession.testing.processes import child_command
from zodbsession.testing.processes import child_environment

SECRET = 'cli-test-secret-that-must-never-be-printed'
COMMAND_TIMEOUT = 60


def run(*args, cwd):
    """Run ``zodbsession ARGS`` in ``cwd``; the CompletedProcess."""
    return subprocess.run(
        child_command('-m', 'zodbsession', *args), cwd=cwd,
        env=child_environment(), capture_output=True, text=True,
        timeout=COMMAND_TIMEOUT)


def one_error_line(result):
    """The single stderr line of a failed command."""
    assert result.returncode != 0, result
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert 'Traceback' not in result.stderr
    return lines[0]


def closed_port():
    """A local port nobody listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def file_uri(path):
    return f'file://{path}'


def make_session_db(path, live=2, expired=0, cart=0):
    """A FileStorage with a session site (as ``serve`` leaves it) and
    sessions: ``live`` and ``expired`` ones in the unnamed container,
    ``cart`` ones in the demo's cart container."""
    db = ZODB.DB(ZODB.FileStorage.FileStorage(str(path)))
    try:
        ensure_site(db, secret=SECRET)
        ensure_cart_container(db)

        def add_sessions(count, pkg_id, prefix):
            with db.transaction() as connection:
                containers = site_of(connection).containers()
                container = containers.get(pkg_id, containers[''])
                for number in range(count):
                    data = SessionData()
                    data[pkg_id] = SessionPkgData()
                    data[pkg_id]['n'] = number
                    container[f'{prefix}-{number}'] = data

        add_sessions(live, 'demo.counter', 'live')
        add_sessions(cart, 'demo.cart', 'cart')
        # Written last: a new slice would sweep them implicitly.
        long_ago = clock.now() - 3 * 24 * 3600
        with clock.use_clock(clock.ManualClock(long_ago)):
            add_sessions(expired, 'demo.counter', 'old')
    finally:
        db.close()


def container_counts(path):
    db = ZODB.DB(ZODB.FileStorage.FileStorage(str(path), read_only=True))
    try:
        with db.transaction() as connection:
            return {name: container.count() for name, container
                    in site_of(connection).containers().items()}
    finally:
        db.close()


# -- help and arguments -----------------------------------------------------

def test_help_names_every_command(tmp_path):
    result = run('--help', cwd=tmp_path)
    assert result.returncode == 0
    assert result.stderr == ''
    for command in ('serve', 'stats', 'sweep', 'pack'):
        assert command in result.stdout
    assert 'file://var/sessions.fs' in result.stdout


def test_console_script_and_module_entry_points(tmp_path):
    script = os.path.join(os.path.dirname(sys.executable), 'zodbsession')
    if not os.path.exists(script):
        pytest.skip('the package is not installed in this environment')
    installed = subprocess.run([script, '--help'], capture_output=True,
                               text=True, timeout=COMMAND_TIMEOUT)
    assert installed.returncode == 0
    module = subprocess.run(
        child_command('-m', 'zodbsession.cli', '--help'), cwd=tmp_path,
        env=child_environment(), capture_output=True,
        text=True, timeout=COMMAND_TIMEOUT)
    assert module.returncode == 0
    assert installed.stdout == module.stdout == run(
        '--help', cwd=tmp_path).stdout


@pytest.mark.parametrize('command, options', [
    ('serve', ['--db', '--host', '--port', '--threads']),
    ('stats', ['--db']),
    ('sweep', ['--db']),
    ('pack', ['--db', '--days']),
])
def test_each_command_has_help(tmp_path, command, options):
    result = run(command, '--help', cwd=tmp_path)
    assert result.returncode == 0
    assert result.stdout.startswith(f'usage: zodbsession {command}')
    for option in options:
        assert option in result.stdout
    assert not (tmp_path / 'var').exists()     # help opens no database


@pytest.mark.parametrize('args, named', [
    ([], 'COMMAND'),
    (['frobnicate'], 'frobnicate'),
    (['serve', '--port', 'eighty'], '--port'),
    (['serve', '--port', '70000'], '--port'),
    (['serve', '--threads', '0'], '--threads'),
    (['pack', '--days', '-1'], '--days'),
    # Before 1900: the pack failed with "year must be greater than 1900".
    (['pack', '--days', '100000'], '--days'),
    (['stats', '--colour'], '--colour'),
])
def test_bad_arguments_are_one_line(tmp_path, args, named):
    result = run(*args, cwd=tmp_path)
    assert result.returncode == 2
    line = one_error_line(result)
    assert line.startswith('zodbsession')
    assert named in line
    assert not (tmp_path / 'var').exists()


# -- stats, sweep, pack on a FileStorage --------------------------------------

def test_stats_shows_containers_and_cookie_settings(tmp_path):
    path = tmp_path / 's.fs'
    make_session_db(path, live=3, cart=2)
    result = run('stats', '--db', file_uri(path), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert ('(unnamed): PersistentSessionDataContainer, timeout=3600s,'
            ' resolution=600s, sessions=3') in out
    assert ('demo.cart: PersistentSessionDataContainer, timeout=604800s,'
            ' resolution=3600s, sessions=2') in out
    assert "namespace: 'zodbsession'" in out
    assert "sameSite: 'Lax'" in out
    assert 'secrets: 1 (not shown)' in out
    assert SECRET not in out and SECRET not in result.stderr


def test_stats_writes_nothing(tmp_path):
    path = tmp_path / 's.fs'
    make_session_db(path)
    size = path.stat().st_size
    assert run('stats', '--db', file_uri(path), cwd=tmp_path).returncode == 0
    assert path.stat().st_size == size


def test_default_database_is_var_sessions_fs_in_cwd(tmp_path):
    (tmp_path / 'var').mkdir()
    make_session_db(tmp_path / 'var' / 'sessions.fs', live=1)
    result = run('stats', cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert 'database: file://var/sessions.fs' in result.stdout
    assert 'sessions=1' in result.stdout


def files_under(directory):
    """{relative path: bytes} of every file under ``directory``."""
    found = {}
    for root, _, names in os.walk(directory):
        for name in names:
            path = os.path.join(root, name)
            with open(path, 'rb') as content:
                found[os.path.relpath(path, directory)] = content.read()
    return found


MAINTENANCE = ['stats', 'sweep', 'pack']


@pytest.mark.parametrize('command', MAINTENANCE)
def test_a_database_that_does_not_exist_is_not_created(tmp_path, command):
    uri = file_uri(tmp_path / 'no' / 'such' / 'dir' / 'x.fs')
    result = run(command, '--db', uri, cwd=tmp_path)
    assert result.returncode == 1
    line = one_error_line(result)
    assert line.startswith(f'zodbsession {command}: ')
    assert uri in line and 'no file' in line
    assert 'zodbsession serve' in line
    assert result.stdout == ''
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize('command', MAINTENANCE)
def test_the_default_database_is_not_created_either(tmp_path, command):
    line = one_error_line(run(command, cwd=tmp_path))
    assert 'file://var/sessions.fs' in line
    assert list(tmp_path.iterdir()) == []


def test_only_serve_creates_a_database(tmp_path):
    from zodbsession.testing.processes import START_TIMEOUT
    process = subprocess.Popen(
        child_command('-m', 'zodbsession', 'serve', '--port', '0'),
        cwd=tmp_path, env=child_environment(), stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True)
    try:
        import select
        assert select.select([process.stdout], [], [], START_TIMEOUT)[0]
        assert process.stdout.readline().startswith('serving')
    finally:
        process.terminate()
        process.communicate(timeout=START_TIMEOUT)
    result = run('stats', cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert 'sessions=0' in result.stdout


def empty_filestorage(path):
    """A FileStorage file that holds nothing, not even ZODB's root, and
    none of the files FileStorage keeps beside it."""
    ZODB.FileStorage.FileStorage(str(path)).close()
    for sibling in path.parent.glob(path.name + '.*'):
        sibling.unlink()


@pytest.mark.parametrize('command', MAINTENANCE)
def test_an_empty_database_file_is_left_alone(tmp_path, command):
    path = tmp_path / 'empty.fs'
    empty_filestorage(path)
    before = files_under(tmp_path)
    line = one_error_line(run(command, '--db', file_uri(path), cwd=tmp_path))
    assert file_uri(path) in line and 'empty' in line
    assert files_under(tmp_path) == before


@pytest.mark.parametrize('command', MAINTENANCE)
def test_a_database_without_a_session_site_is_left_alone(tmp_path, command):
    path = tmp_path / 'other.fs'
    db = ZODB.DB(ZODB.FileStorage.FileStorage(str(path)))
    with db.transaction() as connection:
        connection.root()['something'] = 'else'
    db.close()
    for sibling in tmp_path.glob('other.fs.*'):
        sibling.unlink()
    before = files_under(tmp_path)
    line = one_error_line(run(command, '--db', file_uri(path), cwd=tmp_path))
    assert line == (f'zodbsession {command}: {file_uri(path)} holds no'
                    f' session site ("zodbsession serve" creates one)')
    assert files_under(tmp_path) == before


def test_sweep_removes_expired_sessions_only(tmp_path):
    path = tmp_path / 's.fs'
    make_session_db(path, live=2, expired=5, cart=1)
    assert container_counts(path) == {'': 7, 'demo.cart': 1}
    result = run('sweep', '--db', file_uri(path), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert ('(unnamed) (PersistentSessionDataContainer): removed 1 expired'
            ' time slice(s)') in result.stdout
    assert ('demo.cart (PersistentSessionDataContainer): removed 0 expired'
            ' time slice(s)') in result.stdout
    assert container_counts(path) == {'': 2, 'demo.cart': 1}
    # Nothing left to do the second time.
    again = run('sweep', '--db', file_uri(path), cwd=tmp_path)
    assert 'removed 1' not in again.stdout
    assert container_counts(path) == {'': 2, 'demo.cart': 1}


def test_pack_after_sweep_reclaims_space(tmp_path):
    path = tmp_path / 's.fs'
    make_session_db(path, live=1, expired=50)
    assert run('sweep', '--db', file_uri(path), cwd=tmp_path).returncode == 0
    before = path.stat().st_size
    result = run('pack', '--db', file_uri(path), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f'packed {file_uri(path)}')
    assert path.stat().st_size < before
    assert container_counts(path) == {'': 1, 'demo.cart': 0}


def test_pack_keeps_recent_revisions_with_days(tmp_path):
    path = tmp_path / 's.fs'
    make_session_db(path, live=1, expired=20)
    run('sweep', '--db', file_uri(path), cwd=tmp_path)
    before = path.stat().st_size
    result = run('pack', '--db', file_uri(path), '--days', '1', cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert 'older than 1 days' in result.stdout
    # Everything was written just now: no revision is old enough to go.
    assert path.stat().st_size == before


# -- errors: one line naming the URI and the cause ---------------------------

def test_unknown_uri_scheme(tmp_path):
    line = one_error_line(run('stats', '--db', 'bogus://x', cwd=tmp_path))
    assert line.startswith('zodbsession stats: ')
    assert 'bogus://x' in line
    assert 'No resolver' in line or 'NoResolverForScheme' in line


def test_locked_filestorage(tmp_path):
    path = tmp_path / 's.fs'
    make_session_db(path)
    holder = ZODB.DB(ZODB.FileStorage.FileStorage(str(path)))
    try:
        for command in ('stats', 'sweep', 'pack'):
            line = one_error_line(
                run(command, '--db', file_uri(path), cwd=tmp_path))
            assert file_uri(path) in line
            assert 'locked' in line
    finally:
        holder.close()


def test_unreachable_zeo_server(tmp_path):
    uri = f'zeo://127.0.0.1:{closed_port()}?wait_timeout=1'
    started = time.monotonic()
    line = one_error_line(run('stats', '--db', uri, cwd=tmp_path))
    assert uri in line
    assert 'no ZEO server answered' in line
    # wait_timeout is honoured (no 30-second default wait).
    assert time.monotonic() - started < COMMAND_TIMEOUT / 2


# Enough for an answer from a local server; much less than a hang.
QUICKLY = 15


@pytest.fixture
def silent_port():
    """A port where connections are accepted (by the kernel, into the
    listen backlog) and never answered: a server that hangs."""
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        sock.listen(16)
        yield sock.getsockname()[1]


@pytest.mark.parametrize('command', MAINTENANCE)
@pytest.mark.parametrize('scheme', ['zeo', 'postgres'])
def test_a_server_that_does_not_answer_is_one_line_quickly(
        tmp_path, silent_port, command, scheme):
    if scheme == 'postgres':
        pytest.importorskip('relstorage')
        uri = f'postgres://someone@127.0.0.1:{silent_port}/sessions'
    else:
        uri = f'zeo://127.0.0.1:{silent_port}'
    started = time.monotonic()
    result = run(command, '--db', uri, cwd=tmp_path)
    elapsed = time.monotonic() - started
    line = one_error_line(result)
    assert result.returncode == 1
    assert line.startswith(f'zodbsession {command}: cannot open session'
                           f' database {uri}: ')
    assert elapsed < QUICKLY


@pytest.mark.parametrize('scheme', ['zeo', 'postgres'])
def test_a_closed_port_is_one_line_quickly(tmp_path, scheme):
    if scheme == 'postgres':
        pytest.importorskip('relstorage')
        uri = f'postgres://someone@127.0.0.1:{closed_port()}/sessions'
    else:
        uri = f'zeo://127.0.0.1:{closed_port()}'
    started = time.monotonic()
    line = one_error_line(run('stats', '--db', uri, cwd=tmp_path))
    assert time.monotonic() - started < QUICKLY
    assert uri in line


def test_an_empty_zeo_database_is_left_alone(tmp_path):
    pytest.importorskip('ZEO')
    from zodbsession.db import open_database
    from zodbsession.testing.zeo import zeo_server
    with zeo_server(str(tmp_path)) as uri:
        for command in MAINTENANCE:
            line = one_error_line(run(command, '--db', uri, cwd=tmp_path))
            assert uri in line and 'empty' in line
        # Nothing was stored: the root object is still missing.
        line = one_error_line(run('stats', '--db', uri, cwd=tmp_path))
        assert 'empty' in line
        open_database(uri).close()      # a worker's open creates the root
        line = one_error_line(run('stats', '--db', uri, cwd=tmp_path))
        assert 'holds no session site' in line


def test_an_empty_postgres_database_is_one_line():
    pytest.importorskip('relstorage')
    pytest.importorskip('psycopg2')
    from zodbsession.testing.postgres import PostgresCluster
    from zodbsession.testing.postgres import postgres_cluster
    reason = PostgresCluster.unavailable_reason()
    if reason:
        pytest.skip(f'cannot run a PostgreSQL cluster: {reason}')
    with postgres_cluster() as cluster:
        uri = cluster.new_database('empty')
        for command in MAINTENANCE:
            line = one_error_line(
                run(command, '--db', uri, cwd=cluster.directory))
            assert uri in line and 'empty' in line


# -- output into a closed pipe ------------------------------------------------

def test_stats_into_a_closed_pipe_ends_quietly(tmp_path):
    path = tmp_path / 's.fs'
    make_session_db(path)
    read_end, write_end = os.pipe()
    os.close(read_end)      # the reader (``head -1``) is gone already
    try:
        result = subprocess.run(
            child_command('-m', 'zodbsession', 'stats', '--db',
                          file_uri(path)), cwd=tmp_path, stdout=write_end,
            stderr=subprocess.PIPE, text=True, timeout=COMMAND_TIMEOUT,
            env=child_environment())
    finally:
        os.close(write_end)
    assert result.stderr == ''
    assert result.returncode == 128 + 13    # as if ended by SIGPIPE


def test_stats_piped_to_head(tmp_path):
    path = tmp_path / 's.fs'
    make_session_db(path)
    result = subprocess.run(
        ['bash', '-c', f'{sys.executable} -m zodbsession stats --db'
                       f' {file_uri(path)} | head -1'],
        cwd=tmp_path, capture_output=True, text=True, env=child_environment(),
        timeout=COMMAND_TIMEOUT)
    assert result.returncode == 0
    assert result.stdout == f'database: {file_uri(path)}\n'
    assert result.stderr == ''


def test_password_never_printed(tmp_path):
    pytest.importorskip('relstorage')
    uri = (f'postgres://someone:hunter2@127.0.0.1:{closed_port()}'
           f'/nodb?connect_timeout=2')
    line = one_error_line(run('stats', '--db', uri, cwd=tmp_path))
    assert 'hunter2' not in line
    assert 'someone:***@127.0.0.1' in line


def test_serve_on_a_port_in_use(tmp_path):
    with socket.socket() as busy:
        busy.bind(('127.0.0.1', 0))
        busy.listen()
        port = busy.getsockname()[1]
        line = one_error_line(run(
            'serve', '--db', file_uri(tmp_path / 's.fs'), '--port',
            str(port), cwd=tmp_path))
    assert line == (f'zodbsession serve: cannot listen on 127.0.0.1:{port}:'
                    f' Address already in use')


def test_serve_on_a_host_that_does_not_resolve(tmp_path):
    line = one_error_line(run(
        'serve', '--db', file_uri(tmp_path / 's.fs'), '--host',
        'no-such-host.invalid', '--port', '0', cwd=tmp_path))
    assert line.startswith('zodbsession serve: cannot listen on'
                           ' no-such-host.invalid:0: ')


def test_serve_with_an_unopenable_database(tmp_path):
    line = one_error_line(run('serve', '--db', 'bogus://x', '--port', '0',
                              cwd=tmp_path))
    assert line.startswith('zodbsession serve: cannot open session database'
                           ' bogus://x')


@pytest.mark.parametrize('wrong', ['a directory', 'a text file',
                                   'a typo in a parameter'])
def test_serve_given_a_wrong_path_creates_nothing(tmp_path, wrong):
    (tmp_path / 'data').mkdir()
    (tmp_path / 'notes.txt').write_text('not a database')
    uri = {'a directory': file_uri(tmp_path / 'data'),
           'a text file': file_uri(tmp_path / 'notes.txt'),
           'a typo in a parameter': file_uri(tmp_path / 'new' / 's.fs')
           + '?qouta=1'}[wrong]
    before = sorted(tmp_path.rglob('*'))
    line = one_error_line(run('serve', '--db', uri, '--port', '0',
                              cwd=tmp_path))
    assert line.startswith(f'zodbsession serve: cannot open session'
                           f' database {uri}: ')
    assert sorted(tmp_path.rglob('*')) == before
    assert (tmp_path / 'notes.txt').read_text() == 'not a database'
