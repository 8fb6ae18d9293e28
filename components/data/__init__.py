"""Data-set adapters (CASME II, SAMM, SMIC, MEGC2019, CAS(ME)^3, MMEW, 4DME, official-code folders) and
the manifest helpers.

An adapter is a module with `collect(root, annotations, classes) -> (samples, rejects)`; `ADAPTERS`
maps each `--dataset` name to it. Later stages read manifests through `read_manifest`,
`resolve_frames_dir`, `sample_range` and `list_frames`.
"""
from components.data.manifest import (MANIFEST_COLUMNS, REJECT_COLUMNS, frame_number, list_frames, read_manifest,
                                      resolve_frames_dir, sample_range, stored_frames_dir)

_MODULES = {"casme2": "casme2", "samm": "samm", "smic": "smic", "megc2019": "megc2019", "casme3": "casme3",
            "mmew": "mmew", "4dme": "fourdme", "folder": "folder"}  # a module name cannot start with a digit
ADAPTERS = {name: f"components.data.{module}" for name, module in _MODULES.items()}

__all__ = ["ADAPTERS", "MANIFEST_COLUMNS", "REJECT_COLUMNS", "frame_number", "list_frames", "read_manifest",
           "resolve_frames_dir", "sample_range", "stored_frames_dir"]
