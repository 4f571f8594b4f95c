"""One build step pyproject.toml cannot declare: the shipped model goes into the wheel.

The repository keeps the default model in `models/` (a registry folder that `make default-model` rewrites and
the images copy). A wheel installed anywhere must carry it too, so `build_py` copies that registry's versions
and aliases (nothing else: no locks, counters or temporary folders) into `usqa/service/registry/shipped/`, where
`usqa.service.registry.locate` finds it. Editable installs read `models/` in place instead.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

SHIPPED_SOURCE = Path("models")
SHIPPED_TARGET = Path("usqa", "service", "registry", "shipped")


def shipped_files(source: Path) -> list[Path]:
    """The files of `source` (a registry folder) a reader needs, relative to it."""
    files: list[Path] = []
    for model in sorted(p for p in source.iterdir() if p.is_dir() and not p.name.startswith(".")):
        if (model / "aliases.json").is_file():
            files.append(model.relative_to(source) / "aliases.json")
        for version in sorted(p for p in model.iterdir() if p.is_dir() and p.name.isdigit()):
            # Everything a version publishes (graphs, manifest, card, weights): the registry checks each
            # file its manifest lists, so a wheel without one would not load. Hidden names are its temp files.
            files += [
                f.relative_to(source)
                for f in sorted(version.iterdir())
                if f.is_file() and not f.name.startswith(".")
            ]
    return files


class BuildPyWithShippedModel(build_py):
    def run(self) -> None:
        super().run()
        if self.editable_mode:
            return
        if not SHIPPED_SOURCE.is_dir():
            # The images install the package before they copy models/ (they serve it from USQA_REGISTRY).
            self.warn(f"{SHIPPED_SOURCE}/ is missing: this wheel carries no shipped model")
            return
        target = Path(self.build_lib, SHIPPED_TARGET)
        shutil.rmtree(target, ignore_errors=True)  # a stale copy from an earlier build must not linger
        for file in shipped_files(SHIPPED_SOURCE):
            (target / file).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(SHIPPED_SOURCE / file, target / file)

    def get_outputs(self, include_bytecode: bool = True) -> list[str]:
        outputs = super().get_outputs(include_bytecode)
        if SHIPPED_SOURCE.is_dir() and not self.editable_mode:
            outputs += [str(Path(self.build_lib, SHIPPED_TARGET, f)) for f in shipped_files(SHIPPED_SOURCE)]
        return outputs


setup(cmdclass={"build_py": BuildPyWithShippedModel})
