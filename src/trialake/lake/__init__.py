"""Lake storage: one code path for local directories and S3 (fsspec/s3fs, delta-rs).

Tables are Delta Lake tables (Hive-partitioned Parquet plus ``_delta_log/``) at
``<lake>/<zone>/<table>/``: a write is one commit, readers see one committed version, earlier
versions stay readable (``as_of``), locks name versions for good. Objects (DICOM copies, reports)
are replaced in one step (a rename on disk, one PUT on S3).
"""
from trialake.lake.lease import Lease, LeaseHeld, LeaseLost, acquire_lease
from trialake.lake.landing import LandingFile, compute_sha256, is_hidden, list_landing_files, object_version, read_landing_bytes
from trialake.lake.locks import LockExists, LockRecord, create_lock, list_locks, read_lock, vacuum_lake
from trialake.lake.storage import (
    Lake,
    copy_object,
    create_object,
    delta_storage_options,
    list_folder,
    open_lake,
    polars_storage_options,
    read_object,
    write_object,
)
from trialake.lake.tables import (
    Commit,
    TableConflict,
    TableVersion,
    TableWrite,
    delete_partition,
    delete_table,
    list_tables,
    read_table,
    scan_table,
    table_exists,
    table_history,
    table_version,
    versions_by_run,
    write_table,
)
from trialake.lake.upgrade import is_upgraded, upgrade_lake

__all__ = [
    "Commit",
    "Lease",
    "LeaseHeld",
    "LeaseLost",
    "LockExists",
    "LockRecord",
    "acquire_lease",
    "Lake",
    "LandingFile",
    "TableConflict",
    "TableVersion",
    "TableWrite",
    "compute_sha256",
    "copy_object",
    "create_lock",
    "create_object",
    "delete_partition",
    "delete_table",
    "delta_storage_options",
    "is_hidden",
    "is_upgraded",
    "list_folder",
    "list_landing_files",
    "list_locks",
    "list_tables",
    "object_version",
    "open_lake",
    "polars_storage_options",
    "read_landing_bytes",
    "read_lock",
    "read_object",
    "read_table",
    "scan_table",
    "table_exists",
    "table_history",
    "table_version",
    "upgrade_lake",
    "vacuum_lake",
    "versions_by_run",
    "write_object",
    "write_table",
]
