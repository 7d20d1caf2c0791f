"""A version's data-quality report, from its stored profile (app/datasets/profiling.py):
nothing here reads the file again, so choosing a label column costs no parsing."""

from app.core.errors import InvalidInput

# Warnings a user should heed before training on a column as labels.
MIN_CLASS_ROWS = 10
MAX_CLASS_SHARE = 0.9


def _column(profile: dict, name: str, role: str) -> dict:
    for column in profile["columns"]:
        if column["name"] == name:
            return column
    existing = ", ".join(repr(column["name"]) for column in profile["columns"])
    raise InvalidInput(f"There is no column {name!r} to use as the {role}; the columns are {existing}.")


def _share(count: int, total: int) -> float:
    return round(count / total, 4) if total else 0.0


def _label_distribution(profile: dict, column: dict, warnings: list[str]) -> list[dict]:
    name = column["name"]
    if column["counts"] is None:
        raise InvalidInput(
            f"The column {name!r} cannot be a label column: it has more than 1000 different values"
            " (or lists and objects); choose the column that holds the classes."
        )
    labelled = sum(column["counts"].values())
    distribution = [
        {"label": label, "rows": rows, "share": _share(rows, labelled)}
        for label, rows in sorted(column["counts"].items(), key=lambda item: (-item[1], item[0]))
    ]
    if column["missing"]:
        warnings.append(
            f"{column['missing']} rows have no label in {name!r} (the first is row {column['first_missing_row']});"
            " training leaves them out."
        )
    if len(distribution) < 2:
        warnings.append(f"The column {name!r} has {len(distribution)} class; a classifier needs at least two.")
    small = [item for item in distribution if item["rows"] < MIN_CLASS_ROWS]
    if small:
        listed = ", ".join(f"{item['label']!r} ({item['rows']})" for item in small[:10])
        more = f" and {len(small) - 10} more" if len(small) > 10 else ""
        warnings.append(
            f"{len(small)} classes have fewer than {MIN_CLASS_ROWS} rows: {listed}{more}. The holdout may miss"
            " them and their scores will be unreliable; add examples or merge classes."
        )
    if distribution and distribution[0]["share"] > MAX_CLASS_SHARE:
        top = distribution[0]
        warnings.append(
            f"The class {top['label']!r} has {top['share']:.0%} of the labelled rows: a model that always answers"
            " it scores that accuracy; look at macro-F1 and the per-class scores."
        )
    return distribution


def _text_warnings(profile: dict, column: dict, warnings: list[str]) -> None:
    name = column["name"]
    if column["text"] is None:
        warnings.append(f"The column {name!r} holds {column['type']} values, not text.")
        return
    if column["missing"]:
        warnings.append(
            f"{column['missing']} texts in {name!r} are empty (the first is row {column['first_missing_row']})."
        )
    if column["text"]["over_limit"]:
        warnings.append(
            f"{column['text']['over_limit']} texts in {name!r} are longer than the embedder's limit of"
            f" {profile['max_word_pieces']} word pieces (the first is row {column['text']['first_over_limit_row']});"
            " the embedder reads only their start."
        )


def quality_report(profile: dict, *, label_column: str | None = None, text_column: str | None = None) -> dict:
    """Per column: type, empty or missing values, distinct values, text lengths; duplicate
    rows; the label distribution of `label_column`; and the warnings. Without a text column
    chosen, every text column other than the label column is checked."""
    warnings: list[str] = []
    label = _column(profile, label_column, "label column") if label_column else None
    text = _column(profile, text_column, "text column") if text_column else None
    if profile["duplicate_rows"]:
        warnings.append(
            f"{profile['duplicate_rows']} rows repeat an earlier row exactly; a repeated row can land in both the"
            " training part and the holdout and flatter the scores."
        )
    distribution = _label_distribution(profile, label, warnings) if label else None
    if text is not None:
        _text_warnings(profile, text, warnings)
    else:
        for column in profile["columns"]:
            if column["text"] is not None and column is not label:
                _text_warnings(profile, column, warnings)
    return {
        "row_count": profile["row_count"],
        "duplicate_rows": profile["duplicate_rows"],
        "length_unit": profile["length_unit"],
        "columns": [
            {
                "name": column["name"],
                "type": column["type"],
                "missing": column["missing"],
                "distinct": column["distinct"],
                "text_lengths": (
                    {key: column["text"][key] for key in ("min", "median", "max", "over_limit")}
                    if column["text"]
                    else None
                ),
            }
            for column in profile["columns"]
        ],
        "label_column": label_column,
        "text_column": text_column,
        "label_distribution": distribution,
        "warnings": warnings,
    }
