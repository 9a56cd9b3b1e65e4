"""The course's networks, one file per family (lessons 01-11), each ending with its ``SPECS``; the image-model
protocol (``protocol``) and the registry of specs (``registry``). May import the engine, ``metrics``,
``catalog``, ``checkpoints`` and ``paths``; never ``evaluation``, ``apps`` or ``studies``."""
