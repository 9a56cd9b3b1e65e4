"""Exercise checks: each prints ``[PASS] name`` or ``[FAIL] name: what is wrong. Hint: ...``.

A check never raises on a wrong answer (an unfinished exercise, an exception inside
the student's code, a wrong shape or value): it explains and returns ``False``, so
the lesson keeps running. One module per lesson group; lessons call ``checks.check_...``.
"""
from .capstone import *  # noqa: F401,F403  lesson 12
from .catalog import *  # noqa: F401,F403  lessons 00-01
from .conditional import *  # noqa: F401,F403  lessons 05-07
from .diffusion import *  # noqa: F401,F403  lesson 11
from .evaluation import *  # noqa: F401,F403  lesson 08
from .gan import *  # noqa: F401,F403  lesson 03
from .latent import *  # noqa: F401,F403  lesson 09
from .stability import *  # noqa: F401,F403  lesson 10
from .text import *  # noqa: F401,F403  lesson 02
from .vae import *  # noqa: F401,F403  lesson 04
