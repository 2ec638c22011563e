"""FastAPI dependencies that hand routes the process's services."""

from __future__ import annotations

from typing import Annotated, cast

from fastapi import Depends, Request

from mailgate.runtime.container import Container


async def get_container(request: Request) -> Container:
    # async: FastAPI runs a plain ``def`` dependency in a worker thread (a thread hop per request)
    return cast(Container, request.app.state.container)


ContainerDep = Annotated[Container, Depends(get_container)]
