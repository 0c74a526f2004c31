"""``kinema models``, ``kinema pull`` and ``kinema generate``: the model catalogue, weights, local runs."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from kinema.cli.common import announce_miniature, load_cli_settings
from kinema.config import Settings

if TYPE_CHECKING:
    from kinema.engine.base import Task


@click.command()
@click.argument("prompt")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True)
@click.option("--model", default=None, help="Model name (default: the configured default).")
@click.option("--image", type=click.Path(exists=True, dir_okay=False, path_type=Path), help="First frame.")
@click.option("--seconds", default=None, help="Clip length, e.g. 4.")
@click.option("--size", default=None, help="WIDTHxHEIGHT, e.g. 832x480.")
@click.option("--seed", type=int, default=None)
@click.option("--steps", type=int, default=None, help="Denoising steps.")
@click.option("--negative-prompt", default=None)
def generate(
    prompt: str,
    output: Path,
    model: str | None,
    image: Path | None,
    seconds: str | None,
    size: str | None,
    seed: int | None,
    steps: int | None,
    negative_prompt: str | None,
) -> None:
    """Generate one video locally, without a server, with a progress bar.

    Without --model it uses the configured default model; when that model has not been pulled on this
    machine and no KINEMA_DEFAULT_MODEL (or kinema.toml) chose it, the miniature tiny-wan, as
    scripts/serve.sh does, with a note saying so.
    """
    from kinema.engine.base import ModelNotAvailable
    from kinema.engine.registry import TINY_WAN
    from kinema.services.local import generate_locally

    settings = load_cli_settings(mode="dev")
    model = model or _local_default_model(settings, "i2v" if image is not None else "t2v")
    announce_miniature(settings, model)
    try:
        result = generate_locally(
            settings,
            prompt,
            output,
            model=model,
            image=image,
            seconds=seconds,
            size=size,
            seed=seed,
            steps=steps,
            negative_prompt=negative_prompt,
        )
    except ModelNotAvailable as exc:
        raise click.ClickException(f"{exc}; or try the offline miniature first: --model {TINY_WAN}") from None
    except Exception as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"wrote {output} ({result})")


def _local_default_model(settings: Settings, task: Task) -> str:
    """The model ``kinema generate`` uses when none is named (see its help)."""
    from kinema.container import build_registry
    from kinema.engine.hub import is_present
    from kinema.engine.registry import TINY_WAN, UnknownModel

    registry = build_registry(settings)
    spec = registry.resolve(None)
    explicit = "default_model" in settings.model_fields_set
    if spec.miniature or explicit or task not in spec.tasks:
        return spec.name  # as configured; a missing model fails with the pull command to run
    if is_present(spec, task, settings.resolved_models_dir):
        return spec.name
    try:
        fallback = registry.resolve(TINY_WAN).name
    except UnknownModel:  # the deployment does not offer the miniature
        return spec.name
    click.secho(
        f"note: the default model {spec.name} is not pulled on this machine, so this uses the miniature "
        f"{fallback}, as scripts/serve.sh does. For real video: kinema pull {spec.name} (or pass --model).",
        fg="yellow",
        err=True,
    )
    return fallback


@click.command()
@click.option("--markdown", is_flag=True, help="Print the size/seconds table used in docs/models.md.")
def models(markdown: bool) -> None:
    """List configured models, what each can do, and whether its weights are here."""
    from kinema.container import build_registry
    from kinema.engine.hub import is_present

    settings = load_cli_settings(mode="dev")
    registry = build_registry(settings)
    if markdown:
        click.echo(models_markdown(registry))
        return
    aliases = settings.resolved_aliases()
    for spec in registry.specs():
        here = {t: is_present(spec, t, settings.resolved_models_dir) for t in spec.tasks}
        state = "present" if all(here.values()) else ("partial" if any(here.values()) else "not pulled")
        names = [a for a, target in aliases.items() if target == spec.name]
        default = " (default)" if spec.name == settings.default_model else ""
        click.echo(f"{spec.name}{default}  [{state}]" + (f"  aliases: {', '.join(names)}" if names else ""))
        click.echo(f"    {spec.description}")
        click.echo(f"    {spec.capabilities()}")
        if spec.miniature:
            click.echo("    miniature: random weights, no meaningful video")


def models_markdown(registry: Any) -> str:
    """A Markdown table of every model's tasks, native sizes, accepted sizes and seconds -> frames."""
    rows = [
        "| model | tasks | fps | native sizes | also accepted (mapped) | seconds -> frames | default |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for spec in registry.specs():
        natives = sorted({f"{w}x{h}" for w, h in spec.sizes.values()})
        mapped = [f"{k} -> {w}x{h}" for k, (w, h) in spec.sizes.items() if k not in natives]
        secs = ", ".join(f"{k} -> {v}" for k, v in spec.seconds.items())
        rows.append(
            f"| `{spec.name}` | {', '.join(spec.tasks)} | {spec.fps} | {', '.join(natives)} | "
            f"{'; '.join(mapped)} | {secs} | {spec.default_size}, {spec.default_seconds} s |"
        )
    return "\n".join(rows)


@click.command()
@click.argument("model")
@click.option("--task", "tasks", multiple=True, help="Only these tasks' weights (t2v, i2v, v2v, vace).")
def pull(model: str, tasks: tuple[str, ...]) -> None:
    """Download a model's weights (pinned revision recorded in models.lock.json). Miniatures are built."""
    from kinema.container import build_registry
    from kinema.engine.hub import pull as hub_pull
    from kinema.engine.tiny import build_tiny_models

    settings = load_cli_settings(mode="dev")
    spec = build_registry(settings).resolve(model)
    if spec.miniature:
        build_tiny_models(settings.resolved_models_dir)
        click.echo(f"built {spec.name} in {settings.resolved_models_dir}")
        announce_miniature(settings, spec.name)
        return
    paths = hub_pull(spec, settings.resolved_models_dir, tasks=list(tasks) or None)  # type: ignore[arg-type]
    for task, path in paths.items():
        click.echo(f"{spec.name} {task}: {path}")
