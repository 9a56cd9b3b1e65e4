"""``python -m prodgen ...`` is the ``prodgen`` command; ``torchrun -m prodgen train MODEL`` runs it in several processes."""
import sys

from .cli import main

sys.exit(main())
