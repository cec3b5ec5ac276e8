"""PACS URLs (the CONTRACT forms), credentials from the environment, instance ids, receiver paths."""
from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trialake.config import ConfigError, read_settings
from trialake.pacs import PacsInstance, compute_instance_id, is_pacs_id, parse_instance_id, parse_pacs_url
from trialake.pacs.receiver import FOLDER, compute_received_path


def test_dicomweb_urls() -> None:
    address = parse_pacs_url("dicomweb+https://pacs.example.org:8443/dicom-web/")
    assert address.kind == "dicomweb"
    assert address.http_url == "https://pacs.example.org:8443/dicom-web"
    assert address.url == "dicomweb+https://pacs.example.org:8443/dicom-web"
    assert parse_pacs_url("dicomweb+http://10.1.2.3/wado").http_url == "http://10.1.2.3/wado"


def test_dimse_urls() -> None:
    address = parse_pacs_url("dimse://ORTHANC@pacs.local:4242?calling=TRIALAKE1")
    assert (address.kind, address.called_aet, address.host, address.port) == ("dimse", "ORTHANC", "pacs.local", 4242)
    assert (address.calling_aet, address.retrieve, address.move_port) == ("TRIALAKE1", "get", None)
    moved = parse_pacs_url("dimse://PACS%20A@127.0.0.1:104?calling=ME&retrieve=move&move_port=11112")
    assert (moved.called_aet, moved.retrieve, moved.move_port) == ("PACS A", "move", 11112)
    assert parse_pacs_url("dimse://PACS@h:104").calling_aet == "TRIALAKE"


@pytest.mark.parametrize(("url", "problem"), [
    ("http://host/dicom-web", "expected dicomweb"),
    ("dicomweb+http://user:secret@host/dicom-web", "credentials must not be in the URL"),
    ("dicomweb+http:///dicom-web", "no host"),
    ("dicomweb+http://host/dicom-web?x=1", "no query"),
    ("dicomweb+http://host:99999/x", "port"),
    ("dimse://host:104", "CALLED_AET@host"),
    ("dimse://PACS@host", "host and port"),
    ("dimse://PACS@host:104/path", "no path"),
    ("dimse://PACS@host:104?calling=" + "A" * 17, "AE title"),
    ("dimse://PACS@host:104?calling=A\\B", "AE title"),
    ("dimse://PACS@host:104?retrieve=fetch", "get or move"),
    ("dimse://PACS@host:104?retrieve=move", "needs move_port"),
    ("dimse://PACS@host:104?colour=red", "unknown option"),
])
def test_bad_urls_are_refused_in_one_line(url: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem) as caught:
        parse_pacs_url(url)
    assert "\n" not in str(caught.value) and "secret" not in str(caught.value)


def test_settings_take_the_url_from_the_command_line_and_credentials_from_the_environment(tmp_path) -> None:
    environ = {"TRIALAKE_PACS_USER": "reader", "TRIALAKE_PACS_PASSWORD": "pw-123", "TRIALAKE_RESEARCH_PACS_TOKEN": "tok"}
    config = tmp_path / "trial.yaml"
    from trialake.config import default_trial_config_path

    text = default_trial_config_path().read_text()
    config.write_text(text + "\npacs:\n  source: dimse://CFG@h:104\n  research: dicomweb+http://research/dw\n  retries: 1\n  timeout_s: 5\n")
    settings = read_settings(landing=str(tmp_path), lake=str(tmp_path / "lake"), environ=environ, config_path=config,
                             pacs="dicomweb+http://cli/dw")
    assert settings.pacs is not None and settings.pacs.address.url == "dicomweb+http://cli/dw"
    assert (settings.pacs.username, settings.pacs.password, settings.pacs.retries, settings.pacs.timeout_s) == ("reader", "pw-123", 1, 5)
    assert settings.research_pacs is not None and settings.research_pacs.token == "tok"
    assert "pw-123" not in repr(settings) and "tok" not in repr(settings)
    from_config = read_settings(landing=str(tmp_path), lake=str(tmp_path / "lake"), environ={}, config_path=config)
    assert from_config.pacs is not None and from_config.pacs.address.called_aet == "CFG"
    assert read_settings(landing=str(tmp_path), lake=str(tmp_path / "lake"), environ={}).pacs is None
    with pytest.raises(ConfigError, match="expected dicomweb"):
        read_settings(landing=str(tmp_path), lake=str(tmp_path / "lake"), environ={}, pacs="ftp://x")


_UIDS = st.from_regex(r"[1-9][0-9]{0,5}(\.[0-9]{1,8}){1,6}", fullmatch=True)


@settings(deadline=None)  # a loaded CI machine, not the code, decides how long an example takes
@given(study=_UIDS, series=_UIDS, sop=_UIDS, web=st.booleans())
def test_instance_ids_round_trip(study: str, series: str, sop: str, web: bool) -> None:
    address = parse_pacs_url("dicomweb+http://h:8042/dicom-web" if web else "dimse://A@h:104?calling=B")
    instance = PacsInstance(study, series, sop)
    source_id = compute_instance_id(address, instance)
    assert is_pacs_id(source_id) and "calling" not in source_id
    assert parse_instance_id(source_id) == (address.source_prefix, instance)
    assert not is_pacs_id(f"dicom/{study}/{sop}.dcm")


@settings(deadline=None)
@given(aet=st.one_of(st.sampled_from(["..", ".", ".hidden", "../x"]), st.text(min_size=1, max_size=16)),
       uid=st.one_of(st.sampled_from(["..", "../../etc", ".1.2"]), st.text(max_size=80)))
def test_received_paths_stay_inside_the_received_folder(aet: str, uid: str) -> None:
    path = compute_received_path(aet, uid, "1.2.3", uid)
    parts = path.split("/")
    assert path.startswith(FOLDER + "/") and len(parts) == 6
    assert all(part and not part.startswith(".") for part in parts)  # no "..", no hidden (unlisted) folder
    assert compute_received_path("SITE A", "1.2", "1.2.3", "1.2.3.4") == f"{FOLDER}/SITE_A/1.2/1.2.3/1.2.3.4.dcm"
