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


class Setting:
    """The attribute ``field.__name__``, validated by ``field`` when set."""

    def __init__(self, field):
        self.field = field
        self.name = field.__name__

    def __repr__(self):
        return f'<Setting {self.name!r}>'

    def __set__(self, instance, value):
        self.field.bind(instance).validate(value)
        instance.__dict__[self.name] = value
        if isinstance(instance, persistent.Persistent):
            instance._p_changed = True
