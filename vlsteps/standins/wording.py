"""How a stand-in is named to the reader: one wording for the notebook banner, the service's log and status, and
`make run`. Kept out of the package's __init__, whose source is part of every stand-in's builder hash."""
from __future__ import annotations

TRAINED_HERE = "trained here on scenes of coloured shapes drawn by code, not on the web"


def what(repo_id: str, learned: bool) -> str:
    """What a stand-in is, in the words the notebook banner, the service and `make run` all use."""
    return f"a tiny copy of {repo_id}, {TRAINED_HERE}" if learned else f"a tiny random-weight copy of {repo_id}"


def summary(learned: dict[str, bool]) -> str:
    """One sentence about several stand-ins ({name: learned}): which learned the world, which are random."""
    def group(names, one, many):
        return f"{', '.join(names)} {'is ' + one if len(names) == 1 else 'are ' + many}" if names else ""
    parts = [group([k for k, v in learned.items() if v], f"a tiny copy {TRAINED_HERE}",
                   f"tiny copies {TRAINED_HERE}"),
             group([k for k, v in learned.items() if not v], "a tiny random-weight copy, whose outputs are gibberish "
                   "by design", "tiny random-weight copies, whose outputs are gibberish by design")]
    return "; ".join(p for p in parts if p) + "."
