"""One bad-input case (shared by bad_input_cases.py and red_team_cases.py)."""

__all__ = ["Case"]


class Case:
    """One bad input: ``setup(tmp)`` prepares files and returns the hpctrain arguments."""

    def __init__(self, name, what, setup, expect, ranks=1):
        self.name, self.what, self.setup, self.expect, self.ranks = name, what, setup, expect, ranks
