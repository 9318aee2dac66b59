"""Problems: the record type, file readers/writers, synthetic generators and statistics."""

from .io import load_records, save_records
from .records import DataError, Record

__all__ = ["DataError", "Record", "load_records", "save_records"]
