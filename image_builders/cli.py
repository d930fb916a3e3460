"""Command line: python -m image_builders build|list|manifest ..."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence

from image_builders import manifest
from image_builders.backends import Backend, BackendError
from image_builders.build import Logger, build_many
from image_builders.catalog import CatalogError
from image_builders.recipe import UnknownRole, known_roles, load_recipe


def make_backend(name: str) -> Backend:
    if name == "docker":
        from image_builders.backends.docker import DockerBackend

        return DockerBackend()
    if name == "ec2":
        from image_builders.backends.ec2 import Ec2Backend, Ec2Config

        return Ec2Backend(Ec2Config.from_env())
    raise SystemExit(f"unknown backend '{name}' (known: docker, ec2)")


def _age(created: float) -> str:
    seconds = max(0, int(time.time() - created))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def cmd_build(args: argparse.Namespace) -> int:
    roles = args.roles or known_roles()
    for role in roles:
        load_recipe(role)  # unknown roles fail before anything starts
    backend = make_backend(args.backend)
    t0 = time.time()
    results = build_many(roles, backend, force=args.force, jobs=args.jobs, keep=args.keep,
                         log=Logger())
    print(f"\nsummary ({args.backend}, {time.time() - t0:.1f}s):")
    for r in results:
        ref = r.image.ref if r.image else "-"
        print(f"  {r.role:<10} {r.status:<11} {r.seconds:7.1f}s  {ref}")
    failed = [r for r in results if r.status == "failed"]
    for r in failed:
        print(f"\nerror: {r.error}", file=sys.stderr)
    return 1 if failed else 0


def cmd_list(args: argparse.Namespace) -> int:
    backend = make_backend(args.backend)
    rows = [i for i in backend.images() if i.role != "os"]
    if not rows:
        print("no images yet: python -m image_builders build")
        return 0
    print(f"{'ROLE':<10} {'BUILD ID':<28} {'AGE':>5}  {'CURRENT':<7} IMAGE")
    currents = {r: backend.current(r) for r in {i.role for i in rows}}
    for info in sorted(rows, key=lambda i: (i.role, i.build_id), reverse=False):
        if info.ref.endswith(":latest"):
            continue
        cur = currents.get(info.role)
        mark = "yes" if cur is not None and cur.image_id == info.image_id else ""
        print(f"{info.role:<10} {info.build_id:<28} {_age(info.created):>5}  {mark:<7} {info.ref}")
    return 0


def cmd_manifest(args: argparse.Namespace) -> int:
    load_recipe(args.role)
    backend = make_backend(args.backend)
    current = backend.current(args.role)
    if current is None:
        print(f"error: no '{args.role}' image on {args.backend}: build it first", file=sys.stderr)
        return 1
    doc = manifest.load(backend.name, args.role, current.build_id)
    if doc is None:  # built from another clone or machine: ask the backend, keep a copy
        text = backend.read_manifest(current)
        if text is None:
            print(f"error: no manifest for {current.ref} (build {current.build_id}): not in "
                  f"{manifest.manifest_path(backend.name, args.role, current.build_id)} "
                  f"nor where the {backend.name} backend keeps it", file=sys.stderr)
            return 1
        manifest.save(backend.name, args.role, current.build_id, text)
        doc = json.loads(text)
    if args.packages:
        for name, version in doc["packages"].items():
            print(f"{name}\t{version}")
    else:
        print(json.dumps(doc, indent=2, sort_keys=True))
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m image_builders",
                                description="Bake one minimal image per server role.")
    sub = p.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="build role images (only what changed)")
    b.add_argument("roles", nargs="*", metavar="ROLE",
                   help=f"roles to build (default: all of {', '.join(known_roles())})")
    b.add_argument("--backend", choices=("docker", "ec2"), default="docker")
    b.add_argument("--force", action="store_true", help="rebuild even when up to date")
    b.add_argument("--jobs", type=int, default=2, help="independent roles built at once")
    b.add_argument("--keep", type=int, default=3, help="builds kept per role")
    b.set_defaults(func=cmd_build)
    ls = sub.add_parser("list", help="images, their build ids and ages")
    ls.add_argument("--backend", choices=("docker", "ec2"), default="docker")
    ls.set_defaults(func=cmd_list)
    m = sub.add_parser("manifest", help="print the manifest of a role's current image")
    m.add_argument("role", metavar="ROLE")
    m.add_argument("--backend", choices=("docker", "ec2"), default="docker")
    m.add_argument("--packages", action="store_true", help="only the package list")
    m.set_defaults(func=cmd_manifest)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return int(args.func(args))
    except (UnknownRole, CatalogError, BackendError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
