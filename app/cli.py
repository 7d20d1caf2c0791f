"""`strata`: run, migrate and administer Strata from a shell."""

import json
import sys
from pathlib import Path

import typer

# Users and keys are managed as SYSTEM: whoever can run `strata` holds the server's files
# and secrets already, so the command needs no sign-in of its own.
from app.auth import service as auth_service
from app.auth.service import SYSTEM
from app.core.db import get_engine, session_scope
from app.core.errors import StrataError
from app.core.settings import get_settings

cli = typer.Typer(help="Strata: a self-hosted AI workbench.", no_args_is_help=True)
users_cli = typer.Typer(help="Manage users.", no_args_is_help=True)
keys_cli = typer.Typer(help="Manage API keys.", no_args_is_help=True)
models_cli = typer.Typer(help="Build and verify the ONNX models.", no_args_is_help=True)
cli.add_typer(users_cli, name="users")
cli.add_typer(keys_cli, name="keys")
cli.add_typer(models_cli, name="models")


def _fail(message: str) -> None:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(1)


@cli.command()
def migrate() -> None:
    """Apply database migrations, create the first admin if there is no user and register the built-in models."""
    from app.backup import upgrade
    from app.core import migrations
    from app.predict import registry as predict_registry

    settings = get_settings()
    if settings.effective_database_url.startswith("sqlite"):
        settings.resolved_data_dir.mkdir(parents=True, exist_ok=True)
    try:
        upgrade.upgrade(settings, log=typer.echo)
    except StrataError as exc:
        _fail(exc.message)
    typer.echo(f"Database at revision {migrations.current_revision(get_engine())}.")
    with session_scope() as db_session:
        generated = auth_service.ensure_admin(db_session=db_session, settings=settings)
    if generated:
        typer.secho(
            f"\nCreated admin {settings.admin_email} with password:\n\n    {generated}\n\n"
            "It is shown only this once. Change it from Admin > Users, or set "
            "STRATA_ADMIN_EMAIL / STRATA_ADMIN_PASSWORD before the first start.\n",
            fg=typer.colors.YELLOW,
        )
    with session_scope() as db_session:
        for name in predict_registry.ensure_builtin_models(db_session=db_session, actor=SYSTEM, settings=settings):
            typer.echo(f"Registered the built-in model {name}.")


@cli.command("backup")
def backup_command(file: Path) -> None:
    """Write FILE (.tar.gz): one archive of the database, stored files, models, vectors and settings, while Strata serves."""
    from app.backup import backup_and_restore as backup

    if file.exists():
        _fail(f"{file} exists already; choose another name.")
    summary = backup.create_backup(file, settings=get_settings(), on_progress=lambda _f, message: typer.echo(message))
    typer.echo(
        f"Backup written to {summary.path} ({summary.size_bytes / 1e6:.1f} MB): migration {summary.revision}, "
        f"{sum(summary.tables.values())} rows, {summary.files} files, {summary.models} model files, "
        f"{sum(summary.vectors.values())} vectors."
    )


@cli.command("restore")
def restore_command(
    file: Path,
    force: bool = typer.Option(False, "--force", help="Replace the data that is there"),
) -> None:
    """Restore FILE, written by `strata backup`, into an empty data dir and database (or over them with --force)."""
    from app.backup import backup_and_restore as backup

    try:
        summary = backup.restore_backup(
            file, settings=get_settings(), force=force, on_progress=lambda _f, message: typer.echo(message)
        )
    except StrataError as exc:
        _fail(exc.message)
    typer.echo(
        f"Restored {summary.rows} rows (migration {summary.revision}, now at the newest), {summary.files} files, "
        f"{summary.models} model files and {sum(summary.vectors.values())} vectors."
    )


@cli.command()
def run() -> None:
    """Start Strata (database migrations, then every process under a supervisor)."""
    from app.core.runner import supervise

    migrate()
    raise typer.Exit(supervise.run(get_settings()))


@cli.command()
def stop() -> None:
    """Stop a Strata started with `strata run` from another shell."""
    from app.core.runner import supervise

    raise typer.Exit(supervise.stop(get_settings()))


@cli.command()
def worker() -> None:
    """Run one background-job worker (arq) in the foreground."""
    from jobs.worker import run_worker

    run_worker()


@users_cli.command("create")
def users_create(
    email: str,
    role: str = typer.Option("viewer", help="admin, staff or viewer"),
    name: str = typer.Option("", help="Display name"),
    password: str = typer.Option(..., prompt=True, hide_input=True, confirmation_prompt=True),
) -> None:
    """Create a user."""
    try:
        with session_scope() as db_session:
            user = auth_service.create_user(
                db_session=db_session, actor=SYSTEM, email=email, name=name, role=role, password=password
            )
            typer.echo(f"Created {user.email} ({user.role}), id {user.id}.")
    except StrataError as exc:
        _fail(exc.message)


@users_cli.command("list")
def users_list(as_json: bool = typer.Option(False, "--json", help="Print JSON")) -> None:
    """List users."""
    with session_scope() as db_session:
        users = auth_service.list_users(db_session=db_session, actor=SYSTEM)
        rows = [{"id": u.id, "email": u.email, "name": u.name, "role": u.role, "active": u.is_active} for u in users]
    if as_json:
        typer.echo(json.dumps(rows))
        return
    for row in rows:
        typer.echo(f"{row['id']:>4}  {row['email']:<40} {row['role']:<7} {'active' if row['active'] else 'inactive'}")


def _user_id(db_session, email: str) -> int:
    return auth_service.find_user(db_session=db_session, actor=SYSTEM, email=email).id


@users_cli.command("set-role")
def users_set_role(email: str, role: str) -> None:
    """Change a user's role."""
    try:
        with session_scope() as db_session:
            user = auth_service.update_user(
                db_session=db_session, actor=SYSTEM, user_id=_user_id(db_session, email), role=role
            )
            typer.echo(f"{user.email} is now {user.role}.")
    except StrataError as exc:
        _fail(exc.message)


@keys_cli.command("create")
def keys_create(user: str = typer.Option(..., "--user", help="Owner's email"), name: str = "API key") -> None:
    """Create an API key for a user; the key is printed once."""
    try:
        with session_scope() as db_session:
            key, plaintext = auth_service.create_api_key(
                db_session=db_session, actor=SYSTEM, user_id=_user_id(db_session, user), name=name
            )
            typer.echo(f"API key {key.id} for {user} (shown once, store it now):", err=True)
            typer.echo(plaintext)
    except StrataError as exc:
        _fail(exc.message)


@keys_cli.command("list")
def keys_list() -> None:
    """List API keys (never their secrets)."""
    with session_scope() as db_session:
        for key, owner in auth_service.list_api_keys(db_session=db_session, actor=SYSTEM):
            state = f"revoked {key.revoked_at:%Y-%m-%d}" if key.revoked_at else "active"
            typer.echo(f"{key.id:>4}  {key.prefix}…  {owner.email:<40} {key.name:<20} {state}")


@keys_cli.command("revoke")
def keys_revoke(key_id: int) -> None:
    """Revoke an API key by its id (see `strata keys list`)."""
    try:
        with session_scope() as db_session:
            auth_service.revoke_api_key(db_session=db_session, actor=SYSTEM, key_id=key_id)
            typer.echo(f"API key {key_id} revoked.")
    except StrataError as exc:
        _fail(exc.message)


@models_cli.command("build")
def models_build(force: bool = typer.Option(False, help="Rebuild even if up to date")) -> None:
    """Export the ONNX models (only those whose inputs changed)."""
    from models.build import build_models

    manifests = build_models(get_settings().resolved_models_dir, force=force, log=typer.echo)
    for manifest in manifests:
        typer.echo(
            f"{manifest.name}: {manifest.file} sha256 {manifest.sha256[:16]}… parity {manifest.parity.min_cosine:.5f}"
        )


@models_cli.command("verify")
def models_verify() -> None:
    """Re-check sha256 and parity of every installed model and measure its speed."""
    from models.verify import verify_all

    reports = verify_all(get_settings().resolved_models_dir)
    typer.echo(json.dumps(reports, indent=2))
    if not reports or not all(report["passed"] for report in reports):
        raise typer.Exit(1)


def main() -> None:
    from pydantic import ValidationError

    from app.core.logging import configure_logging

    try:
        settings = get_settings()
    except ValidationError as exc:
        problems = "; ".join(error["msg"].removeprefix("Value error, ") for error in exc.errors())
        typer.secho(f"error: invalid configuration: {problems}", fg=typer.colors.RED, err=True)
        sys.exit(2)
    configure_logging(settings.log_level)
    cli()
