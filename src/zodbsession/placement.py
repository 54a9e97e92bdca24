"""Placement: which of a slice's session trees holds a client's session.

A time slice spreads its sessions over several trees. Were a tree chosen
at random per session, every process of a cluster would add sessions to
every tree, and each new session would invalidate (and sometimes conflict
with) the same few buckets in the other processes' caches, above all in
a young slice whose trees are still small.

So a client id starts with a placement character: the first character of
a URL-safe base64 alphabet position that each thread picks once, at
random, for the ids it issues. The sessions a thread creates then share
one tree per slice, which other processes rarely write. The character is
no secret and needs none: it only says where a session is filed, and the
id's 256 random bits follow it. Ids of other formats place by their
first character too, which is as random as the rest of them.
"""
import random
import string
import threading

ALPHABET = string.ascii_uppercase + string.ascii_lowercase + string.digits \
    + '-_'
_INDEX = {char: index for index, char in enumerate(ALPHABET)}
_home = threading.local()


def home_character():
    """This thread's placement character, chosen on first use."""
    char = getattr(_home, 'char', None)
    if char is None:
        char = _home.char = random.choice(ALPHABET)
    return char


def placement_of(client_id):
    """The placement (0-63) a client id asks for, or None."""
    return _INDEX.get(client_id[:1])
