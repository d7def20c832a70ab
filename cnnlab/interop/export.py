"""Take a trained run out: ONNX (for onnxruntime, the browser, phones), TorchScript (C++ and Python without
cnnlab), or safetensors with everything needed to rebuild it.

The exported model takes images as they come — float NCHW in [0, 1], or uint8 0..255 with `--input uint8` —
and does the run's normalisation itself, so a user never has to know the training set's mean and std.
Its output is logits (or probabilities, for a model written to end in softmax), one row per image; the
class names ride along in the file's metadata.
"""
from __future__ import annotations

import contextlib
import json
import logging
import os
import warnings
from pathlib import Path

import torch
from torch import nn

from ..version import __version__
from ..errors import UserError
from ..fsutil import atomic_path
from ..rundir import Run
from ..train.trained import TrainedModel

FORMATS = {"onnx": ".onnx", "torchscript": ".torchscript.pt", "safetensors": ".safetensors"}


def export(run_dir: str | os.PathLike, fmt: str = "onnx", out: str | os.PathLike | None = None,
           input_kind: str = "float") -> Path:
    """Write the run's model in `fmt`; returns the file's path (default: inside the run directory)."""
    if fmt not in FORMATS:
        raise UserError(f"export format '{fmt}' is not known; valid: {', '.join(FORMATS)}")
    if input_kind not in ("float", "uint8"):
        raise UserError(f"--input '{input_kind}' is not known; valid: float (0..1), uint8 (0..255)")
    run = Run(run_dir)
    if not (run.dir / "model.safetensors").exists():
        raise UserError(f"{run.dir}: the run has no final weights (status {run.result.get('status')}); finish it "
                        "with `cnnlab resume` first")
    path = Path(out) if out else run.dir / f"model{FORMATS[fmt]}"
    trained = TrainedModel.load(run, device="cpu")
    wrapped = trained.deployable(uint8=input_kind == "uint8")
    example = torch.zeros(2, *trained.input_shape, dtype=torch.uint8 if input_kind == "uint8" else torch.float32)
    output = "probabilities" if trained.outputs_probabilities else "logits"
    metadata = {"classes": json.dumps(trained.classes), "input": _input_doc(trained.input_shape, input_kind),
                "output": output, "cnnlab_version": __version__, "run": run.dir.name}
    if fmt == "onnx":
        _onnx(wrapped, example, path, metadata, output)
    elif fmt == "torchscript":  # what libtorch (C++) loads; torch.jit is deprecated in Python, not there
        with torch.no_grad(), _quiet_torch():
            traced = torch.jit.trace(wrapped, example)
        with atomic_path(path) as tmp, _quiet_torch():
            torch.jit.save(traced, str(tmp), _extra_files={"cnnlab.json": json.dumps(metadata)})
    else:
        from safetensors.torch import save_file
        state = {k: v.detach().cpu().contiguous() for k, v in trained.model.state_dict().items()}
        metadata.update(model=json.dumps(run.config.model), mean=json.dumps(trained.mean),
                        std=json.dumps(trained.std), input_shape=json.dumps(list(trained.input_shape)))
        with atomic_path(path) as tmp:
            save_file(state, str(tmp), metadata=metadata)
    return path


def _input_doc(input_shape, input_kind: str) -> str:
    c, h, w = input_shape
    scale = "uint8 in 0..255" if input_kind == "uint8" else "float32 in [0, 1]"
    return f"image: N x {c} x {h} x {w} (batch, channels, height, width), {scale}, RGB order; normalised inside"


def _onnx(wrapped: nn.Module, example: torch.Tensor, path: Path, metadata: dict, output: str) -> None:
    try:
        import onnx
        import onnxscript  # noqa: F401 — torch's exporter (torch.export-based, the default since 2.9) needs it
    except ImportError:
        raise UserError("ONNX export needs onnx and onnxscript: pip install 'cnnlab[export]'") from None
    batch = torch.export.Dim("batch", min=1, max=1 << 16)
    with atomic_path(path) as tmp, _quiet_torch():
        torch.onnx.export(wrapped, (example,), str(tmp), input_names=["image"], output_names=[output],
                          dynamic_shapes={"image": {0: batch}}, opset_version=18, dynamo=True, verbose=False,
                          external_data=False)
        model = onnx.load(str(tmp))
        for key, value in metadata.items():
            entry = model.metadata_props.add()
            entry.key, entry.value = key, value
        onnx.checker.check_model(model)
        onnx.save(model, str(tmp))


@contextlib.contextmanager
def _quiet_torch():
    """torch's exporters warn about their own deprecations and optional packages; none of it is the user's."""
    logger = logging.getLogger("torch.onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)


def check_onnx(path: Path, run_dir, images: torch.Tensor) -> dict:
    """Run the ONNX file with onnxruntime beside PyTorch on `images` (float in [0, 1]): agreement figures."""
    try:
        import onnxruntime
    except ImportError:
        raise UserError("checking the ONNX file needs onnxruntime: pip install 'cnnlab[export]'") from None
    wrapped = TrainedModel.load(run_dir, device="cpu").deployable()
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    ours = session.run(None, {"image": images.numpy()})[0]
    with torch.no_grad():
        theirs = wrapped(images).numpy()
    return {"images": len(images), "max_abs_diff": float(abs(ours - theirs).max()),
            "same_top1": float((ours.argmax(1) == theirs.argmax(1)).mean())}
