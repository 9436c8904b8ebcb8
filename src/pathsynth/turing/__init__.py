"""The blinded visual Turing test, all of it: its tables and image folders (``store``), choosing
and re-encoding its images (``design``) and its figures from the stored answers (``results``).
The web app's pages (:mod:`pathsynth.serve.turing_pages`) and the ``pathsynth turing`` commands
(:mod:`pathsynth.cli.turing`) only call these."""
