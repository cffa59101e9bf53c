"""`memskill serve`: an LLM role's model as an OpenAI-compatible endpoint on localhost."""

from __future__ import annotations

import typer

from memskill_cli.cli.state import state


def serve(
    ctx: typer.Context,
    role: str = typer.Option("executor", help="Whose model to serve: executor, designer, answerer or judge."),
    host: str = typer.Option("127.0.0.1", help="Interface to bind (default: this machine only)."),
    port: int = typer.Option(8000, help="Port."),
) -> None:
    """Serve a role's model (the embedded llama.cpp model by default, or in-process vLLM) at
    http://HOST:PORT/v1 (`/v1/chat/completions` with JSON-schema output, `/v1/models`), so several processes and
    third-party tools share one loaded model. Point any role at it with backend: openai and
    base_urls: [http://127.0.0.1:PORT/v1].

    Example: memskill serve --port 8000 &; MEMSKILL_LLM__ANSWERER__BACKEND=openai ... memskill eval
    """
    import uvicorn

    from memskill_cli.llm import create_backend
    from memskill_cli.serving import create_app

    app_state = state(ctx)
    settings = app_state.settings().llm.role(role)
    if settings.backend == "openai":
        raise typer.BadParameter(f"llm.{role} is itself an endpoint ({settings.base_urls}); serve a local model",
                                 param_hint="--role")
    backend = create_backend(settings)
    app = create_app(backend, settings.model, settings.n_ctx, settings.max_tokens)
    app_state.console.print(f"serving {settings.model} ({settings.backend}, context {settings.n_ctx}, "
                            f"{settings.n_parallel} slot(s)) at http://{host}:{port}/v1")
    uvicorn.run(app, host=host, port=port, log_level="warning")
