"""The default mapping files, shipped inside the package so an installed wheel finds them.

`icp mappings init DIR` copies them out for editing; `--mappings DIR` (or `./mappings`)
points the engine at edited copies.
"""

from __future__ import annotations

from importlib.resources import files
from importlib.resources.abc import Traversable

FILES = ("csv.yaml", "salesforce.yaml", "hubspot.yaml", "warehouse.yaml", "icp.yaml")


def default(name: str) -> Traversable:
    """The bundled copy of one mapping file (`csv.yaml`, `icp.yaml`...)."""
    return files(__name__).joinpath(name)
