"""Session settings from text, as .ini files and command lines give them."""
import pytest

from zodbsession.settings import parse_settings


def test_conversions():
    assert parse_settings({
        'db_uri': ' zeo://127.0.0.1:8100 ',
        'retries': '5',
        'timeout': '1800',
        'resolution': ' 60 ',
        'namespace': 'shop',
        'secure': 'true',
        'httpOnly': 'Off',
        'postOnly': 'yes',
        'sameSite': 'Strict',
        'cookieLifetime': '',
        'domain': '.example.org',
    }) == {
        'db_uri': 'zeo://127.0.0.1:8100',
        'retries': 5,
        'timeout': 1800,
        'resolution': 60,
        'namespace': 'shop',
        'secure': True,
        'httpOnly': False,
        'postOnly': True,
        'sameSite': 'Strict',
        'cookieLifetime': None,
        'domain': '.example.org',
    }


@pytest.mark.parametrize('text, expected', [
    ('1', True), ('TRUE', True), ('on', True),
    ('0', False), ('false', False), ('No', False),
])
def test_booleans(text, expected):
    assert parse_settings({'secure': text}) == {'secure': expected}


def test_one_secret_or_several():
    assert parse_settings({'secret': ' only-one '}) == {'secret': 'only-one'}
    assert parse_settings({'secret': '\n  newest\n  older\n'}) == {
        'secret': ['newest', 'older']}


def test_values_that_are_not_text_pass_through():
    assert parse_settings({'timeout': 10, 'secure': True}) == {
        'timeout': 10, 'secure': True}


@pytest.mark.parametrize('name, text, words', [
    ('secure', 'maybe', ["'secure'", 'true or false', "'maybe'"]),
    ('timeout', 'an hour', ["'timeout'", 'whole number', "'an hour'"]),
    ('timeout', '', ["'timeout'", 'whole number']),
    ('retries', 'many', ["'retries'", "'many'"]),
    ('path', '/;x', ["'path'", "'/;x'", "without ';'"]),
    ('domain', 'a.example; Secure', ["'domain'", 'host name']),
])
def test_bad_values_name_the_setting(name, text, words):
    with pytest.raises(ValueError) as info:
        parse_settings({name: text})
    for word in words:
        assert word in str(info.value)


def test_unknown_settings():
    with pytest.raises(ValueError,
                       match="unknown zodbsession setting 'colur'"):
        parse_settings({'colur': 'blue'})


def test_parsed_settings_configure_a_site(registry, db):
    """What parse_settings returns is what the site accepts."""
    from zodbsession.site import ensure_site
    from zodbsession.site import site_of
    from zodbsession.testing import TEST_SECRET

    settings = parse_settings({
        'timeout': '90', 'secure': 'yes', 'sameSite': 'None',
        'cookieLifetime': '3600', 'secret': TEST_SECRET})
    ensure_site(db, **settings)
    with db.transaction() as connection:
        site = site_of(connection)
        manager = site.client_id_manager
        assert site.container.timeout == 90
        assert (manager.secure, manager.sameSite, manager.cookieLifetime) == (
            True, 'None', 3600)
        assert manager.secret == (TEST_SECRET,)


@pytest.mark.parametrize('name, text, words', [
    ('sameSite', 'strict', ["'sameSite'", "'strict'",
                            "one of 'Lax', 'Strict', 'None'"]),
    ('namespace', 'two words', ["'namespace'", "'two words'"]),
    ('timeout', '-5', ["'timeout'", '-5', 'a whole number >= 0']),
    ('secret', '   ', ["'secret'", 'at least 16 bytes']),
])
def test_values_the_schema_rejects_fail_here_with_a_clear_message(
        name, text, words):
    with pytest.raises(ValueError) as info:
        parse_settings({name: text})
    for word in words:
        assert word in str(info.value)


def test_every_setting_error_is_a_validation_error_and_a_value_error():
    """One error type for every setting, wherever it is given: zope.session
    code catching zope.schema's ValidationError still catches it."""
    from zope.schema import ValidationError
    from zodbsession import CookieClientIdManager
    from zodbsession import PersistentSessionDataContainer
    from zodbsession import RAMSessionDataContainer
    from zodbsession.validated import InvalidSetting
    attempts = [
        lambda: PersistentSessionDataContainer(timeout=-1),
        lambda: RAMSessionDataContainer(resolution=-2),
        lambda: CookieClientIdManager(sameSite='sometimes'),
        lambda: parse_settings({'timeout': '-1'}),
    ]
    for attempt in attempts:
        with pytest.raises(InvalidSetting) as info:
            attempt()
        assert isinstance(info.value, ValidationError)
        assert isinstance(info.value, ValueError)
        assert str(info.value).startswith('setting ')
