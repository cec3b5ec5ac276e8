"""An adversarial corpus: a canary (a distinctive fake identifying value) in every place where
de-identification has been seen to leak, for the leak tests.

DICOM: code items (free-text CodeMeaning, local codes), descriptors (long digit runs after a
decimal point, month/day fragments, dates inside text), identifying attributes written with
another VR, dates and date-times with trailing text, unregistered UIDs under the DICOM root,
ages over 89, ethnic group free text, JPEG and JPEG 2000 comment segments, overlays in the bits
above High Bit, an unregistered SOP class and an unknown patient (rejection reasons).
Clinical: free text in VISIT, results and severity, unknown test names and units, a file name
that carries a name, an unreadable file, an age over 89.
"""

from __future__ import annotations

import io

import numpy as np
import pydicom
from PIL import Image
from pydicom.dataset import Dataset
from pydicom.encaps import encapsulate
from pydicom.pixels import get_encoder
from pydicom.uid import JPEG2000Lossless, JPEGBaseline8Bit

#: category -> canary. Every one must be absent from everything outside restricted/.
CANARIES: dict[str, str] = {
    "code meaning": "Ravensworth",
    "local code value": "LCL778899",
    "descriptor digits after a decimal point": "73829104",
    "descriptor month/day fragments": "CHEST 03 05",
    "date inside free text": "19871123",
    "identifying attribute written as CS": "HOLLOWMERE",
    "identifying attribute written as IS": "55501234",
    "identifying attribute written as AE": "THORNBECK",
    "date with trailing text": "Pemberley",
    "date-time with trailing text": "Quenbyhall",
    "unregistered UID under the DICOM root": "1.2.840.10008.99.7.4455667788",
    "unregistered referenced UID under the DICOM root": "1.2.840.10008.99.7.1122334455",
    "ethnic group free text": "Wexmoor",
    "JPEG comment": "Pendlebury",
    "JPEG 2000 comment": "Fairhavenly",
    "unregistered SOP class (rejection reason)": "1.2.840.10008.5.1.4.1.1.2.9917",
    "unknown patient folder (rejection reason)": "Blenkinsop",
    "clinical file name (rejection reason)": "Featherstonehaugh",
    "severity free text": "Cheverton",
    "visit free text": "Ottershaw",
    "result free text": "Wyndhampton",
    "unreadable clinical file name (rejection reason)": "Quenington",
}
#: Cell values that may stay in bronze (coded values that identify nobody) but must never be
#: quoted in a rejection reason, a report, the console or the Prefect database.
REASON_CANARIES: dict[str, str] = {"unknown test name": "Zorblattine", "unknown unit": "Quibbletons"}
OLD_AGE, CAPPED_AGE = "095Y", "090Y"


def _code(value: str, scheme: str, meaning: str) -> Dataset:
    item = Dataset()
    item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = value, scheme, meaning
    return item


def add_header_canaries(ds: Dataset) -> None:
    """Put the header canaries into one dataset (its UIDs and study date stay as they are, so the
    series still belongs to its subject and scan)."""
    c = CANARIES
    ds.DerivationCodeSequence = [_code("113072", "DCM", f"MPR by Dr {c['code meaning']}")]
    ds.AnatomicRegionSequence = [_code(c["local code value"], "99HOSP", "local chest code"),
                                 _code("T-D3000", "SRT", "Chest")]
    ds.SeriesDescription = f"LUNG 1.{c['descriptor digits after a decimal point']} B70f"
    ds.ProtocolName = c["descriptor month/day fragments"]
    ds.ImageComments = "prior CT 23/11/1987 compared"
    ds.add_new(0x00080080, "CS", c["identifying attribute written as CS"])  # InstitutionName (LO)
    ds.add_new(0x00101000, "IS", c["identifying attribute written as IS"])  # OtherPatientIDs
    ds.add_new(0x00081070, "AE", c["identifying attribute written as AE"])  # OperatorsName
    ds.StudyDate = f"{ds.StudyDate} {c['date with trailing text']}"
    ds.AcquisitionDateTime = f"{ds.AcquisitionDate}101500 {c['date-time with trailing text']}"
    ds.FrameOfReferenceUID = c["unregistered UID under the DICOM root"]
    reference = Dataset()
    reference.ReferencedSOPClassUID = ds.SOPClassUID
    reference.ReferencedSOPInstanceUID = c["unregistered referenced UID under the DICOM root"]
    ds.ReferencedImageSequence = [reference]
    ds.PatientAge = OLD_AGE
    ds.EthnicGroup = f"{c['ethnic group free text']} TRAVELLERS"[:16]


def add_overlay_bits(ds: Dataset) -> None:
    """Declare 12 stored bits and draw an overlay plane into bit 13 (native, unsigned pixels)."""
    words = np.frombuffer(ds.PixelData, dtype=np.uint16).copy()
    words &= 0x0FFF
    words[::7] |= 0x2000
    ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 12, 11, 0
    ds.PixelData = words.tobytes()


def compressed_slices(template: Dataset) -> list[Dataset]:
    """Two single-slice series of the template's patient: a JPEG baseline frame with a comment, an
    Exif block and bytes after EOI, and a JPEG 2000 frame with a comment segment."""
    pixels = (np.arange(32 * 32).reshape(32, 32) * 7 % 256).astype(np.uint8)
    buffer = io.BytesIO()
    text = CANARIES["JPEG comment"].encode()
    Image.fromarray(pixels, mode="L").save(buffer, "JPEG", quality=90, comment=text + b" comment",
                                          exif=b"Exif\x00\x00MM\x00*" + text)
    jpeg = buffer.getvalue() + text
    j2k = get_encoder(JPEG2000Lossless).encode(
        (pixels.astype(np.uint16) * 16), rows=32, columns=32, bits_allocated=16, bits_stored=12,
        pixel_representation=0, samples_per_pixel=1, photometric_interpretation="MONOCHROME2", number_of_frames=1)
    comment = CANARIES["JPEG 2000 comment"].encode()
    siz_end = 4 + int.from_bytes(j2k[4:6], "big")
    j2k = j2k[:siz_end] + b"\xff\x64" + (len(comment) + 4).to_bytes(2, "big") + b"\x00\x01" + comment + j2k[siz_end:]
    slices = []
    for number, (frame, syntax, bits) in enumerate(((jpeg, JPEGBaseline8Bit, 8), (j2k, JPEG2000Lossless, 16)), start=1):
        ds = pydicom.dcmread(io.BytesIO(_encode(template)))
        ds.file_meta.TransferSyntaxUID = syntax
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = f"{template.SOPInstanceUID}.9{number}"
        ds.SeriesInstanceUID = f"{template.SeriesInstanceUID}.9{number}"
        ds.Rows = ds.Columns = 32
        ds.BitsAllocated = bits
        ds.BitsStored, ds.HighBit, ds.PixelRepresentation = (8, 7, 0) if bits == 8 else (12, 11, 0)
        ds.RescaleIntercept, ds.RescaleSlope = "0", "1"
        ds.PixelData = encapsulate([frame])
        ds["PixelData"].VR = "OB"
        slices.append(ds)
    return slices


def rejected_slices(template: Dataset) -> list[tuple[str, Dataset]]:
    """(landing folder, dataset) of files that must be rejected with data-free reasons: an
    unregistered SOP class under the DICOM root, and a patient missing from the subject key."""
    unregistered = pydicom.dcmread(io.BytesIO(_encode(template)))
    unregistered.SOPClassUID = unregistered.file_meta.MediaStorageSOPClassUID = CANARIES[
        "unregistered SOP class (rejection reason)"]
    unregistered.SOPInstanceUID = unregistered.file_meta.MediaStorageSOPInstanceUID = f"{template.SOPInstanceUID}.81"
    unknown = pydicom.dcmread(io.BytesIO(_encode(template)))
    unknown.PatientID = "MRN99999999"
    unknown.SOPInstanceUID = unknown.file_meta.MediaStorageSOPInstanceUID = f"{template.SOPInstanceUID}.82"
    return [("dicom/extra", unregistered), (f"dicom/{CANARIES['unknown patient folder (rejection reason)']}_X", unknown)]


def _encode(ds: Dataset) -> bytes:
    buffer = io.BytesIO()
    pydicom.dcmwrite(buffer, ds, enforce_file_format=True)
    return buffer.getvalue()


def encode_dicom(ds: Dataset) -> bytes:
    """Part 10 bytes of a dataset."""
    return _encode(ds)


def clinical_files(usubjid: str, study_id: str) -> dict[str, bytes]:
    """Extra clinical exports for subject ``usubjid``: free text in VISIT, results and severity,
    an unknown test and unit, a file name that carries a name, and an unreadable workbook."""
    c = CANARIES
    lab = (f"STUDYID,DOMAIN,USUBJID,LBTESTCD,LBTEST,LBORRES,LBORRESU,VISIT,LBDTC\n"
           f"{study_id},LB,{usubjid},CRP,C-reactive protein,see note {c['result free text']},mg/L,"
           f"Day 10 {c['visit free text']} review,2020-03-23\n"
           f"{study_id},LB,{usubjid},XX1,{REASON_CANARIES['unknown test name']} assay,4.5,mg/L,Baseline,2020-03-23\n"
           f"{study_id},LB,{usubjid},CRP,C-reactive protein,4.5,{REASON_CANARIES['unknown unit']},"
           f"Baseline,2020-03-23\n")
    ae = (f"STUDYID,DOMAIN,USUBJID,AESEQ,AETERM,AEDECOD,AEBODSYS,AESEV,AESER,AEREL,AESTDTC\n"
          f"{study_id},AE,{usubjid},91,headache,Headache,Nervous system disorders,"
          f"Mild per Dr {c['severity free text']},N,NOT RELATED,2020-03-25\n")
    return {
        f"clinical/lb_{c['clinical file name (rejection reason)']}.csv": lab.encode(),
        "clinical/ae_extra.csv": ae.encode(),
        f"clinical/ae_{c['unreadable clinical file name (rejection reason)']}.xlsx": b"not a workbook",
    }
