"""Lookup plugin: package or service names of catalog components for one OS family.

The names live in image_builders/catalog.yml, which the image builders read too, so a
package name is written once for both the baked images and the roles.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from ansible.errors import AnsibleLookupError
from ansible.plugins.lookup import LookupBase

try:
    from image_builders.catalog import CATALOG_PATH, CatalogError, load_catalog
except ImportError as exc:  # reported when the lookup runs, so that ansible-doc still works
    _IMPORT_ERROR: ImportError | None = exc
else:
    _IMPORT_ERROR = None


DOCUMENTATION = r"""
name: platform_packages
author: hostkit maintainers
short_description: Package or service names of platform components for an OS family
description:
  - Returns the package names (or, with O(kind=services), the service names) that the
    hostkit catalog C(image_builders/catalog.yml) lists for the named components and one
    OS family.
  - The image builders install from the same catalog, so a role and the image it runs
    on never disagree about a package name.
  - Names come back in catalog order, components in the order given, each name once.
  - The result is a list. Call the plugin with C(query) (or C(lookup) with
    C(wantlist=True)); a plain C(lookup) joins two or more names into one
    comma-separated string.
options:
  _terms:
    description:
      - Names of catalog components, for example C(apache) or C(php). A list of names
        counts as its names.
    required: true
    type: list
    elements: str
  family:
    description:
      - The OS family, as in C(ansible_facts['os_family']) (for example C(Debian) or
        C(RedHat)).
      - When not given, the C(os_family) fact of the current host is used; it is an
        error when that fact has not been gathered.
    type: str
  kind:
    description: Which names to return.
    type: str
    choices: [packages, services]
    default: packages
  catalog:
    description:
      - Path of the catalog file to read instead of the repository's
        C(image_builders/catalog.yml).
    type: path
notes:
  - The plugin imports C(image_builders.catalog) from the repository that contains it
    and needs PyYAML on the controller (a dependency of ansible-core).
  - An unknown component, an unsupported family or an unreadable or malformed catalog is
    an error that names the component, family or file.
"""

EXAMPLES = r"""
- name: Install Apache and PHP
  ansible.builtin.package:
    name: "{{ query('platform_packages', 'apache', 'php', family=ansible_facts['os_family']) }}"
    state: present

- name: Enable and start their services
  ansible.builtin.service:
    name: "{{ item }}"
    state: started
    enabled: true
  loop: "{{ query('platform_packages', 'apache', 'php', kind='services') }}"

- name: Same list through lookup, which needs wantlist=True to keep it a list
  ansible.builtin.set_fact:
    __pkgs: "{{ lookup('platform_packages', 'apache', 'php', family='Debian', wantlist=True) }}"
"""

RETURN = r"""
_raw:
  description:
    - Package names (O(kind=packages)) or service names (O(kind=services)) of the
      components, each once, in catalog order.
  type: list
  elements: str
"""


def _components(terms: Iterable[Any]) -> list[str]:
    """The component names in terms, where a term may also be a list of names."""
    names: list[str] = []
    for term in terms:
        items = term if isinstance(term, list | tuple) else [term]
        for item in items:
            if not isinstance(item, str) or not item.strip():
                raise AnsibleLookupError(
                    f"platform_packages: component names must be non-empty strings, got {item!r}"
                )
            names.append(item.strip())
    if not names:
        raise AnsibleLookupError("platform_packages: name at least one component")
    return names


def _host_family(variables: Mapping[str, Any] | None) -> str | None:
    if not variables:
        return None
    facts = variables.get("ansible_facts")
    if isinstance(facts, Mapping) and facts.get("os_family"):
        return str(facts["os_family"])
    family = variables.get("ansible_os_family")
    return str(family) if family else None


class LookupModule(LookupBase):
    def run(self, terms: list[Any], variables: dict[str, Any] | None = None,
            **kwargs: Any) -> list[str]:
        if _IMPORT_ERROR is not None:
            raise AnsibleLookupError(
                "platform_packages: cannot import image_builders.catalog (the repository is "
                f"installed in the virtualenv by scripts/bootstrap.sh): {_IMPORT_ERROR}"
            )
        self.set_options(var_options=variables, direct=kwargs)
        components = _components(terms)
        kind = self.get_option("kind")
        family = self.get_option("family") or _host_family(variables)
        if not family:
            raise AnsibleLookupError(
                "platform_packages: no OS family given and the host has no os_family fact; "
                "pass family=... or gather facts first"
            )
        path = self.get_option("catalog") or CATALOG_PATH

        try:
            catalog = load_catalog(path)
            if kind == "services":
                return catalog.services(*components, family=family)
            return catalog.packages(*components, family=family)
        except CatalogError as exc:
            raise AnsibleLookupError(
                f"platform_packages: {kind} of {', '.join(components)} for family "
                f"'{family}': {exc}"
            ) from exc
