"""The blinded visual Turing test: choosing and re-encoding its images (``design``) and its
figures from the stored answers (``results``). The tables live in :mod:`pathsynth.catalog.turing`."""
