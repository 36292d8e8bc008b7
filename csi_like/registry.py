"""Finding a driver by provisioner name, so a third party can add one without editing us.

Drivers register under the entry-point group `storagelab.csi_like_drivers`: the entry point's
name is the provisioner name (e.g. "storagelab.io/local") and its object a factory taking one
mapping of options (`factory(options) -> Driver`). The two built-in drivers are known even
when the package metadata is not installed (running from a checkout). An unknown name raises
`NotMine`, which a provisioning controller treats as "a claim for someone else".
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from importlib import metadata
from typing import Any

from csi_like import contract, errors

ENTRY_POINT_GROUP = "storagelab.csi_like_drivers"
BUILTIN: Mapping[str, str] = {
    "storagelab.io/local": "csi_like.local:from_options",
    "storagelab.io/nfs": "csi_like.nfs:from_options",
}
DriverFactory = Callable[[Mapping[str, Any]], contract.Driver]


def available() -> dict[str, str]:
    """Provisioner name -> "module:attribute", installed entry points over built-ins."""
    found = dict(BUILTIN)
    for entry in metadata.entry_points(group=ENTRY_POINT_GROUP):
        found[entry.name] = entry.value
    return found


def load_factory(provisioner: str) -> DriverFactory:
    """The factory for `provisioner`; NotMine when none is registered, PermanentError when
    the registered object cannot be imported."""
    target = available().get(provisioner)
    if target is None:
        raise errors.NotMine(f"no csi_like driver is registered for provisioner "
                             f"{provisioner!r}")
    module_name, _, attribute = target.partition(":")
    try:
        factory: Any = importlib.import_module(module_name)
        for part in filter(None, attribute.split(".")):
            factory = getattr(factory, part)
    except (ImportError, AttributeError) as e:
        raise errors.PermanentError(f"driver for {provisioner!r} ({target}) cannot be "
                                    f"loaded: {e}") from e
    return factory  # type: ignore[no-any-return]


def create(provisioner: str, options: Mapping[str, Any] | None = None) -> contract.Driver:
    """A driver instance for `provisioner`, checked to report that very name."""
    driver = load_factory(provisioner)(options or {})
    name = driver.get_plugin_info().name
    if name != provisioner:
        raise errors.PermanentError(f"driver registered as {provisioner!r} calls itself "
                                    f"{name!r}")
    return driver
