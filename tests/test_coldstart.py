"""A cluster's cold start: worker processes started at the same moment
against a new, empty database all start.

Each trial is a fresh, empty database and ``PROCESSES`` real processes
(``zodbsession.testing.coldstart``) that wait on one pipe and then, at
the same moment, build ``SessionMiddleware(app, db_uri=...)`` at its
defaults and store one value. They race to create ZODB's root object,
the session site and (RelStorage) the tables.
"""
import pytest

from zodbsession.testing.coldstart import start_together

PROCESSES = 4
ZEO_TRIALS = 10
POSTGRES_TRIALS = 2


def failures(results):
    return [result for result in results if not result.started]


def test_workers_starting_together_on_a_new_zeo_database_all_start(
        tmp_path):
    pytest.importorskip('ZEO')
    from zodbsession.testing.zeo import zeo_server
    failed = []
    for trial in range(ZEO_TRIALS):
        directory = tmp_path / str(trial)
        directory.mkdir()
        with zeo_server(str(directory)) as uri:
            failed += failures(start_together(uri, PROCESSES))
    assert failed == []


def test_workers_starting_together_on_a_new_postgres_database_all_start():
    pytest.importorskip('relstorage')
    pytest.importorskip('psycopg2')
    from zodbsession.testing.postgres import PostgresCluster
    from zodbsession.testing.postgres import postgres_cluster
    reason = PostgresCluster.unavailable_reason()
    if reason:
        pytest.skip(f'cannot run a PostgreSQL cluster: {reason}')
    failed = []
    with postgres_cluster() as cluster:
        for trial in range(POSTGRES_TRIALS):
            uri = cluster.new_database(f'coldstart{trial}')
            failed += failures(start_together(uri, PROCESSES))
    assert failed == []


def test_a_child_that_fails_is_reported(tmp_path):
    # The harness itself: a database that cannot open is a failure, not
    # a start.
    results = start_together('bogus://nowhere', 2)
    assert len(failures(results)) == 2
    assert 'bogus://nowhere' in results[0].output


# -- the retry of start-up races, on its own ----------------------------------

def flaky(errors):
    """A step that raises each of ``errors`` in turn, then returns 'done'."""
    pending = list(errors)

    def step():
        if pending:
            raise pending.pop(0)
        return 'done'
    return step


def test_a_step_that_loses_races_is_tried_again():
    from ZODB.POSException import ConflictError
    from ZODB.POSException import ReadConflictError
    from zodbsession.coldstart import retry_races
    step = flaky([ConflictError(), ReadConflictError(), ConflictError()])
    assert retry_races(step, 'a test step') == 'done'


def test_other_errors_are_not_retried():
    from zodbsession.coldstart import retry_races
    with pytest.raises(KeyError):
        retry_races(flaky([KeyError('x')]), 'a test step')


def test_the_retries_are_bounded_by_time():
    from ZODB.POSException import ConflictError
    from zodbsession.coldstart import retry_races
    with pytest.raises(ConflictError):
        retry_races(flaky([ConflictError()] * 1000), 'a test step',
                    budget=0.05)


def test_a_race_is_recognised_through_its_cause():
    from ZODB.POSException import ConflictError
    from zodbsession.coldstart import is_race
    try:
        try:
            raise ConflictError()
        except ConflictError as exc:
            raise RuntimeError('wrapped') from exc
    except RuntimeError as wrapped:
        assert is_race(wrapped)
    assert not is_race(RuntimeError('alone'))
