"""``python -m prodgen ...`` is the ``prodgen`` command; ``torchrun -m prodgen train MODEL`` runs it in several
processes."""
import sys

from prodgen.cli import main

sys.exit(main())
