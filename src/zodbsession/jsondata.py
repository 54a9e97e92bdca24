"""The JSON restriction of client-side sessions."""
import math

from zodbsession.data import SessionData

_SCALARS = (str, bool, int, type(None))
_UNCHANGEABLE = frozenset(_SCALARS)


def _type_name(value):
    cls = type(value)
    return cls.__qualname__ if cls.__module__ == 'builtins' else (
        f'{cls.__module__}.{cls.__qualname__}')


def check_json(pkg_id, key, value):
    """Raise TypeError unless ``value`` is plain JSON data.

    Plain JSON: str, int, float (finite), bool, None, lists, and dicts with
    str keys, nested. Tuples and other types are refused rather than
    silently changed by a round trip through JSON.
    """
    problem = _problem(value, depth=0)
    if problem is not None:
        where, offender = problem
        raise TypeError(
            f'cannot store {pkg_id!r}[{key!r}] in a cookie session: values'
            f' must be JSON (str, int, float, bool, None, list, dict with'
            f' str keys); found {_type_name(offender)}{where}')


def _problem(value, depth, where=''):
    if depth > 64:
        return ' nested too deeply', value
    if isinstance(value, _SCALARS):
        return None
    if isinstance(value, float):
        return None if math.isfinite(value) else (f'{where} (not finite)',
                                                  value)
    if type(value) is list:
        for index, item in enumerate(value):
            found = _problem(item, depth + 1, f'{where}[{index}]')
            if found:
                return found
        return None
    if type(value) is dict:
        for item_key, item in value.items():
            if not isinstance(item_key, str):
                return f'{where} as a key', item_key
            found = _problem(item, depth + 1, f'{where}[{item_key!r}]')
            if found:
                return found
        return None
    return (f' at {where}' if where else ''), value


class JSONSessionData(SessionData):
    """SessionData that accepts JSON values only, checked on assignment."""

    # It lives in a cookie, never in a database: it is never a ghost and
    # has no jar to tell of changes. Plain attribute access then does all
    # that persistent's does for it, and costs less (every read of a
    # cookie session goes through a dozen of them).
    __getattribute__ = object.__getattribute__
    __setattr__ = object.__setattr__
    __delattr__ = object.__delattr__

    def __getstate__(self):
        if self._p_jar is not None:
            # Loaded back, it could not be brought out of its ghost state.
            raise TypeError(
                'a cookie session (JSONSessionData) cannot be stored in a'
                ' database; store SessionData.from_plain(data.to_plain())'
                ' instead')
        return super().__getstate__()

    def _check_value(self, pkg_id, key, value):
        if type(value) not in _UNCHANGEABLE:
            # (A str, int, bool or None is JSON: most values, no walk.)
            check_json(pkg_id, key, value)

    def _set_other(self, name, value):
        # The cookie holds package data only: refuse rather than lose it.
        raise TypeError(
            f'a cookie session keeps package data only: cannot store a'
            f' {_type_name(value)} as its {name!r}; store it in the'
            f' package, session[{name!r}][key] = value')

    def to_plain(self):
        # Values set here are kept live (never pickled), so the live dicts
        # are the data: no copy, no view per package. (Unpickled data,
        # whose values are not all live, takes the general way.)
        live, stored = self._live, self._stored
        packages = {}
        for pkg_id, keys in stored.items():
            items = live.get(pkg_id)
            if items is None or len(items) != len(keys):
                return super().to_plain()
            packages[pkg_id] = items
        return packages

    def check_all(self):
        """Check every value again (lists may have been mutated).

        Returns what was checked, ``to_plain()``, so callers need not
        build it twice.
        """
        packages = self.to_plain()
        for pkg_id, items in packages.items():
            for key, value in items.items():
                # A str, int, bool or None cannot have changed since it
                # was checked; anything else is checked again.
                if type(value) not in _UNCHANGEABLE:
                    check_json(pkg_id, key, value)
        return packages
