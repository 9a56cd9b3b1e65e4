"""Evaluation: the leaderboard (one protocol for every model, cached) and models of your own catalog measured
alike. May import ``models`` (through the protocol and the registry), ``metrics``, ``catalog``; never ``apps``."""
