"""The experiment end to end: the paper's protocol and the honest one, conditions, seeds, results.

This stage sits after all others: it reads and writes the catalog, trains the GAN and the
classifiers, computes the metrics and hands a results JSON to the report.
"""
