"""Schema-validated settings that read at plain attribute speed.

zope.schema's FieldProperty validates a value when it is assigned, but
every read of it is a Python call; the client id manager's settings and a
container's timeout are read several times per request. A ``Setting``
validates on assignment just the same and keeps the value in the
instance's ``__dict__``; having no ``__get__``, it leaves reads to
Python's own lookup, which finds the value there.

So an instance must be given every setting before it is read: the
classes that use ``Setting`` assign them all in their constructors.
"""
import persistent
from zope.schema import ValidationError
from zope.schema.interfaces import IASCIILine
from zope.schema.interfaces import IBool
from zope.schema.interfaces import IChoice
from zope.schema.interfaces import IMinMax
from zope.schema.interfaces import IBytes
from zope.schema.interfaces import IFloat
from zope.schema.interfaces import IInt
from zope.schema.interfaces import IText


class InvalidSetting(ValidationError, ValueError):
    """A setting was given a value it does not allow.

    Both zope.schema's ValidationError (which zope.session code may
    catch) and ValueError; the message names the setting, the value and
    what the setting accepts.
    """

    def __init__(self, setting, value, accepts):
        super().__init__(setting, value, accepts)
        self.setting, self.value, self.accepts = setting, value, accepts

    def __str__(self):
        return (f'setting {self.setting!r}: {self.value!r} is not allowed;'
                f' {self.accepts}')

    def doc(self):
        return str(self)


_KINDS = ((IBool, 'true or false'), (IInt, 'a whole number'),
          (IFloat, 'a number'), (IASCIILine, 'ASCII text'),
          (IText, 'text'), (IBytes, 'bytes'))


def accepted(field):
    """What ``field`` accepts, in words."""
    vocabulary = field.vocabulary if IChoice.providedBy(field) else None
    if vocabulary is not None:
        return 'one of ' + ', '.join(repr(term.value) for term in vocabulary)
    words = next((words for kind, words in _KINDS if kind.providedBy(field)),
                 'a value')
    low, high = ((field.min, field.max) if IMinMax.providedBy(field)
                 else (None, None))
    if low is not None and high is not None:
        words += f' from {low} to {high}'
    elif low is not None:
        words += f' >= {low}'
    elif high is not None:
        words += f' <= {high}'
    if field.description:
        words += f' ({field.description})'
    return 'expected ' + words


def check(field, value, name=None, context=None):
    """Validate ``value`` for ``field``; raise InvalidSetting naming the
    setting (``name``, default the field's) if it is not allowed."""
    try:
        (field.bind(context) if context is not None else field).validate(
            value)
    except ValidationError:
        raise InvalidSetting(name or field.__name__, value,
                             accepted(field)) from None
    return value


def check_bounds(name, value, low=None, kind=int):
    """The same error for a setting that is no schema field: ``value``
    must be a ``kind`` (not a bool) and at least ``low``."""
    if isinstance(value, bool) or not isinstance(value, kind) or (
            low is not None and value < low):
        words = {int: 'a whole number'}.get(kind, kind.__name__)
        raise InvalidSetting(name, value, f'expected {words}' + (
            f' >= {low}' if low is not None else ''))
    return value


class Setting:
    """The attribute ``field.__name__``, validated by ``field`` when set."""

    def __init__(self, field):
        self.field = field
        self.name = field.__name__

    def __repr__(self):
        return f'<Setting {self.name!r}>'

    def __set__(self, instance, value):
        check(self.field, value, context=instance)
        instance.__dict__[self.name] = value
        if isinstance(instance, persistent.Persistent):
            instance._p_changed = True
