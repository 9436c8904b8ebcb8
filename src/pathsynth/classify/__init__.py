"""Classification: networks, training with early stopping, and per-image evaluation.

Takes tensors (``pathsynth.imaging.tensorset.TensorImageSet``); never imports the catalog or the
GAN.

- ``config``: :class:`ClassifierConfig` and the ``smoke`` / ``quick`` / ``paper`` presets.
- ``networks``: the small paper-like CNN and ResNet-18 (random init, optional local weights).
- ``augment``: flips and 90-degree rotations on the device.
- ``trainer``: :func:`train_classifier` with validation split, early stopping, best weights.
- ``evaluate``: class probabilities per held-out image, patches averaged.
"""
