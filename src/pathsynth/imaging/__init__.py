"""Imaging: decode and validate files, describe them with features, turn them into tensors.

Nothing here touches the catalog; the GAN and the classifiers use it with plain folders too.
"""
