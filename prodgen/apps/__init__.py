"""Applications a user runs: ``generate`` (CSV batches), ``edit``, ``restore`` (with ``degrade``), ``ads`` (banners,
with ``ad_layout``), the ``studio`` and its page, latent paths.
They talk to models only through the protocol and the registry; may import ``evaluation`` and below."""
