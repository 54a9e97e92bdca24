"""What requests leave to the garbage collector.

A request whose objects refer to each other in cycles is freed only by a
collector pass, and a busy process pays for those passes on every
request; zodbsession's hosts let go of what a request made so that
reference counting frees it. ``cycles_left_by`` shows what is left.
"""
import gc


def cycles_left_by(run, package='zodbsession'):
    """The objects of ``package``'s classes that ``run()`` left in
    reference cycles (unreachable, waiting for the collector)."""
    # Garbage from before: a collection can free what makes more of it
    # unreachable (through weak references' callbacks), so until none.
    for _pass in range(10):
        if not gc.collect():
            break
    was_enabled = gc.isenabled()
    gc.disable()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        run()
        gc.collect()
        return [found for found in gc.garbage
                if type(found).__module__.split('.')[0] == package]
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        if was_enabled:
            gc.enable()
