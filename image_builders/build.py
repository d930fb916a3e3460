"""Build orchestration: cache decision, step loop with progress, manifest, clean failure."""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from image_builders import __version__, manifest
from image_builders.backends import LABEL_PREFIX, Backend, ImageInfo, Parent
from image_builders.catalog import Catalog, load_catalog
from image_builders.recipe import Recipe, build_order, load_recipe
from image_builders.steps import WriteFile

TAIL_LINES = 25


class StepFailed(RuntimeError):
    def __init__(self, role: str, number: int, label: str, rc: int, output: str) -> None:
        self.role, self.number, self.label, self.rc = role, number, label, rc
        self.tail = "\n".join(output.rstrip().splitlines()[-TAIL_LINES:])
        super().__init__(
            f"build of '{role}' failed at step {number} ({label}), exit code {rc}; "
            f"last lines of its output:\n{self.tail}"
        )


@dataclass
class Result:
    role: str
    status: str  # "built", "up to date", "failed"
    seconds: float
    image: ImageInfo | None = None
    error: str = ""
    steps: list[dict[str, object]] = field(default_factory=list)


class Logger:
    """One line per event, safe to call from parallel builds."""

    def __init__(self, emit: Callable[[str], None] | None = None) -> None:
        self._emit = emit or (lambda message: print(message, flush=True))
        self._lock = threading.Lock()

    def __call__(self, message: str) -> None:
        with self._lock:
            self._emit(message)

    def for_role(self, role: str) -> Callable[[str], None]:
        return lambda message: self(f"[{role}] {message}")


def cache_key(recipe: Recipe, parent: Parent, family: str, catalog: Catalog) -> str:
    """Digest over the parent image, the role script and all it renders, and the builder."""
    h = hashlib.sha256()
    for part in (__version__, family, parent.image_id, recipe.digest(family, catalog)):
        h.update(part.encode() + b"\0")
    return h.hexdigest()


def new_build_id(key: str, now: float | None = None) -> str:
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now)) + "-" + key[:8]


def build_role(role: str, backend: Backend, *, force: bool = False, keep: int = 3,
               catalog: Catalog | None = None, log: Logger | None = None) -> Result:
    log = log or Logger()
    say = log.for_role(role)
    catalog = catalog or load_catalog()
    started = time.time()
    recipe = load_recipe(role)
    parent = backend.resolve_parent(recipe.parent, say)
    key = cache_key(recipe, parent, backend.family, catalog)
    current = backend.current(role)
    if current is not None and current.cache_key == key and not force:
        say(f"up to date ({current.ref}, build {current.build_id})")
        return Result(role, "up to date", time.time() - started, image=current)

    build_id = new_build_id(key, started)
    say(f"building {build_id} from {parent.ref} on {backend.name} ({backend.family})")
    session = backend.start(role, parent, build_id)
    try:
        step_records = _run_steps(recipe, session, backend.family, catalog, say)
        packages = _installed_packages(session, backend.family, role)
        doc = manifest.build_manifest(
            role=role, backend=backend.name, family=backend.family, build_id=build_id,
            cache_key=key, parent_ref=parent.ref, parent_id=parent.image_id,
            steps=step_records, packages=packages, started=started)
        text = manifest.dumps(doc)
        _write_manifest_into(session, text, recipe, backend.family, catalog)
        labels = {
            f"{LABEL_PREFIX}.role": role,
            f"{LABEL_PREFIX}.build-id": build_id,
            f"{LABEL_PREFIX}.cache-key": key,
            f"{LABEL_PREFIX}.manifest-digest": manifest.digest(text),
            f"{LABEL_PREFIX}.git-commit": doc["git_commit"],
            f"{LABEL_PREFIX}.parent": parent.ref,
        }
        t0 = time.time()
        image = session.commit(role, build_id, labels, text)
        say(f"committed {image.ref} ({time.time() - t0:.1f}s)")
    except BaseException:
        session.discard()
        raise
    session.discard()
    manifest.save(backend.name, role, build_id, text)
    for gone in backend.prune(role, keep):
        say(f"pruned old image {gone}")
    seconds = time.time() - started
    say(f"built in {seconds:.1f}s: {len(step_records)} steps, {len(packages)} packages")
    return Result(role, "built", seconds, image=image, steps=step_records)


def _run_steps(recipe: Recipe, session: object, family: str, catalog: Catalog,
               say: Callable[[str], None]) -> list[dict[str, object]]:
    rendered = recipe.rendered(family, catalog)
    records: list[dict[str, object]] = []
    for number, (step, script) in enumerate(rendered, 1):
        t0 = time.time()
        rc, output = session.exec(script)  # type: ignore[attr-defined]
        seconds = time.time() - t0
        if rc != 0:
            say(f"step {number}/{len(rendered)} {step.label} FAILED after {seconds:.1f}s")
            raise StepFailed(recipe.role, number, step.label, rc, output)
        say(f"step {number}/{len(rendered)} {step.label} ({seconds:.1f}s)")
        records.append({
            "number": number,
            "label": step.label,
            "digest": hashlib.sha256(script.encode()).hexdigest(),
            "seconds": round(seconds, 2),
        })
    return records


def _installed_packages(session: object, family: str, role: str) -> dict[str, str]:
    rc, output = session.exec(manifest.PACKAGE_QUERY[family])  # type: ignore[attr-defined]
    if rc != 0:
        raise StepFailed(role, 0, "read installed packages", rc, output)
    return manifest.parse_packages(output)


def _write_manifest_into(session: object, text: str, recipe: Recipe, family: str,
                         catalog: Catalog) -> None:
    step = WriteFile(manifest.IMAGE_MANIFEST_PATH, text=text)
    script = step.render(recipe.context(family, catalog))
    rc, output = session.exec(script)  # type: ignore[attr-defined]
    if rc != 0:
        raise StepFailed(recipe.role, 0, "write the image manifest", rc, output)


def build_many(roles: list[str], backend: Backend, *, force: bool = False, jobs: int = 2,
               keep: int = 3, log: Logger | None = None) -> list[Result]:
    """Build roles in dependency waves; roles within a wave build in parallel. A failed
    role fails its wave's dependants only; every result is returned."""
    log = log or Logger()
    catalog = load_catalog()
    results: dict[str, Result] = {}
    for wave in build_order(roles):
        runnable = []
        for role in wave:
            parent = load_recipe(role).parent
            if parent in results and results[parent].status == "failed":
                results[role] = Result(role, "failed", 0.0, error=f"parent '{parent}' failed")
                log(f"[{role}] skipped: parent '{parent}' failed")
            else:
                runnable.append(role)

        def one(role: str) -> Result:
            t0 = time.time()
            try:
                return build_role(role, backend, force=force, keep=keep, catalog=catalog, log=log)
            except Exception as exc:  # reported per role, never swallowed
                log(f"[{role}] FAILED: {exc}")
                return Result(role, "failed", time.time() - t0, error=str(exc))

        with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
            for result in pool.map(one, runnable):
                results[result.role] = result
    return [results[r] for r in dict.fromkeys(roles)]
