"""Delivery test routes: ``POST /v1/delivery-test/account/{account}``,
``GET /v1/delivery-test/check/{deliveryTest}`` (a local test: see services/delivery_test.py)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path
from pydantic import BaseModel, ConfigDict, StringConstraints

from mailgate.api.auth import ApiToken
from mailgate.api.deps import ContainerDep
from mailgate.api.routes.available import need
from mailgate.errors import Forbidden

router = APIRouter(prefix="/v1", tags=["Delivery Test"])


class DeliveryStartIn(BaseModel):
    model_config = ConfigDict(extra="ignore")

    gateway: Annotated[str, StringConstraints(max_length=256)] | Literal[False] | None = None


@router.post("/delivery-test/account/{account}", summary="Create delivery test")
async def start_test(
    c: ContainerDep,
    _token: ApiToken,
    account: str = Path(..., max_length=256),
    body: DeliveryStartIn | None = None,
) -> dict[str, Any]:
    gateway = body.gateway if body is not None and body.gateway else None
    return await need(c.delivery_tests, "Delivery tests").start(account, gateway)


@router.get("/delivery-test/check/{deliveryTest}", summary="Check test status")
async def check_test(
    c: ContainerDep, token: ApiToken, deliveryTest: str = Path(..., max_length=256)
) -> dict[str, Any]:
    tests = need(c.delivery_tests, "Delivery tests")
    if token.account is not None and await tests.account_of(deliveryTest) != token.account:
        raise Forbidden("This token is bound to another account", "AccountMismatch")
    return await tests.check(deliveryTest)
