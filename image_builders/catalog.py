"""The package and service catalog (catalog.yml): one list per component and OS family.

Both the image builders and the Ansible roles (through lookup_plugins/platform_packages.py)
read this file, so no package name is written twice. No Ansible imports here.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

CATALOG_PATH = Path(__file__).with_name("catalog.yml")
FAMILIES = ("Debian", "RedHat")


class CatalogError(ValueError):
    """The catalog file is malformed or a lookup names something it does not have."""


@dataclass(frozen=True)
class Catalog:
    components: dict[str, dict[str, Any]]
    path: Path = CATALOG_PATH

    def _entry(self, component: str) -> dict[str, Any]:
        try:
            return self.components[component]
        except KeyError:
            known = ", ".join(sorted(self.components))
            raise CatalogError(f"unknown component '{component}' (known: {known})") from None

    def _names(self, component: str, kind: str, family: str) -> list[str]:
        if family not in FAMILIES:
            supported = ", ".join(FAMILIES)
            raise CatalogError(f"unsupported OS family '{family}' (supported: {supported})")
        by_family = self._entry(component).get(kind, {})
        return list(by_family.get(family, []))

    def _collect(self, kind: str, components: tuple[str, ...], family: str) -> list[str]:
        seen: dict[str, None] = {}
        for component in components:
            for name in self._names(component, kind, family):
                seen.setdefault(name, None)
        return list(seen)

    def packages(self, *components: str, family: str) -> list[str]:
        """Packages of the components for one family, in order, without repeats."""
        return self._collect("packages", components, family)

    def services(self, *components: str, family: str) -> list[str]:
        """Services (systemd units) of the components for one family, in order."""
        return self._collect("services", components, family)

    def digest(self, *components: str) -> str:
        """A digest of what the named components say, for cache keys."""
        material = {c: self._entry(c) for c in sorted(components)}
        return hashlib.sha256(json.dumps(material, sort_keys=True).encode()).hexdigest()


def _validate(data: Any, path: Path) -> dict[str, dict[str, Any]]:
    if not isinstance(data, dict) or not isinstance(data.get("components"), dict):
        raise CatalogError(f"{path}: expected a mapping with a 'components' mapping")
    for name, entry in data["components"].items():
        if not isinstance(entry, dict):
            raise CatalogError(f"{path}: component '{name}' is not a mapping")
        for kind in ("packages", "services"):
            by_family = entry.get(kind, {})
            if not isinstance(by_family, dict):
                raise CatalogError(f"{path}: component '{name}': '{kind}' is not a mapping")
            for family, names in by_family.items():
                if family not in FAMILIES:
                    raise CatalogError(f"{path}: component '{name}': unknown family '{family}'")
                if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
                    raise CatalogError(
                        f"{path}: component '{name}': {kind}.{family} must be a list of names"
                    )
    return data["components"]


def load_catalog(path: Path | str = CATALOG_PATH) -> Catalog:
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise CatalogError(f"cannot read catalog {path}: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise CatalogError(f"{path}: not valid YAML: {exc}") from exc
    return Catalog(components=_validate(data, path), path=path)
