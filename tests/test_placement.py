"""Placement characters: where a thread's new sessions are filed."""
import hashlib
import os
import threading

from zodbsession import CookieClientIdManager
from zodbsession import placement
from zodbsession.container import SHARDS
from zodbsession.container import client_key


def characters_of_threads(count):
    found = [None] * count

    def take(index):
        found[index] = placement.home_character()
    threads = [threading.Thread(target=take, args=(index,))
               for index in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return found


def test_threads_of_a_process_take_different_characters():
    chars = characters_of_threads(placement.THREADS_PER_PROCESS)
    assert len(set(chars)) == len(chars)
    # ... and keep theirs.
    assert placement.home_character() == placement.home_character()


def test_a_forked_process_takes_its_own_character():
    # A worker forked from a parent that had chosen one takes its own.
    # The parent's choice is marked with a character no choice gives, so
    # that a child which kept it would say so.
    placement.home_character()
    chosen = placement._home.value
    placement._home.value = (chosen[0], '?')
    try:
        reading, writing = os.pipe()
        pid = os.fork()
        if pid == 0:        # the child: report its character, and leave
            try:
                os.write(writing, placement.home_character().encode())
            finally:
                os._exit(0)
        os.close(writing)
        child = os.read(reading, 8).decode()
        os.close(reading)
        os.waitpid(pid, 0)
        assert child in placement.ALPHABET and len(child) == 1
        # The parent keeps its own.
        assert placement.home_character() == '?'
    finally:
        placement._home.value = chosen


def test_every_character_has_a_tree_of_its_own():
    trees = {index % SHARDS for index in range(len(placement.ALPHABET))}
    assert len(trees) == len(placement.ALPHABET)


def test_ids_are_placed_by_their_first_character():
    manager = CookieClientIdManager(secret='placement-test-secret-0123')
    client_id = manager.generateUniqueId()
    assert client_id[0] == placement.home_character()
    assert client_key(client_id)[0] == placement.ALPHABET.index(client_id[0])
    # Ids of other formats are placed too, and still get 16-byte keys.
    assert len(client_key('some-other-id')) == 16
    assert client_key('\u00e9t\u00e9') != client_key('ete')


def test_keys_made_lately_are_found_again_and_memory_is_bounded():
    # A returning client's key is made once, then found again; what is
    # found is what would be made (the digest of the id, placed).
    from zodbsession import container

    client_id = 'A' + 'k' * 60
    made = client_key(client_id)
    assert client_key(client_id) is made
    assert made[0] == placement.ALPHABET.index('A')
    assert made[1:] == hashlib.blake2b(
        client_id.encode('utf-8'), digest_size=16).digest()[1:]
    # A str subclass (which could equal a remembered id) is made anew,
    # and ids longer than ours are not remembered.

    class Sly(str):
        def __eq__(self, other):
            return True

        def __hash__(self):
            return hash(client_id)
    assert client_key(Sly('B-other')) != made
    long_id = 'C' * (container.MAX_REMEMBERED_ID + 1)
    assert client_key(long_id) == client_key(long_id)
    assert client_key(long_id) is not client_key(long_id)
    # So many other ids that the memory is emptied: the first is made
    # again, equal.
    for number in range(container.REMEMBERED_KEYS):
        client_key(f'id-{number}')
    again = client_key(client_id)
    assert again == made and again is not made
