from dataclasses import dataclass, field, fields

import reflex as rx

from app.auth.state import AuthState, acting_user, guarded
from app.core.db import run_in_session
from app.core.roles import Actor, Role
from app.core.settings import get_settings
from app.datasets import service

UPLOAD_ID = "dataset-upload"
# rx.select cannot offer an empty value: this one stands for "no label column".
NO_LABEL = "(none)"


@dataclass
class VersionRow:
    key: str
    dataset: str
    number: int
    filename: str
    rows: int
    size: str
    added: str


@dataclass
class ColumnRow:
    name: str
    type: str
    missing: int
    distinct: str
    lengths: str  # min / median / max characters of a text column
    over_limit: str


@dataclass
class LabelRow:
    label: str
    rows: int
    percent: float


@dataclass
class LineageRow:
    kind: str
    label: str


@dataclass
class VersionView:
    """Everything the page shows of one version."""

    sha256: str = ""
    format: str = ""
    row_count: int = 0
    duplicate_rows: int = 0
    length_unit: str = ""
    download_url: str = ""
    columns: list[ColumnRow] = field(default_factory=list)
    preview_header: list[str] = field(default_factory=list)
    preview_rows: list[list[str]] = field(default_factory=list)
    label_choices: list[str] = field(default_factory=list)
    distribution: list[LabelRow] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    lineage: list[LineageRow] = field(default_factory=list)


def _size(size_bytes: int) -> str:
    return f"{size_bytes / 1024 / 1024:.1f} MB" if size_bytes >= 1024 * 1024 else f"{max(1, size_bytes // 1024)} KB"


def _cell(value) -> str:
    return "" if value is None else str(value)


def _version_rows(*, db_session, actor: Actor) -> list[VersionRow]:
    return [
        VersionRow(
            key=f"{dataset.name}/{version.number}",
            dataset=dataset.name,
            number=version.number,
            filename=version.filename,
            rows=version.row_count,
            size=_size(version.size_bytes),
            added=f"{version.created_at:%Y-%m-%d %H:%M}",
        )
        for dataset, versions in service.list_datasets(db_session=db_session, actor=actor)
        for version in versions
    ]


def _version_view(*, db_session, actor: Actor, name: str, number: int, label_column: str) -> VersionView:
    details = service.version_details(
        db_session=db_session, actor=actor, name=name, number=number, label_column=label_column or None
    )
    dataset, version, quality, lineage = details.dataset, details.version, details.quality, details.lineage
    profile = version.profile
    return VersionView(
        sha256=version.sha256,
        format=version.format,
        row_count=version.row_count,
        duplicate_rows=quality["duplicate_rows"],
        length_unit=quality["length_unit"],
        download_url=f"/api/v1/datasets/{dataset.name}/versions/{version.number}/download",
        columns=[
            ColumnRow(
                name=column["name"],
                type=column["type"],
                missing=column["missing"],
                distinct=_cell(column["distinct"]) or "over 1000",
                lengths=("{min} / {median} / {max}".format(**column["text_lengths"]) if column["text_lengths"] else ""),
                over_limit=_cell(column["text_lengths"]["over_limit"]) if column["text_lengths"] else "",
            )
            for column in quality["columns"]
        ],
        preview_header=[column["name"] for column in profile["columns"]],
        preview_rows=[[_cell(value) for value in row] for row in profile["preview"]],
        label_choices=[NO_LABEL] + [column["name"] for column in profile["columns"] if column["counts"] is not None],
        distribution=[
            LabelRow(label=item["label"], rows=item["rows"], percent=round(item["share"] * 100, 1))
            for item in quality["label_distribution"] or []
        ],
        warnings=quality["warnings"],
        lineage=[LineageRow(kind=link.kind.replace("_", " "), label=link.label) for link in lineage],
    )


class DatasetsState(AuthState):
    versions: list[VersionRow] = []
    selected_key: str = ""
    selected_dataset: str = ""
    selected_number: int = 0
    label_column: str = NO_LABEL
    # The selected version, as VersionView's fields (plain vars: the page iterates them).
    sha256: str = ""
    format: str = ""
    row_count: int = 0
    duplicate_rows: int = 0
    length_unit: str = ""
    download_url: str = ""
    columns: list[ColumnRow] = []
    preview_header: list[str] = []
    preview_rows: list[list[str]] = []
    label_choices: list[str] = []
    distribution: list[LabelRow] = []
    warnings: list[str] = []
    lineage: list[LineageRow] = []
    upload_name: str = ""
    upload_limit_mb: float = get_settings().dataset_max_mb
    upload_limit_bytes: int = int(get_settings().dataset_max_mb * 1024 * 1024)

    async def _show(self, user, name: str, number: int) -> None:
        self.selected_key, self.selected_dataset, self.selected_number = f"{name}/{number}", name, number
        label = "" if self.label_column == NO_LABEL else self.label_column
        self._set_view(await run_in_session(_version_view, actor=user, name=name, number=number, label_column=label))

    def _set_view(self, view: VersionView) -> None:
        for item in fields(VersionView):
            setattr(self, item.name, getattr(view, item.name))

    async def _reload(self, user) -> None:
        self.versions = await run_in_session(_version_rows, actor=user)
        chosen = next((row for row in self.versions if row.key == self.selected_key), None)
        if chosen is None and self.versions:
            chosen = self.versions[0]
            self.label_column = NO_LABEL
        if chosen is None:
            self.selected_key, self.selected_dataset, self.selected_number = "", "", 0
            self._set_view(VersionView())
            return
        await self._show(user, chosen.dataset, chosen.number)

    @rx.event
    @guarded(Role.viewer)
    async def load(self):
        await self._reload(acting_user())

    @rx.event
    @guarded(Role.viewer)
    async def select_version(self, name: str, number: int):
        self.label_column = NO_LABEL
        await self._show(acting_user(), name, int(number))

    @rx.event
    @guarded(Role.viewer)
    async def choose_label(self, column: str):
        """The label distribution and its warnings for `column` (a choice the page offered, or none)."""
        self.label_column = column if column in self.label_choices else NO_LABEL
        await self._show(acting_user(), self.selected_dataset, self.selected_number)

    @rx.event
    @guarded(Role.staff)
    async def name_upload(self, name: str):
        self.upload_name = name[:100]

    @rx.event
    @guarded(Role.staff)
    async def upload(self, files: list[rx.UploadFile]):
        """The chosen file as the next version of the dataset named in the form."""
        if len(files) != 1:
            return rx.toast.error("Choose one file.")
        user = acting_user()
        uploaded = await service.upload_dataset(
            actor=user, settings=get_settings(), name=self.upload_name, upload=files[0]
        )
        self.selected_key = f"{uploaded.dataset.name}/{uploaded.version.number}"
        self.label_column = NO_LABEL
        await self._reload(user)
        if uploaded.existing:
            return rx.toast.info(
                f"This file is already version {uploaded.version.number} of {uploaded.dataset.name}; nothing new"
                " was stored."
            )
        return rx.toast.success(f"Stored as version {uploaded.version.number} of {uploaded.dataset.name}.")

    @rx.event
    @guarded(Role.staff)
    async def delete_version(self):
        name, number = self.selected_dataset, self.selected_number
        await run_in_session(
            service.delete_version, settings=get_settings(), actor=acting_user(), name=name, number=number
        )
        self.selected_key = ""
        await self._reload(acting_user())
        return rx.toast.info(f"Deleted version {number} of {name}.")
