"""The Datasets page's handlers, called as the browser would call them: viewers look and
choose a label column, only staff upload and delete."""

import io

import app.app  # noqa: F401 - builds every page and state
from app.core.db import session_scope
from app.datasets import service
from app.datasets.state import NO_LABEL, DatasetsState
from app.datasets.tables import LineageKind
from tests.datasets.conftest import stored_files
from tests.predict.test_state import send, signed_in

VIEWER_HANDLERS = {"load", "select_version", "choose_label"}
STAFF_HANDLERS = {"name_upload", "upload", "delete_version"}

MAIL = b"text,label\n" + b"".join(b"message %d,ham\n" % i for i in range(30)) + b"buy now,spam\nfree money,spam\n"


class PickedFile:
    """What rx.upload hands the handler: a name and the bytes to read."""

    def __init__(self, filename: str, data: bytes) -> None:
        self.filename = filename
        self._data = io.BytesIO(data)

    async def read(self, size: int = -1) -> bytes:
        return self._data.read(size)


def test_every_handler_checks_its_role():
    roles = {
        name: handler.fn.minimum_role.value
        for name, handler in DatasetsState.event_handlers.items()
        if hasattr(handler.fn, "minimum_role")
    }
    assert roles == {**dict.fromkeys(VIEWER_HANDLERS, "viewer"), **dict.fromkeys(STAFF_HANDLERS, "staff")}


async def test_staff_upload_and_everyone_sees_schema_rows_and_label_distribution(staff, viewer, settings, redis_url):
    tab = signed_in(DatasetsState, staff)
    await send(tab, DatasetsState.name_upload, "mail")
    await send(tab, DatasetsState.upload, [PickedFile("mail.csv", MAIL)])
    assert [(row.dataset, row.number, row.rows) for row in tab.versions] == [("mail", 1, 32)]
    assert (tab.selected_dataset, tab.selected_number) == ("mail", 1)

    looker = signed_in(DatasetsState, viewer)
    await send(looker, DatasetsState.load)
    assert looker.preview_header == ["text", "label"]
    assert looker.preview_rows[0] == ["message 0", "ham"] and len(looker.preview_rows) == 20
    assert [(c.name, c.type, c.missing) for c in looker.columns] == [("text", "text", 0), ("label", "text", 0)]
    assert looker.download_url == "/api/v1/datasets/mail/versions/1/download"
    assert looker.label_choices == [NO_LABEL, "text", "label"]
    assert looker.distribution == []

    await send(looker, DatasetsState.choose_label, "label")
    assert [(row.label, row.rows) for row in looker.distribution] == [("ham", 30), ("spam", 2)]
    assert any("'spam' (2)" in warning for warning in looker.warnings)
    assert any("'ham' has 94%" in warning for warning in looker.warnings)
    await send(looker, DatasetsState.choose_label, NO_LABEL)
    assert looker.distribution == []


async def test_a_viewer_sending_upload_or_delete_changes_nothing(staff, viewer, settings, redis_url):
    tab = signed_in(DatasetsState, staff)
    await send(tab, DatasetsState.name_upload, "mail")
    await send(tab, DatasetsState.upload, [PickedFile("mail.csv", MAIL)])
    files = stored_files(settings)

    looker = signed_in(DatasetsState, viewer)
    await send(looker, DatasetsState.load)
    looker.upload_name = "mine"
    await send(looker, DatasetsState.upload, [PickedFile("mine.csv", MAIL + b"more,ham\n")])
    await send(looker, DatasetsState.delete_version)
    await send(looker, DatasetsState.load)
    assert [(row.dataset, row.number) for row in looker.versions] == [("mail", 1)]
    assert stored_files(settings) == files


async def test_a_bad_file_from_the_page_is_a_message_and_nothing_is_stored(staff, settings, redis_url):
    tab = signed_in(DatasetsState, staff)
    await send(tab, DatasetsState.name_upload, "bad")
    toast = await send(tab, DatasetsState.upload, [PickedFile("bad.csv", b"a,b\n1,2,3\n")])
    assert "Row 2 of the file (the header is row 1) has 3 fields, expected 2" in str(toast)
    await send(tab, DatasetsState.load)
    assert tab.versions == []
    assert stored_files(settings) == []


async def test_deleting_from_the_page_is_refused_naming_the_model_trained_on_the_version(staff, settings, redis_url):
    tab = signed_in(DatasetsState, staff)
    await send(tab, DatasetsState.name_upload, "mail")
    await send(tab, DatasetsState.upload, [PickedFile("mail.csv", MAIL)])
    with session_scope() as db_session:
        _, version = service.get_version(db_session=db_session, actor=staff, name="mail", number=1)
        service.record_lineage(
            db_session=db_session,
            actor=staff,
            dataset_version_id=version.id,
            kind=LineageKind.model_version,
            ref_id="1",
            label="model spam version 1",
        )
    await send(tab, DatasetsState.load)
    assert [(link.kind, link.label) for link in tab.lineage] == [("model version", "model spam version 1")]
    toast = await send(tab, DatasetsState.delete_version)
    assert "Version 1 of 'mail' cannot be deleted: it is used by model spam version 1." in str(toast)
    await send(tab, DatasetsState.load)
    assert [(row.dataset, row.number) for row in tab.versions] == [("mail", 1)]
