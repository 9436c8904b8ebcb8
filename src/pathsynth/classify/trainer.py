"""Train one classifier on a tensor set, with a validation split, early stopping and best weights.

Early stopping watches the validation set after every epoch. The default monitor is balanced
accuracy, the number the protocols report and one that class imbalance (herlev) cannot flatter;
with a few dozen validation images it moves in coarse steps, so a tie is broken by the lower
validation loss. ``monitor="loss"`` watches the cross-entropy alone. Training stops after
``patience`` epochs without improvement (never before ``min_epochs``) and the weights of the best
epoch are restored.

The data path is the GAN engine's: the whole set is a uint8 tensor on the device, batches are drawn
by index, augmented there (flips and 90-degree rotations, then the configured colour and stain
jitter, whose RandStainNA statistics are fitted on the training images after the validation split)
and mapped to [-1, 1]. With ``crop_size`` the stored inputs are larger fields: every draw of an
input is a new random crop of it (``crops_per_image`` draws per epoch), and validation averages
each input's grid of crops, exactly as the test does. On CUDA the forward pass runs under bf16 autocast and in channels-last
layout when the config asks for it.

The small-data recipe (``classify/recipe.py``: step schedule, label smoothing, mixup/cutmix, weight
EMA, class-balanced batches) hooks in per batch and per step; each part is off by default, and
with all of them off training is bit-identical to the plain loop. With ``ema_decay`` on, the
weight average is what is validated, kept at the best epoch and returned.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable, Iterable, Iterator

import torch
import torch.nn.functional as F
from sklearn.metrics import balanced_accuracy_score
from torch import nn

from pathsynth.classify.config import ClassifierConfig
from pathsynth.classify.evaluate import predict_probabilities
from pathsynth.classify.finetune import optimiser_groups
from pathsynth.classify.history import EarlyStopping, EpochRecord, TrainingResult
from pathsynth.classify.networks import build_classifier
from pathsynth.classify.recipe import RecipeSteps, balanced_batches
from pathsynth.devices import resolve_device
from pathsynth.errors import ConfigError, DataError
from pathsynth.imaging.augment import ColourAugment, random_dihedral
from pathsynth.imaging.crops import random_crops
from pathsynth.imaging.stain import fit_lab_statistics
from pathsynth.imaging.tensorset import TensorImageSet, to_signed_float


def validation_split(
    labels: torch.Tensor,
    fraction: float,
    generator: torch.Generator,
    groups: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Stratified train/validation indices that keep each group on one side.

    Groups (an image id per patch, or a patient per image) are split per class, the class of a
    group being its first member's label; ``round(fraction * n_groups)`` groups of each class, at
    least one, go to validation. A class with a single group stays entirely in training.

    Args:
        labels: (N,) class index per item.
        fraction: share of each class's groups to hold out, in (0, 1).
        generator: CPU torch generator that picks the groups.
        groups: (N,) group id per item; ``None`` makes every item its own group.

    Returns:
        ``(train_index, validation_index)``, sorted int64 tensors.

    Raises:
        DataError: ``groups`` of the wrong length, or no class with two groups (nothing to hold
            out).
    """
    labels = labels.cpu()
    group_ids = torch.arange(len(labels)) if groups is None else groups.cpu()
    if group_ids.shape != labels.shape:
        raise DataError(f"{len(group_ids)} group ids for {len(labels)} items")
    unique_groups, group_of_item = torch.unique(group_ids, return_inverse=True)
    first_item = torch.full((len(unique_groups),), len(labels), dtype=torch.long)
    first_item.scatter_reduce_(0, group_of_item, torch.arange(len(labels)), reduce="amin")
    group_class = labels[first_item]
    held_out_groups = []
    for class_index in torch.unique(group_class):
        class_groups = torch.nonzero(group_class == class_index).flatten()
        if len(class_groups) < 2:
            continue
        take = min(len(class_groups) - 1, max(1, round(fraction * len(class_groups))))
        order = torch.randperm(len(class_groups), generator=generator)
        held_out_groups.append(class_groups[order[:take]])
    if not held_out_groups:
        raise DataError("no class has two images (or groups): nothing to hold out for validation")
    is_validation = torch.isin(group_of_item, torch.cat(held_out_groups))
    return torch.nonzero(~is_validation).flatten(), torch.nonzero(is_validation).flatten()


def _class_weights(labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    counts = torch.bincount(labels, minlength=num_classes).float()
    weights = torch.where(counts > 0, counts.sum() / (num_classes * counts.clamp(min=1)), 0.0)
    return weights


def _uses_cuda(config: ClassifierConfig) -> bool:
    return resolve_device(config.device).type == "cuda"


def _forward(
    model: nn.Module, uint8_images: torch.Tensor, config: ClassifierConfig
) -> torch.Tensor:
    inputs = to_signed_float(uint8_images)
    if config.channels_last:
        inputs = inputs.contiguous(memory_format=torch.channels_last)
    with torch.autocast("cuda", dtype=torch.bfloat16, enabled=config.bf16 and _uses_cuda(config)):
        return model(inputs)


def train_one_epoch(
    model: nn.Module,
    criterion: nn.Module,
    optimiser: torch.optim.Optimizer,
    batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
    config: ClassifierConfig,
    augment_generator: torch.Generator,
    recipe: RecipeSteps | None = None,
    colour_augment: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> tuple[float, float]:
    """One pass over the training batches, one optimiser step per batch.

    Args:
        model: the network (put in train mode here).
        criterion: the training loss of ``(logits, labels)``.
        optimiser: steps ``model``'s parameters.
        batches: ``(uint8 images, labels)`` on the device, one epoch of them.
        config: its ``augment``, ``bf16`` and ``channels_last`` are used.
        augment_generator: draws the flips and rotations (on the device).
        recipe: mixes each batch (the loss then sees soft targets) and advances the schedule
            and weight average after each step; ``None`` for neither.
        colour_augment: applied to each batch after the flips, before any mixing (its own
            generator, so the flips' draws are the same with or without it); ``None`` for none.

    Returns:
        ``(mean training loss, training accuracy)`` over the augmented batches.
    """
    model.train()
    loss_sum, correct, seen = 0.0, 0, 0
    for images, labels in batches:
        if config.augment:
            images = random_dihedral(images, augment_generator)
        if colour_augment is not None:  # on unmixed images: mixup may turn them into floats
            images = colour_augment(images)
        images, targets = recipe.mix(images, labels) if recipe is not None else (images, labels)
        logits = _forward(model, images, config).float()
        loss = criterion(logits, targets)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        if recipe is not None:
            recipe.after_step(model)
        loss_sum += loss.item() * len(labels)
        correct += int((logits.argmax(dim=1) == labels).sum())
        seen += len(labels)
    return loss_sum / seen, correct / seen


@torch.no_grad()
def evaluate(
    model: nn.Module, validation_set: TensorImageSet, config: ClassifierConfig
) -> tuple[float, float, float]:
    """Score ``model`` (put in eval mode) on a validation set, in batches of ``eval_batch_size``
    (with ``crop_size``, each input's grid of crops averaged, as at test time).

    Returns:
        ``(mean unweighted cross-entropy, accuracy, balanced accuracy)``; a class absent from the
        set does not count in the balanced accuracy.
    """
    model.eval()
    images, labels = validation_set.images, validation_set.labels
    if config.crop_size:  # the mean probability over each input's grid of crops
        probabilities = predict_probabilities(
            model, images, config.eval_batch_size, False, config.crop_size, config.grid_stride
        ).to(labels.device)
        loss = float(F.nll_loss(probabilities.clamp_min(1e-12).log(), labels))
        predicted = probabilities.argmax(dim=1)
    else:
        logits = torch.cat(
            [
                _forward(model, images[start : start + config.eval_batch_size], config).float()
                for start in range(0, len(images), config.eval_batch_size)
            ]
        )
        loss = float(F.cross_entropy(logits, labels))
        predicted = logits.argmax(dim=1)
    accuracy = float((predicted == labels).float().mean())
    with warnings.catch_warnings():
        # A class absent from a small validation set: recall is averaged over the present ones.
        warnings.simplefilter("ignore", UserWarning)
        balanced = float(balanced_accuracy_score(labels.cpu().numpy(), predicted.cpu().numpy()))
    return loss, accuracy, balanced


def _train_and_validation_sets(
    train_set: TensorImageSet,
    config: ClassifierConfig,
    validation_set: TensorImageSet | None,
    groups: torch.Tensor | None,
) -> tuple[TensorImageSet, TensorImageSet]:
    """The sets to train and validate on (held out of ``train_set`` if none is given), checked."""
    if validation_set is None:
        split_generator = torch.Generator().manual_seed(config.seed + 3)
        train_index, validation_index = validation_split(
            train_set.labels, config.validation_fraction, split_generator, groups
        )
        validation_set = train_set.subset(validation_index.to(train_set.labels.device))
        train_set = train_set.subset(train_index.to(train_set.labels.device))
    elif list(validation_set.class_names) != list(train_set.class_names):
        raise DataError("the validation set's class names differ from the training set's")
    if len(train_set) < 2:
        raise DataError(f"a classifier needs at least 2 training images, got {len(train_set)}")
    if len(validation_set) == 0:
        raise DataError("the validation set is empty")
    missing = [name for name, count in train_set.class_counts().items() if count == 0]
    if missing:
        raise DataError(f"no training image of class(es) {', '.join(missing)}")
    height, width = train_set.images.shape[-2:]
    if config.crop_size > min(height, width, *validation_set.images.shape[-2:]):
        raise ConfigError(
            f"crop_size {config.crop_size} is larger than the {width}x{height} inputs; lower "
            "classifier.crop_size or enlarge preprocess.size"
        )
    if config.augment and not config.crop_size and height != width:
        raise ConfigError("flip/rotation augmentation needs square images (or a crop_size)")
    if config.colour.enabled and train_set.images.shape[1] != 3:
        raise ConfigError("colour augmentation needs RGB images (3 channels)")
    return train_set, validation_set


def _colour_augment(
    train_set: TensorImageSet, config: ClassifierConfig, device: torch.device
) -> ColourAugment | None:
    """The configured colour augmentation (``None`` when off), seeded with ``seed + 4``.

    RandStainNA's LAB statistics come from ``train_set``, the images trained on (the validation
    images are already held out).
    """
    if not config.colour.enabled:
        return None
    statistics = fit_lab_statistics(train_set.images) if config.colour.randstain_p > 0 else None
    generator = torch.Generator(device=device).manual_seed(config.seed + 4)
    return ColourAugment(config.colour, generator, statistics)


def _seeded_model(
    model: nn.Module | None,
    config: ClassifierConfig,
    train_set: TensorImageSet,
    device: torch.device,
) -> nn.Module:
    """``model``, or a new one ``config`` builds after seeding torch, placed on ``device``."""
    torch.manual_seed(config.seed)
    if model is None:
        num_classes = len(train_set.class_names)
        model = build_classifier(config, num_classes, in_channels=train_set.images.shape[1])
    model = model.to(device)
    if config.channels_last:
        model = model.to(memory_format=torch.channels_last)
    return model


def _training_criterion(
    config: ClassifierConfig, train_set: TensorImageSet, device: torch.device
) -> nn.Module:
    """Cross-entropy, class-weighted and label-smoothed as ``config`` asks.

    Class weights are the inverse class frequency of the batches the loss sees: with
    ``sampler="balanced"`` every class is drawn equally often, so none apply (the sampler already
    does what ``class_weighted_loss`` does; both would weight rare classes twice). With soft
    (mixup/cutmix) targets torch averages a weighted loss over the batch, with hard targets over
    the batch's summed weights.
    """
    num_classes = len(train_set.class_names)
    class_weights = (
        _class_weights(train_set.labels.cpu(), num_classes).to(device)
        if config.class_weighted_loss and config.sampler == "shuffle"
        else None
    )
    return nn.CrossEntropyLoss(weight=class_weights, label_smoothing=config.label_smoothing)


def _epoch_batches(
    train_set: TensorImageSet,
    config: ClassifierConfig,
    generator: torch.Generator,
    drop_last: bool,
    crop_generator: torch.Generator,
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """One epoch of ``(uint8 images, labels)``: shuffled, or class-balanced draws (``sampler``).

    Each input is drawn ``crops_per_image`` times per epoch; with ``crop_size`` every draw is a
    new random crop of it (positions from ``crop_generator``, on the device).
    """
    labels = train_set.labels.repeat(config.crops_per_image)
    if config.sampler == "shuffle":
        order = torch.randperm(len(labels), generator=generator).to(labels.device)
        stop = len(labels) - (len(labels) % config.batch_size if drop_last else 0)
        indices: Iterable[torch.Tensor] = (
            order[start : start + config.batch_size] for start in range(0, stop, config.batch_size)
        )
    else:
        indices = balanced_batches(labels, config.batch_size, generator, drop_last)
    for index in indices:
        index = index % len(train_set)
        images = train_set.images[index]
        if config.crop_size:
            images = random_crops(images, config.crop_size, crop_generator)
        yield images, train_set.labels[index]


def _epochs(
    model: nn.Module,
    train_set: TensorImageSet,
    validation_set: TensorImageSet,
    config: ClassifierConfig,
    device: torch.device,
) -> Iterator[tuple[EpochRecord, nn.Module]]:
    """Train epoch after epoch, up to ``config.epochs``, yielding each one's record and the
    network it scored (``model``, or its weight average when ``ema_decay`` is on)."""
    optimiser = torch.optim.AdamW(
        optimiser_groups(model, config), lr=config.learning_rate, weight_decay=config.weight_decay
    )
    criterion = _training_criterion(config, train_set, device)
    order_generator = torch.Generator().manual_seed(config.seed + 1)
    augment_generator = torch.Generator(device=device).manual_seed(config.seed + 2)
    colour_augment = _colour_augment(train_set, config, device)
    crop_generator = torch.Generator(device=device).manual_seed(config.seed + 5)
    draws = len(train_set) * config.crops_per_image
    drop_last = draws > config.batch_size
    steps_per_epoch = draws // config.batch_size if drop_last else 1
    recipe = RecipeSteps(config, model, optimiser, len(train_set.class_names), steps_per_epoch)
    scored = recipe.scored_model(model)
    for epoch in range(1, config.epochs + 1):
        started = time.perf_counter()
        batches = _epoch_batches(train_set, config, order_generator, drop_last, crop_generator)
        train_loss, train_accuracy = train_one_epoch(
            model,
            criterion,
            optimiser,
            batches,
            config,
            augment_generator,
            recipe,
            colour_augment,
        )
        validation_loss, validation_accuracy, validation_balanced = evaluate(
            scored, validation_set, config
        )
        record = EpochRecord(
            epoch=epoch,
            train_loss=train_loss,
            train_accuracy=train_accuracy,
            validation_loss=validation_loss,
            validation_accuracy=validation_accuracy,
            validation_balanced_accuracy=validation_balanced,
            seconds=time.perf_counter() - started,
        )
        yield record, scored


def _epoch_line(record: EpochRecord) -> str:
    return (
        f"epoch {record.epoch:3d}  train loss {record.train_loss:.4f}  "
        f"val loss {record.validation_loss:.4f}  "
        f"val bal-acc {record.validation_balanced_accuracy:.3f}"
    )


def _check_finite(record: EpochRecord) -> None:
    if not math.isfinite(record.train_loss):
        raise ConfigError(
            f"training diverged (loss {record.train_loss} at epoch {record.epoch}); "
            "lower learning_rate"
        )


def train_classifier(
    train_set: TensorImageSet,
    config: ClassifierConfig,
    validation_set: TensorImageSet | None = None,
    groups: torch.Tensor | None = None,
    model: nn.Module | None = None,
    log: Callable[[str], None] | None = None,
) -> TrainingResult:
    """Train a classifier with early stopping on a validation set and restore its best weights.

    Args:
        train_set: training images and labels (real, affine, synthetic or a mix).
        config: the resolved classifier configuration.
        validation_set: images to validate on; ``None`` holds out ``config.validation_fraction``
            of ``train_set`` per class, keeping each of ``groups`` on one side.
        groups: (N,) group id per training item (image id per patch, patient per image); only
            used when ``validation_set`` is ``None``.
        model: a network to train instead of the one ``config.network`` builds.
        log: called with one line per epoch.

    Returns:
        The trained model (the best epoch's weight average when ``ema_decay`` is on) with its
        per-epoch history.

    Raises:
        DataError: fewer than 2 training images, a class without training images, class names that
            differ between the sets, an empty validation set, or a validation split with nothing to
            hold out.
        ConfigError: augmentation asked for on non-square images, colour augmentation on images
            that are not RGB, a CUDA device that is absent, or
            a training loss that becomes NaN / infinite (diverged).
        CheckpointError: a ``weights_path`` the network refuses.
    """
    started = time.perf_counter()
    device = resolve_device(config.device)
    train_set, validation_set = _train_and_validation_sets(
        train_set, config, validation_set, groups
    )
    train_set, validation_set = train_set.to(device), validation_set.to(device)
    model = _seeded_model(model, config, train_set, device)
    result = TrainingResult(
        model=model,
        config=config,
        class_names=list(train_set.class_names),
        train_size=len(train_set),
        validation_size=len(validation_set),
    )
    early_stopping = EarlyStopping(config)
    for record, scored_model in _epochs(model, train_set, validation_set, config, device):
        result.history.append(record)
        if log is not None:
            log(_epoch_line(record))
        _check_finite(record)
        if early_stopping.should_stop(record, scored_model):
            result.stopped_early = True
            break
    result.best_epoch = early_stopping.restore_best(model)
    result.seconds = time.perf_counter() - started
    return result
