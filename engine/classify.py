"""`python -m engine.classify IMAGE... --resume CKPT`: top-5 classes of each image, on any device.

ImageNet class names come from torchvision's weight metadata (no download); a checkpoint trained on
another class count shows class indices, or the names stored in the checkpoint (`class_names`).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Optional

from engine.config import add_checkpoint_loading_flags
from engine.console import plain_warnings


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m engine.classify", description=__doc__.splitlines()[0])
    p.add_argument("images", nargs="+", metavar="IMAGE", help="image files (JPEG, PNG, ...)")
    p.add_argument("--resume", required=True, metavar="CKPT", help="checkpoint to classify with")
    add_checkpoint_loading_flags(
        p, "the trained weights, the EMA's (--use-ema runs), or the better of them by recorded top-1"
    )
    p.add_argument("--image-size", type=int, default=224, help="crop size the model was trained at")
    p.add_argument("--device", default="auto", help="mlu, cuda, cpu or auto")
    p.add_argument("--amp", action="store_true", help="mixed precision")
    p.add_argument("--topk", type=int, default=5, help="classes to show per image")
    return p


def class_names(ckpt: dict[str, Any], num_classes: int) -> list[str]:
    stored = ckpt.get("class_names")
    if isinstance(stored, (list, tuple)) and len(stored) == num_classes:
        return [str(n) for n in stored]
    if num_classes == 1000:
        from torchvision.models import ResNet50_Weights

        return list(ResNet50_Weights.IMAGENET1K_V1.meta["categories"])
    return [f"class {i}" for i in range(num_classes)]


def preprocess(path: str, size: int) -> Any:
    """The validation transform: resize to size/0.875, center crop, normalise."""
    import torch
    from PIL import Image
    from torchvision.transforms import v2

    from engine.data import IMAGENET_MEAN, IMAGENET_STD

    with Image.open(path) as img:
        rgb = img.convert("RGB")
    tf = v2.Compose(
        [
            v2.PILToTensor(),
            v2.Resize(int(round(size / 0.875)), antialias=True),
            v2.CenterCrop(size),
            v2.ToDtype(torch.float32, scale=True),
            v2.Normalize(IMAGENET_MEAN, IMAGENET_STD),
        ]
    )
    return tf(rgb)


def main(argv: Optional[Sequence[str]] = None) -> int:
    plain_warnings()
    import torch

    from engine.accelerator import resolve_device
    from engine.checkpoint import CheckpointError, arch_of, load_checkpoint
    from engine.ema import select_weights
    from engine.model import build_model, load_weights_strict, strip_module_prefix

    a = build_parser().parse_args(argv)
    missing = [p for p in a.images if not Path(p).is_file()]
    if missing:
        print(f"error: no such image: {', '.join(missing)}", file=sys.stderr)
        return 2
    try:
        ckpt = load_checkpoint(a.resume, a.trust_checkpoint)
        chosen, _ = select_weights(ckpt, a.weights, a.resume)
    except CheckpointError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    weights = strip_module_prefix(chosen)
    num_classes = int(weights["fc.weight"].shape[0])
    model = build_model(arch_of(ckpt)[0] or "resnet50", "classic", num_classes)
    load_weights_strict(model, weights)
    dev = resolve_device(a.device, a.amp)
    model = model.to(dev.device).eval()
    names = class_names(ckpt, num_classes)
    failed = 0
    for path in a.images:
        try:
            x = preprocess(path, a.image_size).unsqueeze(0).to(dev.device)
        except OSError as exc:
            print(f"{path}: cannot read the image ({exc})", file=sys.stderr)
            failed += 1
            continue
        with torch.no_grad(), dev.autocast():
            probs = model(x).float().softmax(dim=1)[0]
        top = probs.topk(min(a.topk, num_classes))
        print(path)
        for p, i in zip(top.values.tolist(), top.indices.tolist()):
            print(f"  {100 * p:6.2f}%  {i:4d}  {names[i]}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
