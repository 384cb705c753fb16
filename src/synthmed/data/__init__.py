"""Data layer: import raw PNG/DICOM/NIfTI/npz into prepared datasets, split by patient, export."""

import importlib

# Names resolved on first use (PEP 562): ``import synthmed.data.dataset`` (what training needs)
# must not pay for scipy, pulled in by the importer's preprocessing (~0.3 s of start-up).
_WHERE = {
    "PreparedDataset": "dataset", "SynthmedDataset": "dataset", "from_model_range": "dataset",
    "to_model_range": "dataset", "write_prepared": "dataset", "export_dataset": "export",
    "import_dataset": "importer", "parse_class_names": "importer", "make_phantom": "phantom",
    "write_phantom": "phantom", "Preprocessor": "preprocess", "BadFileError": "readers",
    "read_frames": "readers", "group_stratified_split": "splits", "parse_fractions": "splits",
}


def __getattr__(name: str):
    if name in _WHERE:
        return getattr(importlib.import_module(f"{__name__}.{_WHERE[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "BadFileError",
    "PreparedDataset",
    "Preprocessor",
    "SynthmedDataset",
    "export_dataset",
    "from_model_range",
    "group_stratified_split",
    "import_dataset",
    "make_phantom",
    "parse_class_names",
    "parse_fractions",
    "read_frames",
    "to_model_range",
    "write_phantom",
    "write_prepared",
]
