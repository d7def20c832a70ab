"""The request bodies: one pydantic model each, so the OpenAPI document (/openapi.json) is generated and a
malformed body is refused before a route runs. Sizes are bounded here and in cnnlab/schema/limits.py."""
from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CheckRequest(Body):
    model: Any = Field(description="a layer list, {layers: [...]}, or a registered name")
    data: str = Field("cifar10", max_length=500, description="data set name or image-folder path")


class FixRequest(Body):
    model: Any = Field(description="a layer list or {layers: [...]}")
    data: str = Field("cifar10", max_length=500, description="data set name or image-folder path")
    rule: str = Field(max_length=100, description="the finding's rule, as /api/check gave it")
    layers: list[str] = Field(max_length=1000, description="the finding's layers, as /api/check gave them")


class TextRequest(Body):
    text: str = Field(max_length=1_000_000)
    data: str = Field("cifar10", max_length=500, description="the data set a registered name is written out for")


class ModelRequest(Body):
    model: Any
    name: str = Field("model", max_length=100)
    data: str = Field("cifar10", max_length=500, description="the data set a registered name is written out for")


class WeightsRequest(Body):
    model: Any = Field(description="a layer list, {name, layers}, or a registered name")
    data: str = Field("cifar10", max_length=500, description="data set name or image-folder path")


class RunRequest(Body):
    config: dict = Field(description="a training config: the same keys as a config file (cnnlab schema config)")


class TagRequest(Body):
    tags: list[str] = Field(max_length=50)


class CompareRequest(Body):
    ids: list[str] = Field(min_length=1, max_length=20)


class SeeRequest(Body):
    # no max_length: an upload over the limit is answered 413 with the limit (the body limit bounds it anyway)
    image: str | None = Field(None, description="a data: URL (PNG/JPEG)")
    test_index: int | None = Field(None, ge=0, le=10_000_000)
    top_k: int = Field(5, ge=1, le=100)


class LayerRequest(SeeRequest):
    layer: str = Field(max_length=50, description="a top-level layer's index, as See lists them: '1', '2', ...")


class UnitRequest(SeeRequest):
    layer: str = Field(max_length=50, description="a top-level layer's index, as See lists them: '1', '2', ...")
    channel: int = Field(ge=0, le=1_000_000, description="its channel (a vector layer: its unit)")
    y: int | None = Field(None, ge=0, le=100_000, description="row in the layer's map; none: the strongest")
    x: int | None = Field(None, ge=0, le=100_000)


class EvidenceRequest(SeeRequest):
    class_index: int = Field(ge=0, le=1_000_000, description="the class whose evidence to show")


class GatysRequest(Body):
    # uploads have no max_length: over the limit is answered 413 with the limit (the body limit bounds them)
    content: str | None = Field(None, description="the photo, a data: URL (PNG/JPEG)")
    run: str | None = Field(None, max_length=200, description="or a finished run whose test image to use")
    test_index: int | None = Field(None, ge=0, le=10_000_000)
    style: str | None = Field(None, description="the style image, a data: URL")
    style_name: str | None = Field(None, max_length=50, description="or a bundled style (GET /api/style/styles)")
    size: int = Field(128, ge=16, le=256, description="the longer side, px")
    steps: int = Field(60, ge=1, le=500, description="Adam steps")
    every: int = Field(5, ge=1, le=500, description="send the image every so many steps")
    style_weight: float = Field(10.0, ge=0, le=1e6)
    content_weight: float = Field(1.0, ge=0, le=1e6)


class ApplyStyleRequest(Body):
    image: str | None = Field(None, description="the photo, a data: URL (PNG/JPEG)")
    run: str | None = Field(None, max_length=200, description="or a finished run whose test image to use")
    test_index: int | None = Field(None, ge=0, le=10_000_000)
    nets: list[str] = Field(min_length=1, max_length=8, description="style nets in order (GET /api/style/nets)")
    size: int = Field(256, ge=16, le=256, description="the longer side, px")


class ContentRequest(Body):
    run: str = Field(max_length=200, description="a finished run")
    test_index: int = Field(ge=0, le=10_000_000, description="which of its test images")
    size: int = Field(128, ge=16, le=256, description="the longer side, px")


class RescueRequest(Body):
    run: str = Field(min_length=1, max_length=200, description="the run to rescue (its id, as Runs lists it)")
    budget: float = Field(15, ge=2, le=500, description="epochs of the run's training set for the search and "
                          "the final run (at least 2: one for the final run, one for a trial)")
    change_architecture: bool = Field(False, description="also try batchnorm, padding and wider convs")
