"""Market data generator: raw exchange files for demos, tests and benchmarks (see datagen.generator)."""

from __future__ import annotations

from datagen.generator import GenConfig, GenStats, generate

__all__ = ["GenConfig", "GenStats", "generate"]
