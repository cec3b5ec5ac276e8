"""The fast header reader agrees with pydicom's reader, and hands unusual files back to it."""

from __future__ import annotations

import io

import pydicom
import pytest
from dicom_factory import add_phi, encode, synthesize_ct_series
from pydicom.data import get_testdata_file
from pydicom.dataelem import RawDataElement, convert_raw_data_element
from pydicom.tag import BaseTag
from pydicom.uid import ImplicitVRLittleEndian, RLELossless

from trialake.dicom.reader import read_header, read_items


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
    fast = read_header(data)
    stream = io.BytesIO(data)
    reference = pydicom.dcmread(stream, stop_before_pixels=True)
    assert fast.stop == stream.tell() and data[fast.stop:fast.stop + 4] == b"\xe0\x7f\x10\x00"
    assert fast.transfer_syntax == reference.file_meta.TransferSyntaxUID
    assert (fast.implicit, True) == reference.original_encoding
    assert fast.charset == reference.original_character_set
    assert list(fast.elements) == [int(tag) for tag in reference.keys()]
    for tag in reference.keys():
        ours = convert_raw_data_element(fast.elements[int(tag)], encoding=fast.charset, ds=reference)
        theirs = reference[tag]
        assert ours.value == theirs.value, tag


def test_the_character_set_is_read_as_pydicom_reads_it() -> None:
    ds = _phi_slice()
    ds.SpecificCharacterSet = ["", "ISO 2022 IR 87"]
    fast = read_header(encode(ds))
    assert fast.charset == pydicom.dcmread(io.BytesIO(encode(ds)), stop_before_pixels=True).original_character_set
    assert fast.charset == ["iso8859", "iso2022_jp"]


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


def test_a_file_meta_longer_than_the_file_is_left_to_pydicom() -> None:
    data = encode(_phi_slice())
    cut = 144 + int.from_bytes(data[140:144], "little") - 10  # ends inside the file meta group
    assert read_header(data[:cut]) is None


def test_a_header_cut_inside_an_attribute_is_left_to_pydicom() -> None:
    data = encode(_phi_slice())
    stop = read_header(data).stop
    assert read_header(data[:stop - 3]) is None  # the pydicom path names the attribute that is cut
    assert read_header(data[:stop]) is not None  # cut before the pixel data: the header is whole


def _flatten(items: list[dict], implicit: bool) -> list:
    """(tag, value) pairs of items read by read_items, nested sequences read the same way."""
    out = []
    for item in items:
        for tag, elem in sorted(item.items()):
            nested = read_items(elem.value, implicit=implicit) if (elem.VR == "SQ" or (implicit and tag in _SEQUENCE_TAGS)) else None
            out.append((tag, _flatten(nested, implicit) if nested is not None else elem.value))
    return out


def _flatten_pydicom(sequence: pydicom.Sequence) -> list:
    out = []
    for item in sequence:
        for elem in item:
            value = _flatten_pydicom(elem.value) if elem.VR == "SQ" else pydicom.DataElement(elem.tag, elem.VR, elem.value)
            out.append((int(elem.tag), value))
    return out


_SEQUENCE_TAGS = {int(pydicom.datadict.tag_for_keyword(k)) for k in
                  ("ReferencedImageSequence", "OtherPatientIDsSequence", "PurposeOfReferenceCodeSequence")}


@pytest.mark.parametrize("make", [_phi_slice, _implicit, _undefined_lengths])
def test_sequence_items_split_as_pydicom_reads_them(make) -> None:
    ds = make()
    fast = read_header(encode(ds))
    implicit = fast.implicit
    reference = pydicom.dcmread(io.BytesIO(encode(ds)), stop_before_pixels=True)
    for keyword in ("ReferencedImageSequence", "OtherPatientIDsSequence"):
        items = read_items(fast.elements[pydicom.datadict.tag_for_keyword(keyword)].value, implicit=implicit)
        assert items is not None, keyword
        ours = _flatten(items, implicit)
        theirs = _flatten_pydicom(reference[keyword].value)
        assert [tag for tag, _ in ours] == [tag for tag, _ in theirs]
        for (tag, value), (_, element) in zip(ours, theirs):
            if isinstance(value, list):
                assert [t for t, _ in value] == [t for t, _ in element]
            else:
                raw = RawDataElement(BaseTag(tag), element.VR, len(value), value, 0, implicit, True)
                assert convert_raw_data_element(raw).value == element.value, hex(tag)


def _item(body: bytes, length: int | None = None) -> bytes:
    return b"\xfe\xff\x00\xe0" + (len(body) if length is None else length).to_bytes(4, "little") + body


_CODE = b"\x08\x00\x00\x01SH\x04\x00ABCD"  # (0008,0100) CodeValue "ABCD", explicit VR


@pytest.mark.parametrize("value", [
    b"\xfe\xff\x0d\xe0" + _CODE,                                  # a delimiter where an item should start
    _item(_CODE[:-2], length=len(_CODE)),                         # item longer than the value
    _item(_CODE[:-2]),                                            # element cut short inside the item
    _item(_CODE, length=0xFFFFFFFF),                              # undefined-length item without its delimiter
])
def test_malformed_sequence_values_are_left_to_pydicom(value: bytes) -> None:
    assert read_items(value, implicit=False) is None


def test_defined_and_undefined_length_items_are_both_read() -> None:
    value = _item(_CODE) + _item(_CODE, length=0xFFFFFFFF) + b"\xfe\xff\x0d\xe0\x00\x00\x00\x00"
    items = read_items(value, implicit=False)
    assert items is not None and [list(i) for i in items] == [[0x00080100], [0x00080100]]
    assert [i[0x00080100].value for i in items] == [b"ABCD", b"ABCD"]
