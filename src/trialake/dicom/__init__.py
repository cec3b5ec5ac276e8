"""DICOM ingestion: acceptance checks, PS3.15 de-identification, instance index, series QC."""

from trialake.dicom.ingest import (
    INSTANCE_SCHEMA,
    QUARANTINE_SCHEMA,
    REJECTION_SCHEMA,
    UID_MAP_SCHEMA,
    AcceptedInstance,
    IngestBatchResult,
    ingest_dicom_batch,
    merge_ingest_results,
    reclean_copy,
)
from trialake.dicom.profile import DeidParams, PrivateTag
from trialake.dicom.series import CT_SERIES_SCHEMA, SeriesQcParams, derive_ct_series, derive_series_rejections
from trialake.dicom.subject_key import SubjectKey

__all__ = [
    "CT_SERIES_SCHEMA", "INSTANCE_SCHEMA", "QUARANTINE_SCHEMA", "REJECTION_SCHEMA", "UID_MAP_SCHEMA",
    "AcceptedInstance", "DeidParams", "IngestBatchResult", "PrivateTag", "SeriesQcParams", "SubjectKey",
    "derive_ct_series", "derive_series_rejections", "ingest_dicom_batch", "merge_ingest_results", "reclean_copy",
]
