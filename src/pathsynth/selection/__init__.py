"""Selective synthesis: keep a generated image only where criteria computed from the real
training fold accept it (:mod:`.criteria`), with thresholds from one config (:mod:`.config`).

This package takes tensors and a classifier (probabilities, feature vectors, images;
:func:`select_generated` scores every generator's images with them); the experiment's ``select``
stage feeds it and stores its decisions in the catalog. Import from the modules
(``pathsynth.selection.config``, ``.criteria``, ``.generated``): the package itself loads nothing,
so that reading a config does not load torch.
"""
