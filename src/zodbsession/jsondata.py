"""The JSON restriction of client-side sessions."""
import copy
import math
import sys

from zodbsession import clock
from zodbsession.data import _LIVE
from zodbsession.data import SessionData
from zodbsession.data import SessionPkgData

_SCALARS = (str, bool, int, type(None))
_UNCHANGEABLE = frozenset(_SCALARS)
# Ints of more bits than this may have more decimal digits than Python
# writes (sys.get_int_max_str_digits(), 4300 by default): such an int is
# checked further, on assignment, rather than failing the commit
# unexplained. (4300 digits take over 14280 bits.)
_FEW_BITS = 14000
_SURROGATE = 'a lone surrogate, which UTF-8 cannot carry'
# JSON values a request can change without assigning them.
_CHANGEABLE_IN_PLACE = frozenset((list, dict))


def _type_name(value):
    cls = type(value)
    return cls.__qualname__ if cls.__module__ == 'builtins' else (
        f'{cls.__module__}.{cls.__qualname__}')


def check_json(pkg_id, key, value):
    """Raise TypeError unless ``value`` is plain JSON data.

    Plain JSON: str (UTF-8 can carry: no lone surrogate), int (of no
    more digits than Python writes), float (finite), bool, None, lists,
    and dicts with such str keys, nested, all of
    exactly these types. Tuples, subclasses (an IntEnum, a str subclass)
    and other types are refused rather than silently changed by a round
    trip through JSON.
    """
    problem = _problem(value, depth=0)
    if problem is not None:
        where, offender = problem
        raise TypeError(
            f'cannot store {pkg_id!r}[{key!r}] in a cookie session: values'
            f' must be JSON (str, int, float, bool, None, list, dict with'
            f' str keys); found {_type_name(offender)}{where}')


def check_key(pkg_id, key):
    """Raise TypeError unless ``key`` can name a value in a cookie: JSON
    has str keys only (an int would come back as a str, a tuple not at
    all), and the cookie is UTF-8."""
    if not isinstance(key, str):
        raise TypeError(
            f'cannot store {pkg_id!r}[{key!r}] in a cookie session: keys'
            f' must be str (JSON); found {_type_name(key)}')
    if not utf8_encodable(key):
        raise TypeError(
            f'cannot store {pkg_id!r}[{key!r}] in a cookie session: the key'
            f' holds {_SURROGATE}')


def _problem(value, depth, where=''):
    if depth > 64:
        return ' nested too deeply', value
    cls = type(value)
    # Exact types: a subclass (an IntEnum, a Markup) would come back from
    # JSON as its base type.
    if cls is int:
        return None if value.bit_length() <= _FEW_BITS or _writable(
            value) else (f'{_at(where)} (too many digits for JSON)', value)
    if cls is str:
        return None if utf8_encodable(value) else (
            f'{_at(where)} ({_SURROGATE})', value)
    if cls in _UNCHANGEABLE:
        return None
    if cls is float:
        return None if math.isfinite(value) else (
            f'{_at(where)} (not finite)', value)
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
            if not utf8_encodable(item_key):
                return f'{where} as a key ({_SURROGATE})', item_key
            found = _problem(item, depth + 1, f'{where}[{item_key!r}]')
            if found:
                return found
        return None
    return _at(where), value


def _at(where):
    return f' at {where}' if where else ''


def utf8_encodable(text):
    """Whether UTF-8 (the cookie's encoding) carries ``text``: not if it
    holds a lone surrogate (``json.loads('"\\ud800"')`` makes one)."""
    if text.isascii():
        return True
    try:
        text.encode('utf-8')
    except UnicodeEncodeError:
        return False
    return True


def _writable(number):
    """Whether Python writes ``number`` in decimal (JSON's form)."""
    if not sys.get_int_max_str_digits():
        return True
    try:
        int.__repr__(number)
    except ValueError:
        return False
    return True


class JSONPkgData(SessionPkgData):
    """One package of a cookie session: a view onto its values, which
    are JSON and live in one plain dict (a cookie is encoded whole, so
    nothing is kept pickled beside them)."""

    def __init__(self, owner, pkg_id):
        self._owner = owner
        self._pkg_id = pkg_id
        self._own = None

    def __getitem__(self, key):
        items = self._owner._packages.get(self._pkg_id)
        if items is None:
            raise KeyError(key)
        value = items[key]
        if type(value) not in _UNCHANGEABLE:
            self._owner._watch()
        return value

    def get(self, key, default=None):
        items = self._owner._packages.get(self._pkg_id)
        if items is None or key not in items:
            return default
        value = items[key]
        if type(value) not in _UNCHANGEABLE:
            self._owner._watch()
        return value

    def __setitem__(self, key, value):
        owner = self._owner
        owner._check_value(self._pkg_id, key, value)
        items = owner._packages.get(self._pkg_id)
        if items is None:
            items = owner._create_package(self._pkg_id)
        else:
            owner._changed()
        items[key] = value

    def __delitem__(self, key):
        items = self._owner._packages.get(self._pkg_id)
        if items is None or key not in items:
            raise KeyError(key)
        self._owner._changed()
        del items[key]

    def changed(self):
        if self._owner._packages.get(self._pkg_id):
            self._owner._changed()

    def __contains__(self, key):
        items = self._owner._packages.get(self._pkg_id)
        return items is not None and key in items

    def __iter__(self):
        return iter(list(self._owner._packages.get(self._pkg_id, ())))

    def __len__(self):
        return len(self._owner._packages.get(self._pkg_id, ()))


class JSONSessionData(SessionData):
    """SessionData that accepts JSON values only, checked on assignment.

    Its values are kept as they are, one plain dict per package
    (``{pkg_id: {key: value}}``, what the cookie's JSON decodes to), with
    nothing pickled beside them: the whole session is encoded again when
    it is sent, so there is no stored form to keep per value.
    """

    # It lives in a cookie, never in a database: it is never a ghost and
    # has no jar to tell of changes. Plain attribute access then does all
    # that persistent's does for it, and costs less (every read of a
    # cookie session goes through a dozen of them).
    __getattribute__ = object.__getattribute__
    __setattr__ = object.__setattr__
    __delattr__ = object.__delattr__

    def __init__(self):
        self._last_access = 0
        self._created = int(clock.now())
        self._packages = {}

    def __getstate__(self):
        if self._p_jar is not None:
            # Loaded back, it could not be brought out of its ghost state.
            raise TypeError(
                'a cookie session (JSONSessionData) cannot be stored in a'
                ' database; store SessionData.from_plain(data.to_plain())'
                ' instead')
        # The values themselves copied too: a copy (copy.copy, a pickle)
        # changed in place must leave this session as it is, as a
        # SessionData's copy (made from pickled values) does.
        return {'t': self._last_access, 'c': self._created,
                'p': copy.deepcopy(self._packages)}

    def __setstate__(self, state):
        self._last_access = state.get('t', 0)
        self._created = state.get('c', 0)
        self._packages = _copied(state.get('p', {}))

    # No jar to tell of a change: storing a pending session is all.
    _changed = SessionData._store_if_pending
    # A value that may change in place was handed out: whoever keeps this
    # data compares it at commit (a cookie view compares texts); no
    # connection watches it.
    _watch = SessionData._notify_mutable_read

    def keep_in_place_changes(self):
        """Nothing to mark: the whole session is compared when sent."""

    def _create_package(self, pkg_id):
        # First: a pending session is stored before it changes, so that
        # a failure to store it leaves it as it was.
        self._changed()
        return self._packages.setdefault(pkg_id, {})

    def _package_dicts(self, pkg_id, create):
        # For a plain SessionPkgData adopted by ``data[pkg_id] = pkg``:
        # its keys (as stored forms, all live) and its values.
        items = self._packages.get(pkg_id)
        if items is None:
            if not create:
                return {}, {}
            items = self._create_package(pkg_id)
        return dict.fromkeys(items, _LIVE), items

    def _check_value(self, pkg_id, key, value):
        if type(key) is not str or not key.isascii():
            check_key(pkg_id, key)
        cls = type(value)
        if cls not in _UNCHANGEABLE or (
                cls is str and not value.isascii()) or (
                cls is int and value.bit_length() > _FEW_BITS):
            # (An ASCII str, a bool, None or an int of a few thousand
            # digits is JSON: most values, no walk.)
            check_json(pkg_id, key, value)

    def _set_other(self, name, value):
        # The cookie holds package data only: refuse rather than lose it.
        raise TypeError(
            f'a cookie session keeps package data only: cannot store a'
            f' {_type_name(value)} as its {name!r}; store it in the'
            f' package, session[{name!r}][key] = value')

    # -- the mapping of package ids --------------------------------------

    def package(self, pkg_id):
        """The package's data, stored once a value is stored in it."""
        views = self._v_views
        if views is None:
            views = self._v_views = {}
        view = views.get(pkg_id)
        if view is None:
            view = views[pkg_id] = JSONPkgData(self, pkg_id)
        return view

    def __getitem__(self, pkg_id):
        # A package handed out (``package``) exists for the data's
        # lifetime (its request): a cookie session outlives no request.
        views = self._v_views
        if pkg_id not in self._packages and (
                views is None or pkg_id not in views):
            raise KeyError(pkg_id)
        return self.package(pkg_id)

    def __setitem__(self, pkg_id, pkg_data):
        if not isinstance(pkg_data, SessionPkgData):
            self._set_other(pkg_id, pkg_data)
            return
        contents = dict(pkg_data.items())
        for key, value in contents.items():
            self._check_value(pkg_id, key, value)
        self._changed()
        self._packages[pkg_id] = contents
        # (A view handed out for pkg_id stays the package's one object:
        # it shows what was just stored.)
        self._adopt(pkg_id, pkg_data)

    def __delitem__(self, pkg_id):
        del self._packages[pkg_id]
        if self._v_views is not None:
            self._v_views.pop(pkg_id, None)
        self._changed()

    def __contains__(self, pkg_id):
        return pkg_id in self._packages

    def __iter__(self):
        return iter(list(self._packages))

    def __len__(self):
        return len(self._packages)

    def __repr__(self):
        return f'<JSONSessionData packages={list(self._packages)!r}>'

    # -- plain data ----------------------------------------------------------

    def to_plain(self):
        # The live dicts are the data: no copy (callers only read it).
        return self._packages

    def set_plain(self, packages, last_access):
        """Hold ``{pkg_id: {key: value}}`` (the dicts are copied, not the
        values) and nothing else, last accessed at ``last_access``."""
        self._packages = _copied(packages)
        self._last_access = last_access

    @classmethod
    def from_plain(cls, packages, last_access=0, created=None):
        data = cls.__new__(cls)
        data._created = int(clock.now()) if created is None else created
        data._last_access = last_access
        data._packages = _copied(packages)
        return data

    def check_all(self):
        """Check every value again (lists may have been mutated).

        Returns what was checked, ``to_plain()``, so callers need not
        build it twice.
        """
        return self.checked_packages()[0]

    def checked_packages(self):
        """``check_all()``, and whether a value can change in place (a
        list or dict): ({pkg_id: {key: value}}, bool)."""
        packages = self._packages
        changeable = False
        for pkg_id, items in packages.items():
            for key, value in items.items():
                # A str, int, bool or None cannot have changed since it
                # was checked; anything else is checked again.
                if type(value) not in _UNCHANGEABLE:
                    check_json(pkg_id, key, value)
                    if type(value) in _CHANGEABLE_IN_PLACE:
                        changeable = True
        return packages, changeable


def _copied(packages):
    """{pkg_id: a copy of its dict} (the values themselves are shared)."""
    copied = {}
    for pkg_id, items in packages.items():
        copied[pkg_id] = dict(items)
    return copied
