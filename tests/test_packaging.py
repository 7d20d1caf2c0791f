"""The Makefile, deploy/Dockerfile and what git and the Docker build context leave out.
No Docker engine here: these read the files (the stack tests in tests/test_runner_stack.py
start the same `strata run` the image runs)."""

import json
import re
import subprocess

from app.core.runner import supervise
from tests.test_runner import REPO

DOCKERFILE = REPO / "deploy" / "Dockerfile"
MAKEFILE = REPO / "Makefile"


def dockerfile_stages() -> dict[str, list[tuple[str, str]]]:
    """{stage name: [(INSTRUCTION, arguments)]}, continuation lines joined."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    stages: dict[str, list[tuple[str, str]]] = {}
    current = None
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        instruction, _, args = line.partition(" ")
        instruction = instruction.upper()
        if instruction == "FROM":
            match = re.search(r"\bAS\s+(\S+)", args, re.IGNORECASE)
            current = match.group(1) if match else f"stage{len(stages)}"
            stages[current] = []
        if current is not None:
            stages[current].append((instruction, args))
    return stages


def instructions(stage: list[tuple[str, str]], name: str) -> list[str]:
    return [args for instruction, args in stage if instruction == name]


def test_dockerfile_runs_the_same_strata_run(monkeypatch):
    stages = dockerfile_stages()
    final = list(stages.values())[-1]
    assert [json.loads(c) for c in instructions(final, "CMD")] == [["strata", "run"]]
    entrypoints = [json.loads(e) for e in instructions(final, "ENTRYPOINT")]
    assert all("strata" not in " ".join(e) for e in entrypoints)  # only an init (tini) in front
    # ... and `strata run` is the runner's run(), the one the stack test below drives.
    from typer.testing import CliRunner

    import app.cli as cli

    calls = []
    monkeypatch.setattr(cli, "migrate", lambda: calls.append("migrate"))
    monkeypatch.setattr(supervise, "run", lambda settings: calls.append(("run", settings)) or 7)
    result = CliRunner().invoke(cli.cli, ["run"])
    assert result.exit_code == 7, result.output
    assert calls[0] == "migrate" and calls[1][0] == "run"


def test_dockerfile_is_multi_stage_and_the_runtime_has_no_build_extra():
    stages = dockerfile_stages()
    assert len(stages) >= 2
    build, runtime = stages.get("build"), list(stages.values())[-1]
    assert build is not None
    build_runs = " ".join(instructions(build, "RUN"))
    assert "strata models build" in build_runs
    assert "/opt/strata/models" in build_runs
    runtime_text = " ".join(args for _, args in runtime)
    assert "torch" not in runtime_text
    assert "optional-dependencies" not in runtime_text
    assert ".[build" not in runtime_text and "[build]" not in runtime_text
    assert any("--from=build" in c and "/opt/strata/models" in c for c in instructions(runtime, "COPY"))
    assert "bun@" in runtime_text  # bun from the npm registry, never a download
    assert "build-frontend" in runtime_text  # pre-built frontend: a start only serves it


def test_dockerfile_runtime_contract():
    runtime = list(dockerfile_stages().values())[-1]
    assert instructions(runtime, "VOLUME") == ["/data"]
    assert "3000" in instructions(runtime, "EXPOSE")
    assert any(re.search(r"\bSTRATA_DATA_DIR=/data\b", e) for e in instructions(runtime, "ENV"))
    healthchecks = instructions(runtime, "HEALTHCHECK")
    assert len(healthchecks) == 1
    assert "http://127.0.0.1:" in healthchecks[0]
    assert "/api/v1/health" in healthchecks[0]
    assert re.search(r"\bCMD\b", healthchecks[0])


def docker_ignored(path: str) -> bool:
    """Whether deploy/Dockerfile.dockerignore keeps `path` (relative to the build
    context) out of the context, with Docker's rules: patterns anchor at the
    context root, `**` spans directories, a matched directory takes its contents,
    the last matching line wins and `!` re-includes."""
    ignored = False
    for raw in (REPO / "deploy" / "Dockerfile.dockerignore").read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        pattern = line.lstrip("!").strip().strip("/")
        regex = ""
        for token in re.split(r"(\*\*/|\*\*|\*|\?)", pattern):
            regex += {"**/": "(?:.*/)?", "**": ".*", "*": "[^/]*", "?": "[^/]"}.get(token, re.escape(token))
        parts = path.split("/")
        if any(re.fullmatch(regex, "/".join(parts[:i])) for i in range(1, len(parts) + 1)):
            ignored = not negate
    return ignored


def test_env_files_stay_out_of_git_and_the_image():
    for path in (".env", ".env.production", "deploy/.env", "app/.env"):
        ignored = subprocess.run(["git", "check-ignore", "-q", "--no-index", path], cwd=REPO, check=False)
        assert ignored.returncode == 0, f"git would commit {path}"
        assert docker_ignored(path), f"docker build would copy {path} into the image"
    assert docker_ignored("data/run/valkey.password")
    for path in ("app/app.py", "pyproject.toml", "rxconfig.py", "reflex.lock/package.json", "assets/logo.svg"):
        assert not docker_ignored(path), path


def test_makefile_targets_use_the_strata_commands():
    text = MAKEFILE.read_text()
    run_recipe = re.search(r"^run:.*?\n((?:\t.*\n)+)", text, re.MULTILINE).group(1)
    assert "$(BIN)/strata run" in run_recipe
    stop_recipe = re.search(r"^stop:.*?\n((?:\t.*\n)+)", text, re.MULTILINE).group(1)
    assert "strata stop" in stop_recipe
    assert "bun@$(BUN_VERSION)" in text and re.search(r"^BUN_VERSION := 1\.4\.4$", text, re.MULTILINE)
    assert "--registry=" in text
