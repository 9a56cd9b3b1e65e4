"""Exercise checks: each prints ``[PASS] name`` or ``[FAIL] name: what is wrong. Hint: ...``.

A check never raises on a wrong answer (an unfinished exercise, an exception inside
the student's code, a wrong shape or value): it explains and returns ``False``, so
the lesson keeps running. One module per lesson group; lessons call ``checks.check_...``.
"""
from prodgen.checks.capstone import *  # noqa: F401,F403  lesson 12
from prodgen.checks.catalog import *  # noqa: F401,F403  lessons 00-01
from prodgen.checks.conditional import *  # noqa: F401,F403  lessons 05-07
from prodgen.checks.diffusion import *  # noqa: F401,F403  lesson 11
from prodgen.checks.evaluation import *  # noqa: F401,F403  lesson 08
from prodgen.checks.flow import *  # noqa: F401,F403  lesson 13
from prodgen.checks.gan import *  # noqa: F401,F403  lesson 03
from prodgen.checks.latent import *  # noqa: F401,F403  lesson 09
from prodgen.checks.stability import *  # noqa: F401,F403  lesson 10
from prodgen.checks.text import *  # noqa: F401,F403  lesson 02
from prodgen.checks.vae import *  # noqa: F401,F403  lesson 04
