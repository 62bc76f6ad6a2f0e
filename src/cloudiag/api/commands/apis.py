"""listApis and listCapabilities: what clients learn about this server."""

from __future__ import annotations

from typing import Any

from cloudiag import __version__
from cloudiag.api.context import RequestContext
from cloudiag.api.errors import ApiError
from cloudiag.api.registry import REGISTRY, Command, Param, ResponseField

#: The CloudStack release whose API this server speaks.
CLOUDSTACK_VERSION = "4.19.0.0"


async def list_apis(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    """Every command the caller may use, with its parameters (cloudmonkey `sync` reads this)."""
    commands = REGISTRY.allowed(ctx.user.role)
    if name := params.get("name"):
        commands = [c for c in commands if c.name.lower() == name.lower()]
        if not commands:
            raise ApiError.param(f"Unable to find API {name}, or you may not call it")
    return {"count": len(commands), "api": [c.describe() for c in commands]}


async def list_capabilities(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    """The server's capabilities, as CloudStack's listCapabilities."""
    return {
        "capability": {
            "cloudstackversion": CLOUDSTACK_VERSION,
            "cloudiagversion": __version__,
            "userpublictemplateenabled": False,
            "supportelb": "false",
            "projectinviterequired": False,
            "allowusercreateprojects": False,
            "customdiskofferingminsize": 1,
            "customdiskofferingmaxsize": 1024,
            "kvmsnapshotenabled": False,
            "apilimitinterval": 1,
            "apilimitmax": 0,
            "dynamicrolesenabled": False,
        }
    }


REGISTRY.add(
    Command(
        "listApis",
        "lists all available apis on the server, provided by the Api Discovery plugin",
        list_apis,
        params=(Param("name", "string", "API name"),),
        response=(
            ResponseField("name", "string", "the name of the api command"),
            ResponseField("description", "string", "description of the api"),
            ResponseField("isasync", "boolean", "true if api is asynchronous"),
            ResponseField("params", "set", "the list params the api accepts"),
            ResponseField("response", "set", "api response fields"),
        ),
        since="4.1.0",
        cmd_class="org.apache.cloudstack.discovery.ListApisCmd",
    )
)
REGISTRY.add(
    Command(
        "listCapabilities",
        "Lists capabilities",
        list_capabilities,
        response=(
            ResponseField("cloudstackversion", "string", "version of the cloud stack"),
            ResponseField(
                "apilimitinterval", "integer", "time interval (in seconds) to reset api count"
            ),
            ResponseField(
                "apilimitmax",
                "integer",
                "Max allowed number of api requests within the specified interval",
            ),
        ),
        cmd_class="org.apache.cloudstack.api.command.user.config.ListCapabilitiesCmd",
    )
)
