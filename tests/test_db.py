"""Opening the session database from a URI."""

import pytest
import ZODB.FileStorage
from ZODB.MappingStorage import MappingStorage

from zodbsession.db import DEFAULT_URI
from zodbsession.db import DatabaseOpenError
from zodbsession.db import open_database
from zodbsession.db import redact
from zodbsession.db import shared_database
from zodbsession.testing.processes import free_port
from zodbsession.testing.processes import wait_for
from zodbsession.testing.zeo import zeo_server


def write_and_read_back(db):
    with db.transaction() as connection:
        connection.root()['answer'] = 42
    with db.transaction() as connection:
        return connection.root()['answer']


def test_the_default_is_a_filestorage_under_the_current_directory(
        tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert DEFAULT_URI == 'file://var/sessions.fs'
    db = open_database()
    try:
        assert isinstance(db.storage, ZODB.FileStorage.FileStorage)
        assert write_and_read_back(db) == 42
    finally:
        db.close()
    assert (tmp_path / 'var' / 'sessions.fs').is_file()

    # Reopened, it has the data.
    db = open_database('file://var/sessions.fs')
    try:
        with db.transaction() as connection:
            assert connection.root()['answer'] == 42
    finally:
        db.close()


def test_an_absolute_file_uri(tmp_path):
    path = tmp_path / 'deep' / 'er' / 'data.fs'
    db = open_database(f'file://{path}')
    try:
        assert write_and_read_back(db) == 42
    finally:
        db.close()
    assert path.is_file()


def test_memory():
    db = open_database('memory://')
    try:
        assert isinstance(db.storage, MappingStorage)
        assert write_and_read_back(db) == 42
    finally:
        db.close()


def test_zeo(tmp_path):
    with zeo_server(str(tmp_path)) as uri:
        db = open_database(uri)
        try:
            assert write_and_read_back(db) == 42
        finally:
            db.close()
        # A second client sees what the first one stored.
        db = open_database(uri + '?wait_timeout=5')
        try:
            with db.transaction() as connection:
                assert connection.root()['answer'] == 42
        finally:
            db.close()


def one_line_error(uri):
    with pytest.raises(DatabaseOpenError) as info:
        db = open_database(uri)
        db.close()
    message = str(info.value)
    assert '\n' not in message
    assert message.startswith('cannot open session database ')
    return message


def test_an_unknown_scheme():
    message = one_line_error('nosuchscheme://somewhere')
    assert 'nosuchscheme://somewhere' in message
    assert 'No resolver' in message


def test_an_unreachable_zeo_server():
    uri = f'zeo://127.0.0.1:{free_port()}?wait_timeout=1'
    message = one_line_error(uri)
    assert uri in message
    assert 'no ZEO server answered' in message


def test_a_locked_filestorage(tmp_path):
    uri = f'file://{tmp_path}/sessions.fs'
    db = open_database(uri)
    try:
        message = one_line_error(uri)
        assert uri in message
        assert 'locked' in message
    finally:
        db.close()
    # Once the first user closed it, it opens again.
    open_database(uri).close()


def test_passwords_are_redacted():
    uri = 'postgres://zodb:s3cret@127.0.0.1:1/sessions?connect_timeout=1'
    message = one_line_error(uri)
    assert 's3cret' not in message
    assert 'postgres://zodb:***@127.0.0.1:1/sessions' in message
    assert 'DatabaseOpenError' not in message


@pytest.mark.parametrize('uri, expected', [
    ('zeo://h:1', 'zeo://h:1'),
    ('postgres://u:pw@h:5432/db', 'postgres://u:***@h:5432/db'),
    ('postgres://u:pw@h/db?x=1', 'postgres://u:***@h/db?x=1'),
    ('file:///tmp/x.fs', 'file:///tmp/x.fs'),
])
def test_redact(uri, expected):
    assert redact(uri) == expected


def test_errors_keep_their_cause(tmp_path):
    with pytest.raises(DatabaseOpenError) as info:
        open_database('nosuchscheme://x')
    assert info.value.__cause__ is not None


def test_create_false_opens_only_what_exists(tmp_path):
    from zodbsession.db import DatabaseNotFound
    uri = f'file://{tmp_path}/deep/sessions.fs'
    with pytest.raises(DatabaseNotFound) as info:
        open_database(uri, create=False)
    assert uri in str(info.value)
    assert list(tmp_path.iterdir()) == []
    open_database(uri).close()              # created by default
    db = open_database(uri, create=False)   # now it exists
    db.close()


def test_create_false_refuses_a_storage_without_a_root():
    from zodbsession.db import DatabaseNotFound
    with pytest.raises(DatabaseNotFound) as info:
        open_database('memory://', create=False)
    assert 'empty' in str(info.value)


def test_read_only(tmp_path):
    uri = f'file://{tmp_path}/sessions.fs'
    open_database(uri).close()
    db = open_database(uri, read_only=True)
    try:
        assert db.storage.isReadOnly()
    finally:
        db.close()


def all_paths(directory):
    return sorted(str(path.relative_to(directory))
                  for path in directory.rglob('*'))


@pytest.mark.parametrize('create', [True, False], ids=['create', 'existing'])
def test_a_directory_is_refused_before_anything_is_made(tmp_path, create):
    # FileStorage made DIR.lock and DIR.tmp beside it, then failed.
    (tmp_path / 'data').mkdir()
    with pytest.raises(DatabaseOpenError, match='data is a directory; name'
                                                ' a FileStorage file'):
        open_database(f'file://{tmp_path}/data', create=create)
    assert all_paths(tmp_path) == ['data']


@pytest.mark.parametrize('create', [True, False], ids=['create', 'existing'])
def test_a_file_that_is_not_a_filestorage_is_left_alone(tmp_path, create):
    notes = tmp_path / 'notes.txt'
    notes.write_text('not a database')
    with pytest.raises(DatabaseOpenError, match='notes.txt is not a'
                                                ' FileStorage file'):
        open_database(f'file://{notes}', create=create)
    assert all_paths(tmp_path) == ['notes.txt']
    assert notes.read_text() == 'not a database'


@pytest.mark.parametrize('query', ['bogus=1', 'quota=lots',
                                   'connection_cache_size=many'])
def test_a_uri_that_does_not_open_makes_no_directory(tmp_path, query):
    with pytest.raises(DatabaseOpenError):
        open_database(f'file://{tmp_path}/new/dir/sessions.fs?{query}')
    assert all_paths(tmp_path) == []


def test_a_file_name_is_read_as_zodburi_reads_it(tmp_path):
    # '#' is part of the name (zodburi splits off the query only): the
    # file found is the file opened.
    uri = f'file://{tmp_path}/a#b.fs'
    open_database(uri).close()
    assert (tmp_path / 'a#b.fs').is_file()
    open_database(uri, create=False).close()


def test_memory_read_only_is_an_empty_database():
    from zodbsession.db import DatabaseNotFound
    with pytest.raises(DatabaseNotFound, match='empty'):
        open_database('memory://', create=False, read_only=True)


def test_an_existing_database_with_a_missing_blob_directory_is_refused(
        tmp_path):
    # BlobStorage made the directory (a typo: an empty blob store beside
    # the database) when only an existing database was to be opened.
    from zodbsession.db import DatabaseNotFound
    uri = f'file://{tmp_path}/s.fs'
    open_database(uri).close()
    before = all_paths(tmp_path)
    with pytest.raises(DatabaseNotFound, match='there is no blob directory'
                                               f' {tmp_path}/blobs'):
        open_database(f'{uri}?blobstorage_dir={tmp_path}/blobs',
                      create=False, read_only=True)
    assert all_paths(tmp_path) == before
    (tmp_path / 'blobs').mkdir()
    open_database(f'{uri}?blobstorage_dir={tmp_path}/blobs',
                  create=False).close()


# -- shared_database: one open database per URI in a process -----------------

def test_hosts_naming_one_file_share_its_database(tmp_path):
    uri = f'file://{tmp_path}/Data.fs'
    first = shared_database(uri)
    try:
        # A second FileStorage on the file would find it locked.
        assert shared_database(uri) is first
        assert write_and_read_back(first) == 42
    finally:
        first.close()


def test_a_closed_shared_database_is_opened_again(tmp_path):
    uri = f'file://{tmp_path}/Data.fs'
    first = shared_database(uri)
    write_and_read_back(first)
    first.close()
    again = shared_database(uri)
    try:
        assert again is not first
        with again.transaction() as connection:
            assert connection.root()['answer'] == 42
    finally:
        again.close()


def test_memory_databases_are_never_shared():
    first, second = shared_database('memory://'), shared_database('memory://')
    try:
        assert first is not second
    finally:
        first.close()
        second.close()


def test_a_shared_database_stays_the_one_through_a_zeo_outage(tmp_path):
    # A host made while the server is down (a second application factory
    # called during an outage) gets the process's database, which
    # reconnects when the server is back, not an error or a second client.
    # (A ZEO client opens connections while disconnected; the outage that
    # made shared_database open a second database, PostgreSQL's under
    # RelStorage, is played in test_fault_pg_restart.py.)
    with zeo_server(str(tmp_path)) as uri:
        first = shared_database(uri)
    try:
        # The client notices the server's end in its own thread.
        wait_for(lambda: not first.storage.is_connected(), 30,
                 'the ZEO client seeing its server gone')
        assert shared_database(uri) is first
    finally:
        first.close()
