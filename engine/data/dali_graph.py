"""The DALI graph of one split: external inputs (file bytes and each sample's decisions) → uint8 HWC.

Training: ``decoders.image_slice`` at the planned window → ``resize`` to the crop size → flip by the
planned flag → [AutoAugment, its draws fed in]. Validation: ``decoders.image`` → ``resize`` of the
shorter side → centre crop, both sizes fed in as torchvision rounds them. ``device_id`` None is DALI's CPU-only mode; a card makes the decoder
``mixed`` (nvJPEG on CUDA, Cambricon's on MLU) and the later operators run on the card.
"""

from __future__ import annotations

import warnings
from types import ModuleType
from typing import Any, Optional

AA_FILL = 128  # DALI's ImageNet AutoAugment fill (grey), as NVIDIA's DALI recipe uses


def build_pipeline(src: Any, dali: ModuleType, device_id: Optional[int]) -> tuple[Any, Any]:
    """A built pipeline for `src` (a DaliBatches), and (sub-policies, stages) when AutoAugment is on."""
    fn, types = dali.fn, dali.types
    interp = {"bilinear": types.INTERP_LINEAR, "bicubic": types.INTERP_CUBIC}[src.interpolation]
    policy = _policy() if src.train and src.autoaugment else None
    decoder = "cpu" if device_id is None else "mixed"

    @dali.pipeline_def(enable_conditionals=policy is not None)
    def graph() -> Any:
        files = fn.external_source(name="files", dtype=types.UINT8, ndim=1)
        if not src.train:
            images = fn.decoders.image(files, device=decoder, output_type=types.RGB, adjust_orientation=False)
            size_hw = fn.external_source(name="resize_hw", dtype=types.FLOAT, ndim=1)
            crop_y = fn.external_source(name="crop_y", dtype=types.FLOAT, ndim=0)
            crop_x = fn.external_source(name="crop_x", dtype=types.FLOAT, ndim=0)
            images = fn.resize(images, size=size_hw, interp_type=interp, antialias=True)
            return fn.crop_mirror_normalize(
                images, crop=(src.size, src.size), crop_pos_x=crop_x, crop_pos_y=crop_y,
                dtype=types.UINT8, output_layout="HWC",
            )  # fmt: skip
        anchor = fn.external_source(name="anchor", dtype=types.FLOAT, ndim=1)
        shape = fn.external_source(name="shape", dtype=types.FLOAT, ndim=1)
        mirror = fn.external_source(name="mirror", dtype=types.INT32, ndim=0)
        # the own pipeline reads no EXIF orientation either: the planned window is in stored pixels
        images = fn.decoders.image_slice(
            files, anchor, shape, device=decoder, output_type=types.RGB, normalized_anchor=False,
            normalized_shape=False, adjust_orientation=False,
        )  # fmt: skip
        images = fn.resize(images, resize_x=src.size, resize_y=src.size, interp_type=interp, antialias=True)
        if policy is None:
            return fn.crop_mirror_normalize(images, mirror=mirror, dtype=types.UINT8, output_layout="HWC")
        images = fn.flip(images, horizontal=mirror)  # the own pipeline flips before AutoAugment
        sub = fn.external_source(name="aa_sub", dtype=types.INT32, ndim=0)
        run = fn.external_source(name="aa_run", dtype=types.FLOAT, ndim=1)
        sign = fn.external_source(name="aa_sign", dtype=types.INT32, ndim=1)
        return _auto_augment(policy, images, sub, run, sign, interp)

    with warnings.catch_warnings():  # DALI's own ImageNet policy still names its deprecated experimental ops
        warnings.simplefilter("ignore", DeprecationWarning)
        pipe = graph(
            batch_size=src.batch_size, num_threads=src.threads, device_id=device_id,
            seed=src.seed & 0x7FFFFFFF, exec_pipelined=False, exec_async=False, prefetch_queue_depth=1,
        )  # fmt: skip  # one batch per run(): asynchronous execution measured no faster on 2 cores
        pipe.build()
    shape_of = None if policy is None else (len(policy.sub_policies), _stages(policy))
    return pipe, shape_of


def _policy() -> Any:
    from nvidia.dali.auto_aug import auto_augment

    with warnings.catch_warnings():  # the policy names DALI's deprecated experimental.equalize
        warnings.simplefilter("ignore", DeprecationWarning)
        return auto_augment.get_image_net_policy(use_shape=False)


def _stages(policy: Any) -> int:
    return max(len(sub) for sub in policy.sub_policies)


def _auto_augment(policy: Any, images: Any, sub: Any, run: Any, sign: Any, interp: Any) -> Any:
    """DALI's ``apply_auto_augment`` with its three random draws (sub-policy, stage coin, magnitude sign)
    taken from the inputs instead of DALI's per-pipeline generator, so they follow (seed, epoch, i)."""
    from nvidia.dali.auto_aug import auto_augment as aa

    probabilities = aa._sub_policy_to_probability_map(policy)[sub]
    bins = aa.signed_bin(aa._sub_policy_to_magnitude_bin_map(policy)[sub], random_sign=sign)
    aug_ids, augmentations = aa._sub_policy_to_augmentation_map(policy)
    aug_ids = aug_ids[sub]
    for stage in range(_stages(policy)):
        if run[stage] < probabilities[stage]:
            kwargs = dict(
                data=images, magnitude_bin=bins[stage], num_magnitude_bins=policy.num_magnitude_bins,
                fill_value=AA_FILL, interp_type=interp,
            )  # fmt: skip
            images = aa._pretty_select(
                augmentations[stage], aug_ids[stage], kwargs, auto_aug_name="apply_auto_augment",
                ref_suite_name="get_image_net_policy",
            )  # fmt: skip
    return images
