"""One run configuration: data, space, search, fine-tuning and validation.

`RunConfig.from_dict` is the one checked entrance, used by `run.py`, the pipeline and the CLI:
every section is built by its own dataclass, so an unknown field or a bad value fails at once
with one line naming the field (and the file, given a `source`). `with_overrides` applies
`key=value` pairs (dotted keys, YAML values), as `archft ... --set search.budget=50` and the
benchmarks pass them.

    parameters:            # a ZenML run configuration's `parameters`, or a file of these alone
      data:       {source: photos, image_size: 128, train_per_class: 30}
      space:      {base: efficientnet_lite0, scope: medium}
      search:     {strategy: reinforce, budget: 200}
      finetune:   {steps: 300}
      validation: {min_train_images_per_class: 10}
      vanilla: true
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import yaml

from archft.core.config import from_plain, require_positive_ints
from archft.core.errors import ArchftError, ConfigError
from archft.data import DataConfig
from archft.finetune import FinetuneConfig
from archft.search import SearchConfig
from archft.space import SpaceConfig

# Section names of earlier archft versions: named in the error a stale config gets.
_RENAMED = {"search_config": "search", "finetune_config": "finetune"}


@dataclass(frozen=True)
class ValidationConfig:
    """What the pipeline's data validation requires (the `validate` step's expectations).

    Attributes:
        min_train_images_per_class: fewest training images a class may have.
        min_eval_images_per_class: fewest validation and test images a class may have.
        min_image_side: smallest width or height of an image file.
        channels: allowed channel counts (None: 1, 3 and 4: grey, RGB, RGBA).
    """

    min_train_images_per_class: int = 10
    min_eval_images_per_class: int = 1
    min_image_side: int = 8
    channels: tuple[int, ...] | None = None

    def __post_init__(self):
        if isinstance(self.channels, list):
            object.__setattr__(self, "channels", tuple(self.channels))
        require_positive_ints(self, "min_train_images_per_class", "min_eval_images_per_class",
                              "min_image_side")

    @classmethod
    def from_dict(cls, data: dict) -> "ValidationConfig":
        return from_plain(cls, data, "validation")


SECTIONS = {"data": DataConfig, "space": SpaceConfig, "search": SearchConfig,
            "finetune": FinetuneConfig, "validation": ValidationConfig}


def _plain(value: Any) -> Any:
    """Dataclass fields as YAML/JSON data (tuples become lists)."""
    if dataclasses.is_dataclass(value):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


@dataclass(frozen=True)
class RunConfig:
    """Everything a run is configured by; each section is that part's own config."""

    data: DataConfig = field(default_factory=DataConfig)
    space: SpaceConfig = field(default_factory=SpaceConfig)
    search: SearchConfig = field(default_factory=SearchConfig)
    finetune: FinetuneConfig = field(default_factory=FinetuneConfig)
    validation: ValidationConfig = field(default_factory=ValidationConfig)
    vanilla: bool = True

    @classmethod
    def from_dict(cls, data: Any, source: str | None = None) -> "RunConfig":
        """Builds and checks a run configuration from plain data; missing sections take their
        defaults.

        Args:
            data: section name -> mapping of fields (and `vanilla`).
            source: the file it came from, named in errors.

        Raises:
            ConfigError: one line naming the file, the section and the field.
        """
        where = f"{source}: " if source else ""
        if not isinstance(data, dict):
            raise ConfigError(f"{where}expected a mapping of {', '.join(SECTIONS)}")
        for key in data:
            if key not in SECTIONS and key != "vanilla":
                hint = f" (renamed to {_RENAMED[key]!r})" if key in _RENAMED else ""
                raise ConfigError(f"{where}unknown parameter {key!r}{hint}; expected "
                                  f"{', '.join([*SECTIONS, 'vanilla'])}")
        sections = {}
        try:
            for name, section in SECTIONS.items():
                value = data.get(name)
                if value is not None and not isinstance(value, dict):
                    raise ConfigError(f"parameters.{name} must be a mapping")
                sections[name] = section.from_dict(value or {})
            vanilla = data.get("vanilla", True)
            if not isinstance(vanilla, bool):
                raise ConfigError(f"vanilla must be true or false, got {vanilla!r}")
        except ArchftError as e:
            raise ConfigError(f"{where}{e}") from None
        except TypeError as e:  # a field of the wrong kind
            raise ConfigError(f"{where}{e}") from None
        return cls(**sections, vanilla=vanilla)

    def to_dict(self) -> dict:
        """Plain data that `from_dict` turns back into this configuration."""
        return _plain(self)

    def with_overrides(self, pairs: Iterable[str], source: str = "--set") -> "RunConfig":
        """This configuration with `key=value` pairs applied: dotted keys name a field
        (`search.early_stop.tau=0.8`), values are YAML (`data.flip=false`,
        `space.kernels=[3,5]`); the result is checked like `from_dict`'s.

        Raises:
            ConfigError: a pair that is not key=value, or names no field.
        """
        plain = self.to_dict()
        for pair in pairs:
            key, eq, text = pair.partition("=")
            if not eq or not key:
                raise ConfigError(f"{source}: expected key=value, got {pair!r}")
            *parents, leaf = key.split(".")
            node = plain
            for part in parents:
                if not isinstance(node.get(part), dict):
                    raise ConfigError(f"{source}: {key!r} names no field of the run "
                                      "configuration")
                node = node[part]
            if leaf not in node:
                raise ConfigError(f"{source}: {key!r} names no field of the run configuration")
            try:
                node[leaf] = yaml.safe_load(text)
            except yaml.YAMLError:
                raise ConfigError(f"{source}: {pair!r}: the value is not YAML") from None
        return RunConfig.from_dict(plain, source)


def read_config_file(path: str | Path) -> Any:
    """A YAML configuration file, parsed.

    Raises:
        ConfigError: the file is missing or not YAML.
    """
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"config file not found: {p}")
    try:
        return yaml.safe_load(p.read_text())
    except yaml.YAMLError as e:
        raise ConfigError(f"{p} is not valid YAML: {str(e).splitlines()[0]}") from None


def load_run_config(path: str | Path, overrides: Iterable[str] = ()) -> RunConfig:
    """A run configuration from a YAML file: a ZenML run configuration (its `parameters`) or
    a file of the sections alone, then `overrides`.

    Raises:
        ConfigError: the file is missing, not YAML, or does not check.
    """
    data = read_config_file(path)
    if isinstance(data, dict) and isinstance(data.get("parameters"), dict):
        data = data["parameters"]
    config = RunConfig.from_dict(data, str(path))
    return config.with_overrides(overrides) if overrides else config
