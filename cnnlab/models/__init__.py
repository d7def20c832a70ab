"""The model language, the registry of named architectures, and the summary."""
from .build import ModuleModel, SpecModel, build_model, resolve_spec
from .registry import list_models, model_spec, register
from . import imagenet  # noqa: F401 — registers torchvision's ImageNet nets (any import of cnnlab.models runs this)

__all__ = ["ModuleModel", "SpecModel", "build_model", "resolve_spec", "list_models", "model_spec", "register"]
