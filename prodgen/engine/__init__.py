"""The training engine: the loop and its callbacks (``train``), losses, DDP (``distributed``), device and thread
set-up (``runtime``), augmentations. May import ``catalog``, ``metrics``, ``paths``; never models above it."""
