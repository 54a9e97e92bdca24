"""Every cookie parser and verifier against hypothesis-made hostile input.

The strategies and invariants live in ``fuzzing.py`` (the longer campaign,
``make fuzz``, runs the same ones). Examples are derandomized: every run
of the suite tries the same few thousand inputs.
"""
import pytest
from hypothesis import given

import fuzzing
from zodbsession import testing

# Per target: 8 x 400 + 2 x 600 + 1,500 = 5,900 examples in all.
UNIT_EXAMPLES = 400
HEADER_EXAMPLES = 600
MIDDLEWARE_EXAMPLES = 1500


def run(target, max_examples):
    """Run one target's check over ``max_examples`` drawn examples."""
    @fuzzing.suite_settings(max_examples)
    @given(target.strategy)
    def property_test(example):
        target.check(example)
    property_test()


def by_name(targets):
    return pytest.mark.parametrize(
        'target', targets, ids=[target.name for target in targets])


@by_name(fuzzing.signer_targets() + fuzzing.codec_targets())
def test_parsers_and_verifiers(target):
    run(target, UNIT_EXAMPLES)


@pytest.fixture
def adapters():
    testing.setUp()
    yield
    testing.tearDown()


@by_name(fuzzing.manager_targets())
def test_client_id_from_raw_cookie_header(adapters, target):
    run(target, HEADER_EXAMPLES)


@by_name(fuzzing.publisher_targets())
def test_client_id_from_zope_publisher_request(adapters, target):
    run(target, HEADER_EXAMPLES)


def test_middleware_end_to_end(adapters, db):
    world = fuzzing.MiddlewareWorld(db)
    run(world.target(), MIDDLEWARE_EXAMPLES)
    # The attack left the real clients' sessions as they were.
    for owner, cookies in world.clients.items():
        header = '; '.join(f'{n}={v}' for n, v in cookies.items())
        status, headers, body = world.call(header)
        assert status == '200 OK'
        if owner == 'retired':
            assert body['found'] == {} and body['id'] != cookies['zodbsession']
        else:
            assert body['found'] == {fuzzing.DB_PKG: {'owner': owner},
                                     fuzzing.COOKIE_PKG: {'owner': owner}}
            assert body['id'] == cookies['zodbsession']
