"""A process's bounded memory of answers found lately.

What a returning client sends again (its id, its cookies, its Cookie
header) is checked or worked out once, then found again. Every such
memory is bounded the same way: at most ``limit`` entries and, given a
``budget``, at most that much cost in all; full, it is emptied and starts
again, so a miss only costs the work it spared.
"""


class Remembered(dict):
    """key -> answer, bounded (see the module). Reads are a dict's;
    entries go in through ``remember``."""

    cost = 0

    def __init__(self, limit, budget=None):
        super().__init__()
        self.limit = limit
        self.budget = budget

    def remember(self, key, answer, cost=0):
        # (Threads remembering at once may miscount an entry or two until
        # the next emptying: the bound stays one of that order.)
        if len(self) >= self.limit or (
                self.budget is not None and self.cost + cost > self.budget):
            self.clear()
            self.cost = 0
        self[key] = answer
        self.cost += cost
