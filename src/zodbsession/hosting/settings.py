"""Session settings from text (.ini files, command lines)."""
from zope.schema.interfaces import IBool
from zope.schema.interfaces import IInt

from zodbsession.interfaces import ICookieClientIdManager
from zodbsession.interfaces import ISessionDataContainer
from zodbsession.validated import InvalidSetting
from zodbsession.validated import check

_TRUE = {'1', 'true', 'yes', 'on'}
_FALSE = {'0', 'false', 'no', 'off'}


def _count_or_none(text):
    """A whole number, or ``none`` (no limit)."""
    return None if text.lower() in ('', 'none') else int(text)


# Hosting options that are not schema fields.
_HOSTING = {'db_uri': str, 'retries': _count_or_none, 'retry_after': int,
            'retry_timeout': float, 'pack_interval': float}


def _field(name):
    for interface in (ICookieClientIdManager, ISessionDataContainer):
        if name in interface:
            return interface[name]
    return None


def _convert(name, text, field):
    text = text.strip()
    if IBool.providedBy(field):
        if text.lower() in _TRUE:
            return True
        if text.lower() in _FALSE:
            return False
        raise ValueError(f'setting {name!r}: expected true or false, got'
                         f' {text!r}')
    if IInt.providedBy(field):
        if text == '' and not field.required:
            return None
        try:
            return int(text)
        except ValueError:
            raise ValueError(f'setting {name!r}: expected a whole number,'
                             f' got {text!r}') from None
    return text


def parse_settings(options):
    """Typed settings from a mapping of names to strings.

    ``secret`` may list several secrets, one per line or separated by
    whitespace (the first signs). Unknown names raise ValueError.
    """
    result = {}
    for name, value in options.items():
        if not isinstance(value, str):
            result[name] = value
        elif name in _HOSTING:
            try:
                result[name] = _HOSTING[name](value.strip())
            except ValueError:
                raise ValueError(
                    f'setting {name!r}: bad value {value!r}') from None
        elif name == 'secret':
            secrets = value.split()
            if not secrets:
                raise InvalidSetting(
                    name, value, 'expected one or more secrets of at least'
                    ' 16 bytes (leave the setting out to have one'
                    ' generated and kept in the database)')
            result[name] = secrets if len(secrets) > 1 else secrets[0]
        else:
            field = _field(name)
            if field is None:
                raise ValueError(f'unknown zodbsession setting {name!r}')
            result[name] = _validated(name, _convert(name, value, field),
                                      field)
    return result


def _validated(name, value, field):
    return check(field, value, name)
