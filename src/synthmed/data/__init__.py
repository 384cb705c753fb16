"""Data layer: import raw PNG/DICOM/NIfTI/npz into prepared datasets, split by patient, export."""

from synthmed.data.dataset import (
    PreparedDataset,
    SynthmedDataset,
    from_model_range,
    to_model_range,
    write_prepared,
)
from synthmed.data.export import export_dataset
from synthmed.data.importer import import_dataset, parse_class_names
from synthmed.data.phantom import make_phantom, write_phantom
from synthmed.data.preprocess import Preprocessor
from synthmed.data.readers import BadFileError, read_frames
from synthmed.data.splits import group_stratified_split, parse_fractions

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
