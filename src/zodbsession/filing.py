"""How a time slice files its sessions: trees of each placement's own.

A slice (``PlacedSlice``) holds one ``PlacementTrees`` record for each of
the 64 placements a client id starts with (see zodbsession.placement). A
thread issues ids of its own placement, so the sessions it creates go to
trees that other threads and processes rarely write (they do when they
move, replace or delete a session of one of its clients, or when their
placement is the same: 64 characters go round): the trees stay in its
connection's cache, other processes' commits seldom invalidate them, and
a new session seldom reads anything from the storage. (Over ZEO a read
is a round trip to the server.) Any process finds a returning client's
session through the placement of its id.

Within a placement the key's digest chooses the tree, and there are
enough trees that each holds a few sessions: such a tree is a single
record (BTrees keep a tree of one bucket in the tree's own record), so a
new session writes its own record and its tree's, and no tree node is
read to check it or split. A placement's trees grow with its traffic:
when one fills past TREE_GROWS_AT, the placement adds a generation of
trees GROWTH times as many, where the sessions that follow go. A new
slice gives each placement as many trees as the slice before it needed
(MAX_OPENING_TREES in all at most), so a placement grows once, not in
every slice. The request that opens a slice makes every placement's
record: other processes load each once.
"""
import persistent
from BTrees.OOBTree import OOBTree

# Placements: the first byte of a client key (zodbsession.container).
PLACEMENTS = 64
# A new session filed in a tree already holding this many makes its
# placement add a generation GROWTH times wider, where the sessions that
# follow go. (An OOBTree keeps up to 30 in its one record; at 16 most
# trees of a generation are still single records.)
TREE_GROWS_AT = 16
GROWTH = 8
# The most trees a placement's generation has: past 16 sessions each
# (65,536 sessions of one placement in one slice) its trees hold more,
# and past 30 they split. (A placement grows only as its own traffic
# needs: a generation this wide is made by the request of the 8,000th
# or so session of one placement in one slice, in about 50 ms.)
MAX_WIDTH = GROWTH ** 4
# The most trees a new slice is made with, all placements together: one
# placement at its widest and a tree for each other one. (The request
# that opens the slice makes them; a placement held narrower grows again
# within the slice, a generation at a time.)
MAX_OPENING_TREES = MAX_WIDTH + PLACEMENTS - 1
# A placement of a new slice has as many trees as the same placement of
# the slice before needed for this many sessions per tree ...
SESSIONS_PER_TREE = 4
# ... as estimated from this many trees of each generation (counting
# every tree would read them all).
SAMPLED_TREES = 4


def tree_index(key):
    """The number that chooses the tree of a generation that files
    ``key`` (modulo the generation's width): its digest bytes after the
    placement."""
    return key[1] | key[2] << 8


def read_current(obj):
    """Have ZODB check at commit that ``obj`` is still as this transaction
    read it (a new object has nothing to check)."""
    jar = obj._p_jar
    if jar is not None and obj._p_oid is not None:
        obj._p_activate()       # a ghost's serial is not yet known
        jar.readCurrent(obj)


def _trees(width):
    return tuple(OOBTree() for _tree in range(width))


class PlacementTrees(persistent.Persistent):
    """The trees of one placement in one slice, in generations each
    GROWTH times wider than the one before; new sessions go to the
    newest. A key is filed in one generation only (see ``guard``).

    ``index`` is the key's ``tree_index``: the slice works it out once
    for a key.
    """

    def __init__(self, width=1):
        self.generations = (_trees(width),)

    def get(self, key, index):
        # Newest generation first: it is the widest, and holds most of
        # the placement's sessions.
        for trees in reversed(self.generations):
            data = trees[index % len(trees)].get(key)
            if data is not None:
                return data
        return None

    def add(self, key, index, data):
        """File ``key`` (in no generation) in the newest generation."""
        generations = self.generations
        trees = generations[-1]
        width = len(trees)
        tree = trees[index % width]
        tree[key] = data
        if width < MAX_WIDTH and len(tree) > TREE_GROWS_AT:
            self.generations = generations + (_trees(width * GROWTH),)

    def remove(self, key, index):
        for trees in reversed(self.generations):
            tree = trees[index % len(trees)]
            if key in tree:
                del tree[key]
                return
        raise KeyError(key)

    def guard(self, key, index):
        """Make the current transaction fail with a conflict if another
        files ``key`` here at the same time (see
        PersistentSessionDataContainer._guard).

        It reads as current this record (a new generation changes it:
        one who sees more generations files ``key`` in a newer one) and
        the key's tree in every generation (where one who sees as many,
        or fewer, files it).

        ZODB checks nothing on a record the transaction itself writes:
        a transaction that filed other keys in one of these trees and
        grew the placement, then files ``key`` (batch code: a request
        files one session per container), is checked by BTrees' conflict
        resolution only, which merges different keys.
        """
        read_current(self)
        for trees in self.generations:
            read_current(trees[index % len(trees)])

    def trees(self):
        return [tree for trees in self.generations for tree in trees]

    def next_width(self):
        """How many trees the placement starts the next slice with:
        enough for the sessions it holds here, estimated from
        SAMPLED_TREES trees of each generation."""
        generations = self.generations
        if len(generations) == 1 and len(generations[0]) == 1:
            # One tree that never filled: one is enough (and no tree is
            # read for the many placements no thread uses).
            return 1
        estimate = 0
        for trees in generations:
            sample = trees[:SAMPLED_TREES]
            estimate += (sum(len(tree) for tree in sample) * len(trees)
                         // len(sample))
        width = 1
        while width < MAX_WIDTH and estimate > width * SESSIONS_PER_TREE:
            width *= GROWTH
        return width


class PlacedSlice(persistent.Persistent):
    """The sessions of one time slice: a mapping of client keys, filed by
    their placement (the key's first byte). The record never changes
    once made: a placement that grows changes its own."""

    def __init__(self, widths=None):
        if widths is None:
            widths = (1,) * PLACEMENTS
        self.placements = tuple(PlacementTrees(width) for width in widths)

    def get(self, key, default=None):
        data = self.placements[key[0] % PLACEMENTS].get(
            key, key[1] | key[2] << 8)      # (tree_index, written out)
        return default if data is None else data

    def __setitem__(self, key, data):
        """File ``key`` (in no generation of its placement)."""
        self.placements[key[0] % PLACEMENTS].add(key, tree_index(key), data)

    def __delitem__(self, key):
        self.placements[key[0] % PLACEMENTS].remove(key, tree_index(key))

    def guard(self, key):
        """See PlacementTrees.guard (this record never changes: it needs
        no reading as current)."""
        self.placements[key[0] % PLACEMENTS].guard(key, tree_index(key))

    def _trees(self):
        return [tree for trees in self.placements for tree in trees.trees()]

    def __len__(self):
        return sum(len(tree) for tree in self._trees())

    def items(self):
        for tree in self._trees():
            yield from tree.items()

    def next_widths(self):
        """The trees of each placement of the next slice (see
        PlacementTrees.next_width), MAX_OPENING_TREES at most in all."""
        return opening_widths(
            [trees.next_width() for trees in self.placements])


def opening_widths(widths):
    """``widths`` (powers of GROWTH), the widest narrowed until they add
    up to MAX_OPENING_TREES at most."""
    widths = list(widths)
    while sum(widths) > MAX_OPENING_TREES:
        widest = max(range(len(widths)), key=widths.__getitem__)
        widths[widest] //= GROWTH
    return tuple(widths)
