"""The fast header reader agrees with pydicom's reader, and hands unusual files back to it."""

from __future__ import annotations

import io

import pydicom
import pytest
from dicom_factory import add_phi, encode, synthesize_ct_series
from pydicom.data import get_testdata_file
from pydicom.dataelem import convert_raw_data_element
from pydicom.uid import ImplicitVRLittleEndian, RLELossless

from trialake.dicom.reader import read_header


def _phi_slice() -> pydicom.Dataset:
    ds = synthesize_ct_series(patient_id="MRN0042", n_slices=1)[0]
    add_phi(ds, referenced_sop_uid="1.2.3.4")
    return ds


def _implicit() -> pydicom.Dataset:
    ds = _phi_slice()
    ds.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian
    return ds


def _undefined_lengths() -> pydicom.Dataset:
    ds = _phi_slice()
    for keyword in ("ReferencedImageSequence", "OtherPatientIDsSequence"):
        ds[keyword].is_undefined_length = True
        for item in ds[keyword].value:
            item.is_undefined_length_sequence_item = True
    ds.ReferencedImageSequence[0].PurposeOfReferenceCodeSequence[0].is_undefined_length_sequence_item = True
    return ds


def _rle() -> pydicom.Dataset:
    ds = _phi_slice()
    ds.compress(RLELossless)
    return ds


@pytest.mark.parametrize("make", [_phi_slice, _implicit, _undefined_lengths, _rle])
def test_fast_reader_matches_pydicom(make) -> None:
    data = encode(make())
    fast, stop = read_header(data)
    stream = io.BytesIO(data)
    reference = pydicom.dcmread(stream, stop_before_pixels=True)
    assert stop == stream.tell() and data[stop:stop + 4] == b"\xe0\x7f\x10\x00"
    assert fast.file_meta.TransferSyntaxUID == reference.file_meta.TransferSyntaxUID
    assert fast.original_encoding == reference.original_encoding
    assert fast.original_character_set == reference.original_character_set
    assert list(fast.keys()) == list(reference.keys())
    for tag in reference.keys():
        ours = convert_raw_data_element(fast.get_item(tag), encoding=fast.original_character_set, ds=fast)
        theirs = reference[tag]
        assert ours.value == theirs.value, tag


@pytest.mark.parametrize("name", ["MR_small_bigendian.dcm", "ExplVR_BigEnd.dcm"])
def test_big_endian_is_left_to_pydicom(name: str) -> None:
    with open(get_testdata_file(name), "rb") as f:
        assert read_header(f.read()) is None


def test_file_meta_without_group_length_is_left_to_pydicom() -> None:
    data = encode(_phi_slice())
    meta_length = int.from_bytes(data[140:144], "little")
    without = data[:132] + data[144:144 + meta_length] + data[144 + meta_length:]
    assert read_header(without) is None
    assert pydicom.dcmread(io.BytesIO(without), stop_before_pixels=True).SOPClassUID == pydicom.uid.CTImageStorage
