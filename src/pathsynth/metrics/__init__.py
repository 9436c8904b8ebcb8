"""Metrics: classification results per condition, aggregation over seeds, synthesis quality.

Metrics take arrays and tensors only; they never import the networks, the GAN or the catalog (a
feature extractor takes any ``torch.nn.Module`` it is handed).

- ``classification``: accuracy, balanced accuracy, macro F1, confusion matrix, ROC/AUC
  (scikit-learn).
- ``aggregate``: mean and t confidence interval over seeds; paired comparison of two conditions.
- ``kid``, ``frechet``, ``prdc``: synthesis quality on feature tensors; ``registry`` names them.
- ``memorisation``: nearest real training image of every synthetic image; near-copy flags.
- ``features``: classifier-hook and local-weights Inception feature extractors.
"""
