"""Admin model imports: read only from the model import folder (STRATA_MODEL_IMPORT_DIR),
never through a link, refused with messages and registry events that name no server path."""

import json
import os
import re
import shutil

import httpx
import pytest

from app.api import build_api
from app.core.db import session_scope
from app.core.errors import Forbidden, InvalidInput
from app.predict import model_import, registry, service
from models.manifest import EMBEDDER_NAME, read_manifest
from tests.predict.test_api import api_key

pytestmark = pytest.mark.usefixtures("builtin_models")

IMPORT_URL = f"/api/v1/models/{EMBEDDER_NAME}/versions/import"
# A server path in a message: a slash-separated absolute path such as /etc or /tmp/x.
ABSOLUTE_PATH = re.compile(r"(^|[\s'\"(])/[\w.-]")


@pytest.fixture
async def client():
    transport = httpx.ASGITransport(app=build_api())
    async with httpx.AsyncClient(transport=transport, base_url="http://strata") as client:
        yield client


@pytest.fixture
def admin(make_user):
    return make_user("admin@x.io", role="admin")


@pytest.fixture
def stored(settings):
    """Where the registry keeps imported versions; emptied so a test sees only its own copies."""
    folder = settings.resolved_data_dir / "predict" / EMBEDDER_NAME
    shutil.rmtree(folder, ignore_errors=True)
    return folder


def registered(actor) -> list[int]:
    with session_scope() as db_session:
        return [v.number for v in registry.list_versions(db_session=db_session, actor=actor, model_name=EMBEDDER_NAME)]


def server_paths(settings, *more) -> list[str]:
    return [str(p) for p in (settings.resolved_data_dir, settings.resolved_models_dir, *more)]


def assert_names_no_server_path(text: str, paths: list[str]) -> None:
    assert not ABSOLUTE_PATH.search(text), text
    assert not any(path in text for path in paths), text


async def test_a_folder_in_the_import_folder_imports_serves_and_its_event_names_no_server_path(
    client, settings, admin, viewer, model_folder, import_root, stored, tmp_path
):
    response = await client.post(IMPORT_URL, headers=api_key(admin), json={"path": "minilm-copy"})
    assert response.status_code == 201, response.text
    assert (response.json()["number"], response.json()["stage"]) == (2, "staging")
    assert response.json()["sha256"] == read_manifest(model_folder).sha256

    events = (await client.get(f"/api/v1/models/{EMBEDDER_NAME}/events", headers=api_key(viewer))).json()
    (imported,) = [e for e in events if e["action"] == "import_version"]
    assert "minilm-copy" in imported["detail"] and read_manifest(model_folder).sha256[:12] in imported["detail"]
    for event in events:
        assert_names_no_server_path(event["detail"], server_paths(settings, import_root, tmp_path))

    shutil.rmtree(model_folder)  # served from the registry's copy
    builtin = await service.predict(actor=viewer, model_name=EMBEDDER_NAME, inputs=["same model"], version_number=1)
    copy = await service.predict(actor=viewer, model_name=EMBEDDER_NAME, inputs=["same model"], version_number=2)
    assert copy.version == 2 and copy.cached == 0
    assert copy.results[0].embedding == pytest.approx(builtin.results[0].embedding, abs=1e-5)


@pytest.mark.parametrize(
    "path",
    [
        "/etc",
        "../../",
        "../../etc",
        "minilm-copy/../../..",
        "{models_dir}",  # a valid built model, but outside the import folder
        "{import_root}/../outside",
        "",
        ".",
    ],
)
async def test_paths_outside_the_import_folder_are_refused_without_naming_server_paths(
    client, settings, admin, model_folder, import_root, stored, tmp_path, path
):
    shutil.copytree(model_folder, tmp_path / "outside")
    path = path.format(models_dir=settings.resolved_models_dir / EMBEDDER_NAME, import_root=import_root)
    response = await client.post(IMPORT_URL, headers=api_key(admin), json={"path": path})
    assert response.status_code == 422, response.text
    assert "model import folder" in response.json()["detail"]
    assert_names_no_server_path(response.json()["detail"], server_paths(settings, import_root, tmp_path))
    assert registered(admin) == [1] and not (stored / "v2").exists()


def link_a_file(folder, settings, tmp_path):
    (folder / "tokenizer.json").unlink()
    (folder / "tokenizer.json").symlink_to(settings.resolved_models_dir / EMBEDDER_NAME / "tokenizer.json")
    return "minilm-copy"


def link_a_directory(folder, settings, tmp_path):
    (folder / "extra").symlink_to("/etc", target_is_directory=True)
    return "minilm-copy"


def link_a_nested_file(folder, settings, tmp_path):
    (folder / "nested").mkdir()
    (folder / "nested" / "notes.txt").symlink_to("/etc/hostname")
    return "minilm-copy"


def link_the_folder(folder, settings, tmp_path):
    (folder.parent / "linked").symlink_to(settings.resolved_models_dir / EMBEDDER_NAME, target_is_directory=True)
    return "linked"


def link_a_parent(folder, settings, tmp_path):
    (folder.parent / "via").symlink_to(settings.resolved_models_dir, target_is_directory=True)
    return f"via/{EMBEDDER_NAME}"


@pytest.mark.parametrize(
    "make_link", [link_a_file, link_a_directory, link_a_nested_file, link_the_folder, link_a_parent]
)
async def test_a_symlink_anywhere_in_an_import_is_refused(
    client, settings, admin, model_folder, import_root, stored, tmp_path, make_link
):
    path = make_link(model_folder, settings, tmp_path)
    response = await client.post(IMPORT_URL, headers=api_key(admin), json={"path": path})
    assert response.status_code == 422, response.text
    assert "symbolic link" in response.json()["detail"]
    assert_names_no_server_path(response.json()["detail"], server_paths(settings, import_root, tmp_path))
    assert registered(admin) == [1] and not (stored / "v2").exists()


def test_a_hard_linked_file_is_refused(settings, admin, model_folder, stored, tmp_path):
    os.link(model_folder / "tokenizer.json", tmp_path / "elsewhere.json")
    with session_scope() as db_session, pytest.raises(InvalidInput, match="hard link"):
        registry.import_embedder_version(
            db_session=db_session, actor=admin, model_name=EMBEDDER_NAME, path="minilm-copy"
        )
    assert registered(admin) == [1] and not (stored / "v2").exists()


def test_a_named_pipe_is_refused_without_waiting_for_a_writer(settings, admin, model_folder, stored):
    os.mkfifo(model_folder / "pipe")
    with session_scope() as db_session, pytest.raises(InvalidInput, match="not a regular file"):
        registry.import_embedder_version(
            db_session=db_session, actor=admin, model_name=EMBEDDER_NAME, path="minilm-copy"
        )
    assert registered(admin) == [1] and not (stored / "v2").exists()


def test_a_manifest_naming_files_outside_its_folder_is_refused(settings, admin, model_folder, import_root, stored):
    shutil.copy(model_folder / "tokenizer.json", import_root / "tokenizer.json")
    manifest = json.loads((model_folder / "manifest.json").read_text())
    (model_folder / "manifest.json").write_text(json.dumps({**manifest, "tokenizer_file": "../tokenizer.json"}))
    (model_folder / "tokenizer.json").unlink()
    with session_scope() as db_session, pytest.raises(InvalidInput, match="outside its folder"):
        registry.import_embedder_version(
            db_session=db_session, actor=admin, model_name=EMBEDDER_NAME, path="minilm-copy"
        )
    assert registered(admin) == [1] and not (stored / "v2").exists()


def test_only_an_admin_imports_and_a_broken_model_is_explained(settings, admin, staff, model_folder, import_root):
    with session_scope() as db_session, pytest.raises(Forbidden):
        registry.import_embedder_version(
            db_session=db_session, actor=staff, model_name=EMBEDDER_NAME, path="minilm-copy"
        )

    manifest = read_manifest(model_folder)
    with (model_folder / manifest.file).open("r+b") as onnx_file:
        onnx_file.seek(1000)
        onnx_file.write(b"tampered")
    with session_scope() as db_session, pytest.raises(InvalidInput, match="sha256") as refused:
        registry.import_embedder_version(
            db_session=db_session, actor=admin, model_name=EMBEDDER_NAME, path="minilm-copy"
        )
    assert_names_no_server_path(refused.value.message, server_paths(settings, import_root))

    (import_root / "empty").mkdir()
    with session_scope() as db_session, pytest.raises(InvalidInput, match="no model manifest") as refused:
        registry.import_embedder_version(db_session=db_session, actor=admin, model_name=EMBEDDER_NAME, path="empty")
    assert_names_no_server_path(refused.value.message, server_paths(settings, import_root))
    for missing in ("missing", "x" * 300):  # the second is too long a name for the file system
        with session_scope() as db_session, pytest.raises(InvalidInput, match=f"no folder '{missing}'"):
            registry.import_embedder_version(db_session=db_session, actor=admin, model_name=EMBEDDER_NAME, path=missing)
    assert registered(admin) == [1]


def test_a_folder_swapped_for_a_link_after_it_was_checked_is_refused(settings, model_folder, stored):
    """The copy opens each folder without following links, so the check cannot be raced."""
    folder = model_import.confined_folder("minilm-copy")
    shutil.rmtree(model_folder)
    model_folder.symlink_to(settings.resolved_models_dir / EMBEDDER_NAME, target_is_directory=True)
    with pytest.raises(InvalidInput, match="symbolic link"):
        model_import.copy_checked(folder, stored / "v2", dimensions=None)
    assert not (stored / "v2").exists()
