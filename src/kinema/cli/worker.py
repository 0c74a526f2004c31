"""``kinema worker``: a standalone worker process, stopped gracefully by SIGTERM."""

from __future__ import annotations

import signal
import threading
import time
from typing import Any

import click

from kinema.cli.common import load_cli_settings, private_files
from kinema.services.mediagate import limit_malloc_arenas


@click.command()
@click.option("--id", "worker_id", default=None, help="Worker id shown in logs and leases.")
@click.option("--threads", type=int, default=1, show_default=True, help="Jobs run at once by this process.")
@click.option(
    "--grace",
    type=float,
    default=None,
    help="After SIGTERM, seconds to let a running job finish before giving it back to the queue "
    "(default: wait for it). A second SIGTERM or Ctrl-C gives it back at once.",
)
def worker(worker_id: str | None, threads: int, grace: float | None) -> None:
    """Run a standalone worker against the configured database and blob folder."""
    private_files()
    limit_malloc_arenas()
    from kinema.container import Container

    container = Container.from_settings(load_cli_settings())
    container.engine.ensure_miniatures()
    stop = threading.Event()
    release_at: list[float] = []  # monotonic deadline after which running jobs go back to the queue

    def _stop(signum: int, _frame: Any) -> None:
        if stop.is_set():
            click.echo(f"signal {signum} again: giving running jobs back to the queue", err=True)
            release_at[:] = [0.0]
            return
        when = "finishing the current job" if grace is None else f"finishing the current job within {grace:g} s"
        click.echo(f"signal {signum}: {when}, then stopping", err=True)
        if grace is not None:
            release_at[:] = [time.monotonic() + grace]
        stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    workers = [
        container.make_worker(f"{worker_id}-{i}" if worker_id and threads > 1 else worker_id) for i in range(threads)
    ]
    runners = [threading.Thread(target=w.run, args=(stop,), daemon=True) for w in workers]
    for t in runners:
        t.start()
    container.start_webhooks()  # delivers webhook events until container.close()
    click.echo(f"worker(s) {', '.join(w.worker_id for w in workers)} waiting for jobs", err=True)
    while any(t.is_alive() for t in runners):
        for t in runners:
            t.join(timeout=0.2)
        if release_at and time.monotonic() >= release_at[0]:
            for w in workers:
                w.release()  # each fenced: a job that just finished is not touched
    container.close()
