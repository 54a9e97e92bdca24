"""PersistentSessionDataContainer: sessions in ZODB BTrees.

Layout (few, small records): the container holds a tree of time slices
(slice end -> slice); a slice files its sessions by the placement of
their client ids in small trees, each mapping a 16-byte digest of the
client id to that client's SessionData record (see zodbsession.filing).
A new session writes its own record and its tree's. Expiry drops whole
slices.
"""
import hashlib

import persistent
import transaction
from BTrees.LOBTree import LOBTree
from BTrees.OOBTree import OOBTree
from zope.interface import implementer

from zodbsession import clock
from zodbsession import expiry
from zodbsession import inplace
from zodbsession import placement
from zodbsession.data import SessionData
from zodbsession.filing import PlacedSlice
from zodbsession.filing import read_current
from zodbsession.interfaces import IInspectableContainer
from zodbsession.interfaces import IFreshSessions
from zodbsession.remembered import Remembered

# Implicit sweeping (when a request opens a new slice) drops at most this
# many expired slices, so no request pays for a long-neglected container.
IMPLICIT_SWEEP_LIMIT = 4


# -- the slices of earlier versions ----------------------------------------
#
# Slices made now are zodbsession.filing's PlacedSlice. Those an earlier
# version made (Slice, of either layout below) are read, changed and
# expired as they were, until they expire within a timeout of the upgrade.


class SessionTree(OOBTree):
    """Client digest -> SessionData, with small buckets: the trees of
    the first layout's slices (see Slice)."""
    max_leaf_size = 8
    max_internal_size = 32


# Trees of a first layout's slice: one per placement character.
SHARDS = 64

# The second layout: a table's trees are held by this many groups ...
GROUPS = 64
# ... each of the same number of trees, chosen by the key's digest.


class TreeGroup(persistent.Persistent):
    """Some of the trees of a second layout's table; never changed once
    made."""

    def __init__(self, width):
        self.trees = tuple(OOBTree() for _tree in range(width))


def _new_table(width):
    return tuple(TreeGroup(width) for _group in range(GROUPS))


def _tree_in(table, key):
    """The tree of ``table`` that files ``key`` (its bytes after the first,
    the placement, are a digest's: uniform, so the trees fill evenly)."""
    trees = table[key[1] % GROUPS].trees
    return trees[key[2] % len(trees)]


class Slice(persistent.Persistent):
    """The sessions of one time slice, as earlier versions filed them: a
    mapping of client keys.

    The second layout: tables of trees chosen by the key's digest, each
    wider than the one before; new sessions go to the newest table (a
    key is in one table only: see guard). Such a slice adds no more
    tables: its trees hold more sessions, for the one slice length it
    can still be the newest after the upgrade.

    The first layout has ``trees`` instead: one SessionTree per placement
    character, chosen by the key's first byte.
    """

    tables = ()
    trees = None

    def __init__(self, width=1):
        self.tables = (_new_table(width),)

    def _earlier_tree(self, key):
        # An earlier layout's slice: the key's first byte, its placement,
        # chooses the tree.
        return self.trees[key[0] % len(self.trees)]

    def get(self, key, default=None):
        if self.trees is not None:
            return self._earlier_tree(key).get(key, default)
        # Newest table first: it is the widest, and holds most of a
        # grown slice's sessions. (_tree_in, written out: every request
        # of a returning client looks its session up here.)
        group, index = key[1] % GROUPS, key[2]
        for table in reversed(self.tables):
            trees = table[group].trees
            data = trees[index % len(trees)].get(key)
            if data is not None:
                return data
        return default

    def __setitem__(self, key, data):
        """File ``key`` in the newest table (the key is in no table)."""
        if self.trees is not None:
            self._earlier_tree(key)[key] = data
            return
        _tree_in(self.tables[-1], key)[key] = data

    def __delitem__(self, key):
        if self.trees is not None:
            del self._earlier_tree(key)[key]
            return
        for table in reversed(self.tables):
            tree = _tree_in(table, key)
            if key in tree:
                del tree[key]
                return
        raise KeyError(key)

    def guard(self, key):
        """Make the current transaction fail with a conflict if another
        files ``key`` in this slice at the same time (see
        PersistentSessionDataContainer._guard).

        It reads as current the Slice record (a new table changes it:
        one who sees more tables files ``key`` in a newer one) and the
        key's tree in every table (where one who sees as many, or fewer,
        files it).
        """
        if self.trees is not None:
            # An earlier layout's tree keeps its buckets in records of
            # their own, out of reach; such slices expire within a
            # timeout of the upgrade.
            return
        read_current(self)
        for table in self.tables:
            read_current(_tree_in(table, key))

    def _trees(self):
        if self.trees is not None:
            return self.trees
        return [tree for table in self.tables for group in table
                for tree in group.trees]

    def __len__(self):
        return sum(len(tree) for tree in self._trees())

    def items(self):
        for tree in self._trees():
            yield from tree.items()


# Client keys made lately, by client id: a returning client's id is
# looked up with each of its requests. At most this many (as many as the
# client ids the signer remembers); full, it is emptied and starts again.
REMEMBERED_KEYS = 16384
# Longer ids (not ours: a third party's) are not remembered.
MAX_REMEMBERED_ID = 256
_made_keys = Remembered(REMEMBERED_KEYS)


def client_key(client_id):
    """The key of a client id: a digest, short and of fixed size, whose
    first byte is the id's placement (see zodbsession.placement).

    128 bits make an accidental collision between two clients as likely
    as guessing an id.
    """
    # (Exactly str: a subclass could equal a remembered id.)
    if type(client_id) is str:
        key = _made_keys.get(client_id)
        if key is not None:
            return key
        text = client_id
    else:
        text = str(client_id)
    digest = hashlib.blake2b(text.encode('utf-8'), digest_size=16).digest()
    where = placement.placement_of(text)
    key = digest if where is None else bytes((where,)) + digest[1:]
    if type(client_id) is str and len(client_id) <= MAX_REMEMBERED_ID:
        _made_keys.remember(client_id, key)
    return key


@implementer(IFreshSessions, IInspectableContainer)
class PersistentSessionDataContainer(expiry.ExpirySettings,
                                     persistent.Persistent):
    """Stores SessionData in a ZODB, expiring it after ``timeout`` seconds.

    The last-access time is written at most once per ``resolution``
    seconds, so most reads write nothing.
    """

    # zope.session's switch: True leaves all sweeping to sweep().
    disable_implicit_sweeps = False
    # The end of the slice opened last (see _tree_for).
    _last_opened = None

    def __init__(self, timeout=3600, resolution=600, lifetime=0):
        self.timeout = timeout
        self.resolution = resolution
        self.lifetime = lifetime
        self._slices = LOBTree()

    # -- lookup ---------------------------------------------------------

    def _find(self, key, now):
        """(end, slice, data) of the newest live slice holding ``key``."""
        # (oldest_live_end of idle_clock, written out.)
        timeout = self.timeout
        oldest = int(self._swept_at if self.disable_implicit_sweeps
                     else now) - timeout - self.resolution if timeout else None
        slices = self._slices
        # Newest first: a session in use sits in the newest slice, found
        # with one maxKey and no list of slices built.
        try:
            end = slices.maxKey()
        except ValueError:      # no slices at all
            return None
        if oldest is not None and end <= oldest:
            return None
        slice_ = slices[end]
        data = slice_.get(key)
        if data is not None:
            return end, slice_, data
        # The older live slices, newest first, without an exception
        # ending the walk: a new session's store misses in every one.
        # (int: the keys are; a setting stored before validation may not.)
        older = (slices.keys(max=end, excludemax=True) if oldest is None
                 else slices.keys(int(oldest), end, excludemin=True,
                                  excludemax=True))
        for end in reversed(older):
            slice_ = slices[end]
            data = slice_.get(key)
            if data is not None:
                return end, slice_, data
        return None

    def _live(self, client_id, now):
        """(end, slice, data) of the client's live session, or None."""
        found = self._find(client_key(client_id), now)
        if found is None or expiry.session_ended(found[2], now, self):
            return None
        return found

    def _get_live(self, client_id):
        """The client's live SessionData (its last access brought up to
        date), or None."""
        # (_live and needs_touch, written out: every request of a
        # returning client runs this.)
        now = clock.now()
        key = client_key(client_id)
        found = self._find(key, now)
        if found is None:
            return None
        end, slice_, data = found
        if expiry.session_ended(data, now, self):
            return None
        timeout = self.timeout
        if timeout and now - data.getLastAccessTime() > self.resolution:
            self._touch(key, end, slice_, data, now)
        return data

    def __getitem__(self, client_id):
        data = self._get_live(client_id)
        if data is None:
            data = self._held().get(client_id)
            if data is None:
                raise KeyError(client_id)
        return data

    def get(self, client_id, default=None):
        data = self._get_live(client_id)
        if data is None:
            data = self._held().get(client_id)
        return default if data is None else data

    # -- pending sessions (zodbsession.interfaces.IPendingSessions) -----

    # (transaction key, {client id: SessionData}): held until the
    # transaction ends, never stored.
    _v_held = None

    def new_session_data(self):
        return SessionData()

    def hold(self, client_id, session_data):
        current = self._current_transaction()
        held = self._v_held
        if held is None or held[0] != current:
            held = self._v_held = (current, {})
        held[1][str(client_id)] = session_data

    def _held(self):
        held = self._v_held
        if held is None:
            return {}
        if held[0] != self._current_transaction():
            self._v_held = None     # held for a transaction now over
            return {}
        return held[1]

    def _current_transaction(self):
        jar = self._p_jar
        return inplace.transaction_key(
            transaction.manager if jar is None else jar.transaction_manager)

    def __contains__(self, client_id):
        return self._live(client_id, clock.now()) is not None

    # -- changes --------------------------------------------------------

    def __setitem__(self, client_id, session_data):
        now = clock.now()
        key = client_key(client_id)
        found = self._find(key, now)
        if found is not None:
            del found[1][key]
        self._store(client_id, key, session_data, now,
                    guarded=found is None)

    def store_new(self, client_id, session_data):
        """Store ``session_data`` under ``client_id``, an id issued in the
        current transaction (see IFreshSessions): nothing can be stored
        under it, so no slice is searched for an older session."""
        self._store(client_id, client_key(client_id), session_data,
                    clock.now())

    def _store(self, client_id, key, session_data, now, guarded=False):
        held = self._v_held
        if held is not None:
            # Storing ends the hold (a hold of a transaction now over
            # holds nothing, whatever is popped from it).
            held[1].pop(str(client_id), None)
        session_data.setLastAccessTime(now)
        slice_ = self._tree_for(now)
        if guarded:
            self._guard(key)
        slice_[key] = session_data

    def _guard(self, key):
        """Make the current transaction fail with a conflict if another
        stores a session under ``key`` too, in any slice: for a session
        stored under an id the client sent, which another of its requests
        may be storing at the same time. (A just-issued id has no other
        request; a move does not need this: two moves of one session
        delete it from the same tree, and conflict there.)

        Two such requests may file the key in different places: in two
        generations of its placement's trees, when one sees a generation
        the other does not; in two slices, when one's clock is past the
        slice end and the other's is not, or when one snapshot is older
        than a session the other found and moved. So the index of slices
        and the key's place in each slice are read as current. (ZODB
        checks nothing on a record the transaction itself writes: two
        requests that each open a slice write the index, and conflict on
        the container's record instead, see ``_tree_for``.)

        A move is not guarded against a store that committed first into a
        newer slice, at the moment the session expires: one request still
        finds the session and moves it, the other, a second later, stores
        a new one.
        """
        slices = self._slices
        read_current(slices)
        for slice_ in slices.values():
            slice_.guard(key)

    def __delitem__(self, client_id):
        key = client_key(client_id)
        found = self._find(key, clock.now())
        if found is None:
            raise KeyError(client_id)
        del found[1][key]

    def _touch(self, key, end, tree, data, now):
        data.setLastAccessTime(now)
        length = expiry.slice_length(self.timeout, self.resolution)
        if expiry.slice_end(now, length) != end:
            del tree[key]
            self._tree_for(now)[key] = data

    def _tree_for(self, now):
        length = expiry.slice_length(self.timeout, self.resolution)
        end = expiry.slice_end(now, length)
        tree = self._slices.get(end)
        if tree is None:
            tree = self._slices[end] = PlacedSlice(
                self._new_slice_widths())
            # The container's own record (no conflict resolution) is
            # written too, so that two requests opening slices at once
            # conflict: BTrees would merge their changes to the index, and
            # neither would see the other's session (see _guard).
            self._last_opened = end
            if not self.disable_implicit_sweeps:
                self._drop_expired_slices(now, IMPLICIT_SWEEP_LIMIT)
        return tree

    def _new_slice_widths(self):
        # Each placement as wide as it was in the newest slice: traffic
        # changes little from one slice to the next, and a placement that
        # needs more grows. (None: one tree each.)
        try:
            newest = self._slices[self._slices.maxKey()]
        except ValueError:
            return None
        if not isinstance(newest, PlacedSlice):
            return None         # an earlier version's
        return newest.next_widths()

    # -- expiry ---------------------------------------------------------

    def _drop_expired_slices(self, now, limit=None):
        oldest = expiry.oldest_live_end(now, self.timeout, self.resolution)
        if oldest is None:
            return 0
        ends = list(self._slices.keys(max=oldest))[:limit]
        for end in ends:
            del self._slices[end]
        return len(ends)

    def sweep(self):
        """Remove expired sessions (see ``sweep_expired``); returns None,
        as zope.session's does."""
        self.sweep_expired()

    def sweep_expired(self):
        """Remove expired sessions, a whole time slice at a time, and
        return the number of slices removed.

        A slice goes once its newest session has expired, so a session may
        stay stored (never returned) up to one slice length after it
        expires. Nothing of the live sessions is read and the expired ones
        are not even loaded (``zodbsession pack`` reclaims their space).
        """
        now = clock.now()
        expiry.swept(self, now)
        return self._drop_expired_slices(now)

    def count(self):
        """The number of sessions not yet swept (reads every bucket)."""
        return sum(len(tree) for tree in self._slices.values())

    # -- inspection (IInspectableContainer: stats, principals) ----------

    def peek(self, client_id):
        """The client's live SessionData without recording an access (a
        listing must not write), or None."""
        found = self._live(client_id, clock.now())
        return None if found is None else found[2]

    def slice_counts(self):
        """[(slice end, sessions)] of the slices not yet swept, oldest
        first (reads every bucket, never a session)."""
        return [(end, len(slice_)) for end, slice_ in self._slices.items()]

    def sample_records(self, limit):
        """Up to ``limit`` SessionData records, newest slices first, as
        unloaded ghosts (their ``_p_oid`` names the record)."""
        found = []
        for end in reversed(list(self._slices.keys())):
            for _key, data in self._slices[end].items():
                if len(found) >= limit:
                    return found
                found.append(data)
        return found
