"""Lake storage: one code path for local directories and S3 (fsspec/s3fs).

Tables are Hive-partitioned Parquet datasets at ``<lake>/<zone>/<table>/``. Each partition is one
Parquet object that is replaced in a single step (a rename on disk, one PUT on S3), so a reader
sees either the previous or the new version of a partition, never a half-written file.
"""
from trialake.lake.lease import Lease, LeaseHeld, LeaseLost, acquire_lease
from trialake.lake.landing import LandingFile, compute_sha256, is_hidden, list_landing_files, object_version, read_landing_bytes
from trialake.lake.storage import (
    Lake,
    TableWrite,
    copy_object,
    delete_partition,
    delete_table,
    open_lake,
    polars_storage_options,
    read_object,
    read_table,
    scan_table,
    table_exists,
    write_object,
    write_table,
)

__all__ = [
    "Lease",
    "LeaseHeld",
    "LeaseLost",
    "acquire_lease",
    "Lake",
    "LandingFile",
    "TableWrite",
    "compute_sha256",
    "copy_object",
    "delete_partition",
    "delete_table",
    "is_hidden",
    "list_landing_files",
    "object_version",
    "open_lake",
    "polars_storage_options",
    "read_landing_bytes",
    "read_object",
    "read_table",
    "scan_table",
    "table_exists",
    "write_object",
    "write_table",
]
