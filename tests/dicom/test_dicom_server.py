"""The DICOM AE over real sockets on 127.0.0.1: dcmtk and pynetdicom as the other side."""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Iterator
from io import BytesIO
from pathlib import Path

import pytest
from conftest import ServerFactory
from dicom_helpers import (
    CLINIC_AET,
    DCMTK,
    HOST,
    SERVER_AET,
    KnownCallers,
    ListWorklist,
    MemoryStorage,
    dcmtk,
    part10,
    sample,
    worklist_item,
)
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.filereader import read_file_meta_info
from pydicom.uid import generate_uid
from pynetdicom import AE, StoragePresentationContexts, _config
from pynetdicom.association import Association
from pynetdicom.sop_class import (  # type: ignore[attr-defined]
    CTImageStorage,
    ModalityWorklistInformationFind,
    StudyRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelMove,
    Verification,
)

from dicom.server import DicomServer

CT_STUDY = "1.3.6.1.4.1.5962.1.2.1.20040119072730.12322"
MR_STUDY = "1.3.6.1.4.1.5962.1.2.4.20040826185059.5457"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


def _associate(server: DicomServer, *contexts: tuple[str, list[str]], aet: str = CLINIC_AET):
    ae = AE(ae_title=aet)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 20
    for abstract, syntaxes in contexts or ((Verification, ["1.2.840.10008.1.2"]),):
        ae.add_requested_context(abstract, syntaxes)
    return ae.associate(HOST, server.port, ae_title=SERVER_AET)


@pytest.fixture
def association(server: DicomServer) -> Iterator[Association]:
    assoc = _associate(server, (CTImageStorage, ["1.2.840.10008.1.2.1"]))
    assert assoc.is_established
    yield assoc
    if assoc.is_established:
        assoc.release()


def _pixel_data(data: bytes) -> bytes:
    pixels: bytes = dcmread(BytesIO(data)).PixelData
    return pixels


# --- association ---------------------------------------------------------------------------------


def test_echo_with_dcmtk(server: DicomServer, callers: KnownCallers) -> None:
    done = dcmtk("echoscu", "-aet", CLINIC_AET, "-aec", SERVER_AET, HOST, server.port)
    assert done.returncode == 0, done.stderr
    assert (CLINIC_AET, HOST) in callers.asked


def test_unknown_calling_ae_is_rejected_at_association(
    server: DicomServer, storage: MemoryStorage
) -> None:
    done = dcmtk("echoscu", "-aet", "UNKNOWN", "-aec", SERVER_AET, HOST, server.port)
    assert done.returncode != 0
    assert "Calling AE Title Not Recognized" in done.stdout + done.stderr
    stored = dcmtk("storescu", "-aet", "UNKNOWN", HOST, server.port, sample("CT_small.dcm"))
    assert stored.returncode != 0
    assert storage.stored == {}


def test_rejection_reason_seen_by_pynetdicom(server: DicomServer) -> None:
    assoc = _associate(server, aet="UNKNOWN")
    assert assoc.is_rejected
    reply = assoc.acceptor.primitive
    assert reply is not None
    assert (reply.result, reply.result_source, reply.diagnostic) == (0x01, 0x01, 0x03)


def test_a_failing_policy_rejects(make_server: ServerFactory) -> None:
    class Broken(KnownCallers):
        def allowed(self, calling_aet: str, peer: str) -> bool:
            raise RuntimeError("policy store unavailable")

    server = make_server(callers=Broken(set()))
    assert _associate(server).is_rejected


def test_tcp_nodelay_on_the_association_socket(
    server: DicomServer, association: Association
) -> None:
    deadline = time.monotonic() + 5
    accepted: list[Association] = []
    while not accepted and time.monotonic() < deadline:
        accepted = [a for a in server._ae.active_associations if a.is_acceptor]
        time.sleep(0.01)
    assert accepted
    sock = accepted[0].dul.socket.socket
    assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0


def test_port_zero_and_stop(make_server: ServerFactory) -> None:
    server = make_server()
    assert server.port > 0 and server.running
    assoc = _associate(server)
    assert assoc.is_established
    server.stop(grace=0.5)
    assert not server.running
    deadline = time.monotonic() + 5
    while assoc.is_established and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not assoc.is_established  # aborted after the grace period
    with pytest.raises(OSError), socket.create_connection((HOST, server.port), timeout=2):
        pass


# --- C-STORE --------------------------------------------------------------------------------------


def test_store_uncompressed_with_storescu(server: DicomServer, storage: MemoryStorage) -> None:
    original = sample("CT_small.dcm")
    done = dcmtk("storescu", "-aet", CLINIC_AET, "-aec", SERVER_AET, HOST, server.port, original)
    assert done.returncode == 0, done.stderr
    ((uid, encoded),) = storage.stored.items()
    assert uid == "1.3.6.1.4.1.5962.1.1.1.1.1.20040119072730.12322"
    assert storage.facts[uid].transfer_syntax_uid == "1.2.840.10008.1.2.1"
    assert _pixel_data(encoded) == dcmread(original).PixelData
    assert storage.callers == [(CLINIC_AET, HOST)]


def test_jpeg2000_is_kept_as_sent_by_storescu(server: DicomServer, storage: MemoryStorage) -> None:
    """storescu -xv offers JPEG 2000 first, then uncompressed: each file goes as it is."""
    j2k, ct = sample("MR_small_jp2klossless.dcm"), sample("CT_small.dcm")
    done = dcmtk(
        "storescu", "-xv", "-aet", CLINIC_AET, "-aec", SERVER_AET, HOST, server.port, j2k, ct
    )
    assert done.returncode == 0, done.stderr
    j2k_uid = str(dcmread(j2k).SOPInstanceUID)
    assert storage.facts[j2k_uid].transfer_syntax_uid == "1.2.840.10008.1.2.4.90"
    assert _pixel_data(storage.stored[j2k_uid]) == dcmread(j2k).PixelData
    ct_uid = str(dcmread(ct).SOPInstanceUID)
    assert storage.facts[ct_uid].transfer_syntax_uid == "1.2.840.10008.1.2.1"


@pytest.mark.parametrize(
    "name",
    [
        "JPEG2000.dcm",
        "SC_rgb_rle.dcm",
        "SC_rgb_jpeg_dcmtk.dcm",
        "JPGExtended.dcm",
        "MR_small_jpeg_ls_lossless.dcm",
        "image_dfl.dcm",
        "MR_small_bigendian.dcm",
    ],
)
def test_compressed_syntaxes_are_kept_as_sent_by_pynetdicom(
    server: DicomServer, storage: MemoryStorage, name: str
) -> None:
    original = dcmread(sample(name))
    syntax = str(original.file_meta.TransferSyntaxUID)
    assoc = _associate(server, (str(original.SOPClassUID), [syntax]))
    assert assoc.is_established
    try:
        status = assoc.send_c_store(original)
    finally:
        assoc.release()
    assert status.Status == 0x0000
    uid = str(original.SOPInstanceUID)
    assert storage.facts[uid].transfer_syntax_uid == syntax
    assert _pixel_data(storage.stored[uid]) == original.PixelData


def test_a_requestor_offering_uncompressed_first_is_not_made_to_compress(
    server: DicomServer,
) -> None:
    assoc = _associate(server, (CTImageStorage, ["1.2.840.10008.1.2.1", "1.2.840.10008.1.2.4.90"]))
    try:
        (context,) = assoc.accepted_contexts
        assert context.transfer_syntax[0] == "1.2.840.10008.1.2.1"
    finally:
        assoc.release()


def _send_raw(server: DicomServer, path: Path, monkeypatch: pytest.MonkeyPatch) -> int:
    """Send a file's bytes after its meta as they are (pynetdicom does not decode them)."""
    monkeypatch.setattr(_config, "STORE_SEND_CHUNKED_DATASET", True)
    meta = read_file_meta_info(path)
    assoc = _associate(server, (str(meta.MediaStorageSOPClassUID), [str(meta.TransferSyntaxUID)]))
    assert assoc.is_established
    try:
        status: int = assoc.send_c_store(path).Status
    finally:
        assoc.release()
    return status


def _with_body(tmp_path: Path, body: bytes, sop_instance: str | None = None) -> Path:
    """CT_small's preamble and meta, then ``body``."""
    source = sample("CT_small.dcm").read_bytes()
    meta_end = 144 + int.from_bytes(source[140:144], "little")
    head = source[:meta_end]
    if sop_instance is not None:
        meta = dcmread(BytesIO(source)).file_meta
        meta.MediaStorageSOPInstanceUID = sop_instance
        head = _meta_bytes(meta)
    path = tmp_path / "payload.dcm"
    path.write_bytes(head + body)
    return path


def _meta_bytes(meta: Dataset) -> bytes:
    from pydicom.filebase import DicomBytesIO
    from pydicom.filewriter import write_file_meta_info

    buffer = DicomBytesIO()
    buffer.write(b"\0" * 128 + b"DICM")
    write_file_meta_info(buffer, meta)  # type: ignore[arg-type]
    return buffer.getvalue()


def test_garbage_payload_gets_cannot_understand(
    server: DicomServer, storage: MemoryStorage, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    garbage = bytes((i * 131 + 7) % 256 for i in range(4096))
    assert _send_raw(server, _with_body(tmp_path, garbage), monkeypatch) == 0xC210
    assert storage.stored == {}


def test_truncated_payload_gets_cannot_understand(
    server: DicomServer, storage: MemoryStorage, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = sample("CT_small.dcm").read_bytes()
    meta_end = 144 + int.from_bytes(source[140:144], "little")
    path = _with_body(tmp_path, source[meta_end:-5000])
    assert _send_raw(server, path, monkeypatch) == 0xC210
    assert storage.stored == {}


def test_payload_that_is_not_the_announced_instance(
    server: DicomServer, storage: MemoryStorage, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = sample("CT_small.dcm").read_bytes()
    meta_end = 144 + int.from_bytes(source[140:144], "little")
    path = _with_body(tmp_path, source[meta_end:], sop_instance="1.2.3.4.5")
    assert _send_raw(server, path, monkeypatch) == 0xA900
    assert storage.stored == {}


@pytest.mark.parametrize("missing", ["StudyInstanceUID", "SeriesInstanceUID"])
def test_missing_uids_get_a_failure(
    server: DicomServer, storage: MemoryStorage, missing: str
) -> None:
    dataset = dcmread(sample("CT_small.dcm"))
    delattr(dataset, missing)
    assoc = _associate(server, (CTImageStorage, ["1.2.840.10008.1.2.1"]))
    try:
        status = assoc.send_c_store(dataset)
    finally:
        assoc.release()
    assert status.Status == 0xA900
    assert storage.stored == {}


@pytest.mark.parametrize(
    ("setup", "expected"),
    [({"status": 0xA700}, 0xA700), ({"fail_with": RuntimeError("disk on fire")}, 0xC211)],
)
def test_storage_handler_outcomes(
    server: DicomServer,
    storage: MemoryStorage,
    association: Association,
    setup: dict[str, object],
    expected: int,
) -> None:
    for name, value in setup.items():
        setattr(storage, name, value)
    status = association.send_c_store(dcmread(sample("CT_small.dcm")))
    assert status.Status == expected


def test_many_instances_on_one_association(
    server: DicomServer, storage: MemoryStorage, association: Association
) -> None:
    dataset = dcmread(sample("CT_small.dcm"))
    for _ in range(20):
        dataset.SOPInstanceUID = generate_uid()
        dataset.file_meta.MediaStorageSOPInstanceUID = dataset.SOPInstanceUID
        assert association.send_c_store(dataset).Status == 0x0000
    assert len(storage.stored) == 20


def test_storage_contexts_for_every_class_pynetdicom_knows(server: DicomServer) -> None:
    ae = AE(ae_title=CLINIC_AET)
    ae.requested_contexts = StoragePresentationContexts
    assoc = ae.associate(HOST, server.port, ae_title=SERVER_AET)
    try:
        assert len(assoc.accepted_contexts) == len(StoragePresentationContexts)
    finally:
        assoc.release()


# --- Modality Worklist ---------------------------------------------------------------------------


def _mwl_request(**step_keys: str) -> Dataset:
    request = Dataset()
    request.SpecificCharacterSet = "ISO_IR 192"
    for keyword in ("PatientName", "PatientID", "PatientBirthDate", "PatientSex"):
        setattr(request, keyword, "")
    for keyword in ("AccessionNumber", "RequestedProcedureID", "StudyInstanceUID"):
        setattr(request, keyword, "")
    step = Dataset()
    for keyword in (
        "Modality",
        "ScheduledStationAETitle",
        "ScheduledProcedureStepStartDate",
        "ScheduledProcedureStepStartTime",
        "ScheduledProcedureStepID",
        "ScheduledProcedureStepDescription",
    ):
        setattr(step, keyword, step_keys.get(keyword, ""))
    request.ScheduledProcedureStepSequence = [step]
    return request


def _write_query(folder: Path, request: Dataset) -> Path:
    path = folder / "query.dcm"
    part10(request).save_as(path, enforce_file_format=True)
    return path


def test_worklist_with_findscu(server: DicomServer, worklist: ListWorklist, workdir: Path) -> None:
    worklist.items.append(worklist_item(modality="CT", station_aet="CT01", sps_id="SPS-CT"))
    query = _write_query(
        workdir,
        _mwl_request(Modality="DX", ScheduledProcedureStepStartDate="20240305"),
    )
    done = dcmtk(
        "findscu", "-W", "-X", "-aet", CLINIC_AET, "-aec", SERVER_AET, HOST, server.port, query,
        cwd=workdir,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    responses = sorted(workdir.glob("rsp*.dcm"))
    assert len(responses) == 1
    answer = dcmread(responses[0])
    assert answer.SpecificCharacterSet == "ISO_IR 192"
    assert answer.PatientName == "李^建国"
    assert answer.PatientID == "390521195001011234"
    assert answer.AccessionNumber == "A000000123"
    assert answer.StudyInstanceUID == "1.2.826.0.1.3680043.8.498.1001"
    step = answer.ScheduledProcedureStepSequence[0]
    assert step.Modality == "DX"
    assert step.ScheduledStationAETitle == "DR01"
    assert step.ScheduledProcedureStepStartDate == "20240305"
    assert step.ScheduledProcedureStepStartTime == "093000"
    assert step.ScheduledProcedureStepDescription == "胸部正位"
    assert "PatientWeight" not in answer  # only what was asked
    (asked,) = worklist.queries
    assert asked.modality == "DX"


def test_worklist_by_chinese_name_wildcard(
    server: DicomServer, worklist: ListWorklist, workdir: Path
) -> None:
    worklist.items.append(worklist_item(patient_name="王^芳", accession_number="A2"))
    request = _mwl_request()
    request.PatientName = "王*"
    query = _write_query(workdir, request)
    done = dcmtk("findscu", "-W", "-X", "-aet", CLINIC_AET, HOST, server.port, query, cwd=workdir)
    assert done.returncode == 0, done.stderr
    (response,) = workdir.glob("rsp*.dcm")
    assert dcmread(response).AccessionNumber == "A2"


def test_worklist_without_matches(server: DicomServer, workdir: Path) -> None:
    query = _write_query(workdir, _mwl_request(Modality="MR"))
    done = dcmtk("findscu", "-W", "-X", "-aet", CLINIC_AET, HOST, server.port, query, cwd=workdir)
    assert done.returncode == 0, done.stderr
    assert list(workdir.glob("rsp*.dcm")) == []


def test_malformed_worklist_key_gets_a_failure_status(server: DicomServer) -> None:
    assoc = _associate(server, (ModalityWorklistInformationFind, ["1.2.840.10008.1.2"]))
    request = _mwl_request()
    request.ScheduledProcedureStepSequence[0].add_new(0x00400002, "DA", "2024")
    try:
        replies = list(assoc.send_c_find(request, ModalityWorklistInformationFind))
    finally:
        assoc.release()
    assert [status.Status for status, _ in replies] == [0xA900]


# --- Study Root query and retrieve ----------------------------------------------------------------


def test_study_root_find_with_findscu(server: DicomServer, workdir: Path) -> None:
    done = dcmtk(
        "findscu", "-S", "-X", "-aet", CLINIC_AET, "-aec", SERVER_AET,
        "-k", "QueryRetrieveLevel=STUDY", "-k", "PatientName=CompressedSamples*",
        "-k", "StudyInstanceUID", "-k", "ModalitiesInStudy", "-k", "NumberOfStudyRelatedInstances",
        HOST, server.port, cwd=workdir,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    answers = [dcmread(path) for path in sorted(workdir.glob("rsp*.dcm"))]
    assert {str(a.StudyInstanceUID) for a in answers} == {CT_STUDY, MR_STUDY}
    assert {a.QueryRetrieveLevel for a in answers} == {"STUDY"}
    assert {str(a.ModalitiesInStudy) for a in answers} == {"CT", "MR"}


def test_series_level_find_with_findscu(server: DicomServer, workdir: Path) -> None:
    done = dcmtk(
        "findscu", "-S", "-X", "-aet", CLINIC_AET,
        "-k", "QueryRetrieveLevel=SERIES", "-k", f"StudyInstanceUID={CT_STUDY}",
        "-k", "SeriesInstanceUID", "-k", "Modality", HOST, server.port, cwd=workdir,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    (answer,) = [dcmread(path) for path in workdir.glob("rsp*.dcm")]
    assert answer.Modality == "CT"
    assert answer.StudyInstanceUID == CT_STUDY


def test_study_root_find_without_a_level_fails(server: DicomServer) -> None:
    assoc = _associate(server, (StudyRootQueryRetrieveInformationModelFind, ["1.2.840.10008.1.2"]))
    request = Dataset()
    request.PatientID = ""
    try:
        replies = list(assoc.send_c_find(request, StudyRootQueryRetrieveInformationModelFind))
    finally:
        assoc.release()
    assert [status.Status for status, _ in replies] == [0xA900]


@pytest.fixture
def destination(tmp_path: Path, callers: KnownCallers) -> Iterator[Path]:
    """dcmtk's storescp as the C-MOVE destination DEST, accepting every syntax."""
    folder = tmp_path / "dest"
    folder.mkdir()
    port = free_port()
    process = subprocess.Popen(
        [str(DCMTK / "storescp"), "+xa", "-aet", "DEST", "-od", str(folder), str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection((HOST, port), timeout=1).close()
            break
        except OSError:
            time.sleep(0.05)
    callers.destinations["DEST"] = (HOST, port)
    try:
        yield folder
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_move_with_movescu_keeps_jpeg2000(server: DicomServer, destination: Path) -> None:
    done = dcmtk(
        "movescu", "-S", "-aet", CLINIC_AET, "-aec", SERVER_AET, "-aem", "DEST",
        "-k", "QueryRetrieveLevel=STUDY", "-k", f"StudyInstanceUID={MR_STUDY}",
        HOST, server.port,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    (received,) = list(destination.iterdir())
    original = dcmread(sample("MR_small_jp2klossless.dcm"))
    moved = dcmread(received)
    assert moved.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.4.90"
    assert moved.PixelData == original.PixelData


def test_move_to_an_unknown_destination(server: DicomServer) -> None:
    assoc = _associate(server, (StudyRootQueryRetrieveInformationModelMove, ["1.2.840.10008.1.2"]))
    request = Dataset()
    request.QueryRetrieveLevel = "STUDY"
    request.StudyInstanceUID = CT_STUDY
    try:
        replies = list(
            assoc.send_c_move(request, "NOWHERE", StudyRootQueryRetrieveInformationModelMove)
        )
    finally:
        assoc.release()
    assert replies[-1][0].Status == 0xA801


def test_move_with_a_bad_identifier(server: DicomServer, destination: Path) -> None:
    assoc = _associate(server, (StudyRootQueryRetrieveInformationModelMove, ["1.2.840.10008.1.2"]))
    request = Dataset()
    request.QueryRetrieveLevel = "SERIES"  # without the study it belongs to
    try:
        replies = list(
            assoc.send_c_move(request, "DEST", StudyRootQueryRetrieveInformationModelMove)
        )
    finally:
        assoc.release()
    assert replies[-1][0].Status == 0xA900
    assert list(destination.iterdir()) == []


def test_get_with_getscu(server: DicomServer, workdir: Path) -> None:
    done = dcmtk(
        "getscu", "-S", "-aet", CLINIC_AET, "-aec", SERVER_AET, "-od", workdir,
        "-k", "QueryRetrieveLevel=STUDY", "-k", f"StudyInstanceUID={CT_STUDY}",
        HOST, server.port,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    (received,) = list(workdir.iterdir())
    assert dcmread(received).PixelData == dcmread(sample("CT_small.dcm")).PixelData


# --- pynetdicom tuning ----------------------------------------------------------------------------


def test_acceptor_associations_wake_on_messages(
    server: DicomServer, association: Association
) -> None:
    """The prompt reactor is in place, and the DUL polls fast only while messages flow."""
    import dicom.server as server_module

    if not server_module.PROMPT_REACTOR:
        pytest.skip("pynetdicom is not the version the prompt reactor was written for")
    (accepted,) = [a for a in server._ae.active_associations if a.is_acceptor]
    assert type(accepted).__name__ == "_PromptAssociation"
    dataset = dcmread(sample("CT_small.dcm"))
    assert association.send_c_store(dataset).Status == 0x0000
    deadline = time.monotonic() + 5
    while accepted.dul._run_loop_delay != 0.001 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert accepted.dul._run_loop_delay == 0.001  # back to pynetdicom's idle pace


def test_per_message_logging_handlers_are_unbound(server: DicomServer) -> None:
    from pynetdicom import evt
    from pynetdicom._handlers import standard_dimse_recv_handler

    bound = server._server.get_handlers(evt.EVT_DIMSE_RECV)
    assert all(handler[0] is not standard_dimse_recv_handler for handler in bound)
