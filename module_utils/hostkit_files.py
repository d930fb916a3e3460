"""A set of files, directories, links and removals applied to a host in one pass.

The core of the `hostkit_files` module (library/hostkit_files.py): a role hands over every
file it manages at once, already rendered, and this code compares each one with what is on
disk (content, owner, group, mode), then writes only what differs. No Ansible imports, so
it is unit-testable as is; it runs on the managed host (Python 3.9 or newer: EL 9).

How a set is applied (`apply_set`):

1. Every entry is checked and compared with the disk first (`plan`): a bad entry (unknown
   owner, relative path, a file whose directory does not exist and is not created by an
   earlier entry, ...) raises `FilesError` naming the entry before anything changes. So
   does an unmet `Requirement` (a file the set relies on, such as the ruleset that
   includes a firewall drop-in), with its own message.
2. Entries are then applied in the order given, like a list of file/template tasks: a file
   is written to a temporary file beside its destination, given its owner, group and mode,
   flushed to disk (fsync), checked with its own `validate` command (`%s` is the temporary
   file) and only then renamed over the destination (an atomic replacement).
3. With a set check (`SetCheck`: a command and a directory `under`), the files and removals
   under that directory are held back until every other entry has been applied; their
   candidates are then checked together by ONE run of the command (arguments appended:
   `CANDIDATE DEST` per changed file, `/dev/null DEST` per file to be removed), and only when
   it passes are they renamed into place (or removed). A rejected set leaves every file
   under `under` as it was.
4. `Purge` entries remove files matching glob patterns in a directory that the set does not
   name (for example the virtual hosts of products that left the host).

In check mode nothing is written, nothing is validated, and the result says what would
change.
"""

from __future__ import annotations

import contextlib
import errno
import fnmatch
import grp
import os
import pwd
import re
import shlex
import shutil
import stat
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

STATES = ("file", "directory", "link", "absent")
# Largest file whose old content is shown in a diff.
DIFF_MAX_BYTES = 256 * 1024

# A command runner: argv -> (exit status, stdout, stderr).
Runner = Callable[[list[str]], tuple[int, str, str]]


class FilesError(Exception):
    """A problem that stops the set; the message names the entry and what is wrong."""

    def __init__(self, message: str, changed_files: list[str] | None = None) -> None:
        super().__init__(message)
        self.changed_files = list(changed_files or [])


@dataclass
class Entry:
    """One path of the set. `content` is the full text of a file; `target` the link's."""

    path: str
    state: str = "file"
    content: str | None = None
    target: str | None = None
    owner: str | None = None
    group: str | None = None
    mode: int | None = None
    validate: str | None = None
    force: bool = True


@dataclass
class SetCheck:
    """One command that checks all changed files under `under` together."""

    command: str
    under: str


@dataclass
class Purge:
    """Remove files in `path` whose names match one of `patterns` and that the set does not
    name."""

    path: str
    patterns: list[str]


@dataclass
class Requirement:
    """Something the set needs on the host before anything is written: `path` exists and,
    with `search`, its content matches that regular expression. `msg` says what is wrong."""

    path: str
    search: str | None = None
    msg: str | None = None


@dataclass
class Step:
    """What one entry needs: `actions` is empty when the entry is already as wanted."""

    entry: Entry
    actions: list[str] = field(default_factory=list)
    uid: int | None = None
    gid: int | None = None
    before: str | None = None  # old content, for the diff
    in_set: bool = False
    purged: bool = False

    @property
    def changed(self) -> bool:
        return bool(self.actions)


@dataclass
class Result:
    changed_files: list[str]
    diff: list[dict[str, str]]


def parse_mode(value: Any, where: str) -> int | None:
    """An octal mode given as a string ('0644', '644') or an int already in octal meaning."""
    if value is None or value == "":
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        text = format(value, "o")
    else:
        text = str(value).strip()
    if not text or any(c not in "01234567" for c in text) or len(text) > 5:
        raise FilesError(f"{where}: mode {value!r} is not an octal mode such as '0644'")
    return int(text, 8)


def parse_entries(raw: Sequence[dict[str, Any]]) -> list[Entry]:
    """Entries from plain dicts (the module's arguments), with clear errors."""
    entries = []
    seen: dict[str, tuple[int, str]] = {}
    for index, item in enumerate(raw):
        path = str(item.get("path") or "")
        if path and os.path.isabs(path):
            path = os.path.normpath(path)
        where = f"files[{index}] ({path or 'no path'})"
        if not path or not os.path.isabs(path):
            raise FilesError(f"{where}: path must be an absolute path")
        state = str(item.get("state") or "file")
        if path in seen and seen[path][1] != "absent":
            raise FilesError(f"{where}: path is also entry files[{seen[path][0]}] (a path may "
                             "come again only after an absent entry for it)")
        seen[path] = (index, state)
        if state not in STATES:
            raise FilesError(f"{where}: state must be one of {', '.join(STATES)}, got {state!r}")
        content = item.get("content")
        target = item.get("target")
        if state == "file" and content is None:
            raise FilesError(f"{where}: a file needs its content")
        if state != "file" and content is not None:
            raise FilesError(f"{where}: only a file has content (state is {state})")
        if (state == "link") != (target is not None and target != ""):
            raise FilesError(f"{where}: a link, and only a link, needs a target")
        validate = item.get("validate") or None
        if validate is not None and (state != "file" or "%s" not in validate):
            raise FilesError(f"{where}: validate is for files and must contain %s")
        attrs = [k for k in ("owner", "group", "mode") if item.get(k) not in (None, "")]
        if state in ("link", "absent") and attrs:
            raise FilesError(f"{where}: {', '.join(attrs)} cannot be set on a {state} entry")
        entries.append(Entry(
            path=path, state=state, content=content, target=target,
            owner=_name(item.get("owner")), group=_name(item.get("group")),
            mode=parse_mode(item.get("mode"), where), validate=validate,
            force=bool(item.get("force", True)),
        ))
    return entries


def _name(value: Any) -> str | None:
    return None if value in (None, "") else str(value)


def _uid(owner: str | None, where: str) -> int | None:
    if owner is None:
        return None
    if owner.isdigit():
        return int(owner)
    try:
        return pwd.getpwnam(owner).pw_uid
    except KeyError:
        raise FilesError(f"{where}: owner '{owner}' does not exist on this host") from None


def _gid(group: str | None, where: str) -> int | None:
    if group is None:
        return None
    if group.isdigit():
        return int(group)
    try:
        return grp.getgrnam(group).gr_gid
    except KeyError:
        raise FilesError(f"{where}: group '{group}' does not exist on this host") from None


def _under(path: str, root: str) -> bool:
    root = os.path.normpath(root)
    return path == root or path.startswith(root.rstrip("/") + "/")


def _read(path: str) -> bytes:
    with open(path, "rb") as handle:
        return handle.read()


def _text(data: bytes) -> str | None:
    if len(data) > DIFF_MAX_BYTES:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _attr_actions(st: os.stat_result, entry: Entry, uid: int | None,
                  gid: int | None) -> list[str]:
    actions = []
    if uid is not None and st.st_uid != uid:
        actions.append("owner")
    if gid is not None and st.st_gid != gid:
        actions.append("group")
    if entry.mode is not None and stat.S_IMODE(st.st_mode) != entry.mode:
        actions.append("mode")
    return actions


def _never(path: str) -> bool:
    return False


def plan_entry(entry: Entry, will_exist: Callable[[str], bool],
               gone: Callable[[str], bool] = _never) -> Step:
    """Compare one entry with the disk. `will_exist(dir)` says whether an earlier entry of
    the set creates that directory, `gone(path)` whether an earlier absent entry removes it
    (the entry then starts from nothing)."""
    where = entry.path
    step = Step(entry=entry, uid=_uid(entry.owner, where), gid=_gid(entry.group, where))
    try:
        st: os.stat_result | None = None if gone(entry.path) else os.lstat(entry.path)
    except FileNotFoundError:
        st = None
    parent = os.path.dirname(entry.path)
    if entry.state == "absent":
        if st is not None:
            step.actions.append("remove")
        return step
    if entry.state != "directory" and st is None and not (
            (os.path.isdir(parent) and not gone(parent)) or will_exist(parent)):
        raise FilesError(f"{where}: directory {parent} does not exist "
                         "(and no entry before this one creates it)")
    if entry.state == "directory":
        if st is None:
            step.actions.append("create")
        elif not stat.S_ISDIR(st.st_mode):
            raise FilesError(f"{where}: wanted a directory, found something else there")
        else:
            step.actions += _attr_actions(st, entry, step.uid, step.gid)
        return step
    if entry.state == "link":
        if st is None:
            step.actions.append("create")
        elif stat.S_ISDIR(st.st_mode):
            raise FilesError(f"{where}: wanted a link, found a directory there")
        elif not stat.S_ISLNK(st.st_mode) or os.readlink(entry.path) != entry.target:
            step.actions.append("link")
        return step
    # a regular file
    if st is None:
        step.actions.append("create")
        step.before = ""
        return step
    if stat.S_ISDIR(st.st_mode):
        raise FilesError(f"{where}: wanted a file, found a directory there")
    if not entry.force:
        return step  # present: left as it is, content and attributes
    if not stat.S_ISREG(st.st_mode):
        step.actions.append("content")  # a link or special file is replaced by the file
        step.before = ""
        return step
    old = _read(entry.path)
    if old != entry.content.encode("utf-8"):  # type: ignore[union-attr]
        step.actions.append("content")
        step.before = _text(old)
    step.actions += _attr_actions(st, entry, step.uid, step.gid)
    return step


def check_requirements(requirements: Sequence[Requirement]) -> None:
    """Raise FilesError with the requirement's message at the first one the host fails."""
    for req in requirements:
        problem = None
        if not os.path.lexists(req.path):
            problem = f"{req.path} does not exist"
        elif req.search is not None:
            try:
                text = _read(req.path).decode("utf-8", errors="replace")
            except IsADirectoryError:
                text = ""
            if not re.search(req.search, text, re.MULTILINE):
                problem = f"{req.path} does not match {req.search!r}"
        if problem:
            raise FilesError(f"{req.msg} ({problem})" if req.msg else problem)


def plan(entries: Sequence[Entry], purges: Sequence[Purge] = (),
         set_check: SetCheck | None = None) -> list[Step]:
    """Every step of the set, in order (purged files last), nothing changed yet. A path
    removed by an absent entry (or below it) starts from nothing for the entries after it:
    [absent D, directory D] makes an empty D."""
    created_dirs: set = set()
    removed: set = set()

    def will_exist(directory: str) -> bool:  # made by an earlier entry (mkdir -p)
        return any(_under(d, directory) for d in created_dirs)

    def gone(path: str) -> bool:
        return any(_under(path, r) for r in removed)

    steps = []
    for index, entry in enumerate(entries):
        if set_check is not None and gone(entry.path) and _under(entry.path, set_check.under):
            raise FilesError(f"files[{index}] ({entry.path}): under validate_set.under a path "
                             "cannot come again after an absent entry")
        step = plan_entry(entry, will_exist, gone)
        if entry.state == "absent":
            removed.add(entry.path)
            created_dirs = {d for d in created_dirs if not _under(d, entry.path)}
        elif entry.state == "directory":
            created_dirs.add(entry.path)
        steps.append(step)
    named = {e.path for e in entries}
    for purge in purges:
        directory = os.path.normpath(purge.path)
        if not os.path.isdir(directory):
            continue
        for name in sorted(os.listdir(directory)):
            path = os.path.join(directory, name)
            if path in named or not any(fnmatch.fnmatchcase(name, p) for p in purge.patterns):
                continue
            named.add(path)
            steps.append(Step(entry=Entry(path=path, state="absent"), actions=["remove"],
                              purged=True))
    if set_check is not None:
        for step in steps:
            step.in_set = (step.entry.state in ("file", "absent")
                           and _under(step.entry.path, set_check.under))
    return steps


def _fsync_dir(directory: str) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _set_attrs(path: str, step: Step, follow: bool = True) -> None:
    if step.uid is not None or step.gid is not None:
        uid = -1 if step.uid is None else step.uid
        gid = -1 if step.gid is None else step.gid
        os.chown(path, uid, gid, follow_symlinks=follow)
    if step.entry.mode is not None:
        os.chmod(path, step.entry.mode)


def write_candidate(step: Step) -> str:
    """The new content in a temporary file beside the destination, with the entry's owner,
    group and mode, flushed to disk. Returns its path. What the entry leaves open (owner,
    group, mode) is kept from the file it replaces; a new file gets 0644."""
    directory, name = os.path.split(step.entry.path)
    try:
        old: os.stat_result | None = os.stat(step.entry.path)
    except FileNotFoundError:
        old = None
    fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".hostkit", dir=directory)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(step.entry.content.encode("utf-8"))  # type: ignore[union-attr]
            handle.flush()
            os.fsync(handle.fileno())
        uid = step.uid if step.uid is not None else (old.st_uid if old else -1)
        gid = step.gid if step.gid is not None else (old.st_gid if old else -1)
        if (uid, gid) != (-1, -1):
            os.chown(tmp, uid, gid)
        mode = step.entry.mode
        if mode is None:
            mode = stat.S_IMODE(old.st_mode) if old else 0o644
        os.chmod(tmp, mode)
    except BaseException:
        _unlink(tmp)
        raise
    return tmp


def _unlink(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


def _remove(path: str) -> None:
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path)
    else:
        _unlink(path)


def _replace_link(path: str, target: str) -> None:
    """Point `path` at `target` with one rename (a reader sees the old or the new link)."""
    directory, name = os.path.split(path)
    for _ in range(100):
        tmp = os.path.join(directory, f".{name}.{os.urandom(6).hex()}.hostkit")
        try:
            os.symlink(target, tmp)
            break
        except FileExistsError:
            continue
    else:  # pragma: no cover - 100 random collisions
        raise FilesError(f"{path}: cannot make a temporary link")
    try:
        os.rename(tmp, path)
    except BaseException:
        _unlink(tmp)
        raise
    _fsync_dir(directory)


def _make_dirs(step: Step) -> None:
    """mkdir -p, giving every directory it makes the entry's owner, group and mode."""
    missing = []
    path = step.entry.path
    while not os.path.isdir(path):
        missing.append(path)
        path = os.path.dirname(path)
    for directory in reversed(missing):
        with contextlib.suppress(FileExistsError):
            os.mkdir(directory, 0o700)
        if step.entry.mode is None:
            os.chmod(directory, 0o755)
        _set_attrs(directory, step)


def _run_check(runner: Runner, argv: list[str], what: str, command: str) -> None:
    """Run a validation; `what` names the file(s) in the error, `command` the check."""
    try:
        rc, out, err = runner(argv)
    except OSError as exc:
        raise FilesError(f"{what}: cannot run {argv[0]} ({command}): {exc.strerror}") from None
    if rc != 0:
        detail = (err.strip() or out.strip() or "no output").replace("\n", " | ")
        raise FilesError(f"{what} failed to validate with {command!r} (exit status {rc}): "
                         f"{detail}")


def _diff(step: Step) -> dict[str, str]:
    entry = step.entry
    header = entry.path
    if entry.state == "file" and ("create" in step.actions or "content" in step.actions):
        before = step.before if step.before is not None else "(not shown: binary or large)\n"
        return {"before_header": header, "after_header": header,
                "before": before, "after": entry.content or ""}
    want = {"directory": "directory", "link": f"link to {entry.target}",
            "absent": "absent", "file": "file"}[entry.state]
    if entry.state == "absent":
        return {"before_header": header, "after_header": header,
                "before": "present\n", "after": "absent\n"}
    attrs = []
    if entry.owner is not None:
        attrs.append(f"owner {entry.owner}")
    if entry.group is not None:
        attrs.append(f"group {entry.group}")
    if entry.mode is not None:
        attrs.append(f"mode {entry.mode:04o}")
    before = "absent\n" if "create" in step.actions else f"{', '.join(step.actions)} differ\n"
    return {"before_header": header, "after_header": header,
            "before": before, "after": ", ".join([want] + attrs) + "\n"}


class _Applier:
    """Carries out the steps of a plan and remembers what it changed."""

    def __init__(self, runner: Runner, after_write: Callable[[str], None] | None) -> None:
        self.runner = runner
        self.after_write = after_write
        self.changed: list[str] = []

    def apply(self, step: Step) -> None:
        entry = step.entry
        if entry.state == "absent":
            _remove(entry.path)
            _fsync_dir(os.path.dirname(entry.path))
        elif entry.state == "directory":
            if "create" in step.actions:
                _make_dirs(step)
            else:
                _set_attrs(entry.path, step)
        elif entry.state == "link":
            _replace_link(entry.path, entry.target or "")
        elif "create" in step.actions or "content" in step.actions:
            tmp = write_candidate(step)
            try:
                if entry.validate:
                    self.validate(entry, tmp)
                self.install(tmp, entry.path)
            finally:
                _unlink(tmp)
        else:
            _set_attrs(entry.path, step)
        self.changed.append(entry.path)

    def validate(self, entry: Entry, candidate: str) -> None:
        command = entry.validate % shlex.quote(candidate)  # type: ignore[operator]
        _run_check(self.runner, shlex.split(command), entry.path, entry.validate or "")

    def install(self, tmp: str, dest: str) -> None:
        os.rename(tmp, dest)
        _fsync_dir(os.path.dirname(dest))
        if self.after_write is not None:
            self.after_write(dest)

    def apply_set(self, steps: list[Step], set_check: SetCheck) -> None:
        """Check the held-back steps together, then apply them; nothing of them changes when
        a check fails."""
        candidates: dict[str, str] = {}
        try:
            args: list[str] = []
            for step in steps:
                if step.entry.state == "absent":
                    args += ["/dev/null", step.entry.path]
                elif "create" in step.actions or "content" in step.actions:
                    tmp = write_candidate(step)
                    candidates[step.entry.path] = tmp
                    if step.entry.validate:
                        self.validate(step.entry, tmp)
                    args += [tmp, step.entry.path]
            if args:
                argv = shlex.split(set_check.command) + args
                names = ", ".join(s.entry.path for s in steps)
                _run_check(self.runner, argv, names, set_check.command)
            for step in steps:
                if step.entry.path in candidates:
                    self.install(candidates.pop(step.entry.path), step.entry.path)
                    self.changed.append(step.entry.path)
                else:
                    self.apply(step)
        finally:
            for tmp in candidates.values():
                _unlink(tmp)


def apply_set(entries: Sequence[Entry], runner: Runner, purges: Sequence[Purge] = (),
              set_check: SetCheck | None = None, check_mode: bool = False,
              after_write: Callable[[str], None] | None = None,
              requirements: Sequence[Requirement] = ()) -> Result:
    """Plan and apply the set (see the module docstring). Raises FilesError, whose
    `changed_files` lists what was already applied when it stopped."""
    try:
        check_requirements(requirements)
        steps = [s for s in plan(entries, purges, set_check) if s.changed]
    except OSError as exc:
        raise FilesError(_os_error(exc)) from None
    diff = [_diff(s) for s in steps]
    if check_mode:
        return Result(changed_files=[s.entry.path for s in steps], diff=diff)
    applier = _Applier(runner, after_write)
    try:
        for step in steps:
            if not step.in_set:
                applier.apply(step)
        held = [s for s in steps if s.in_set]
        if held and set_check is not None:
            applier.apply_set(held, set_check)
    except FilesError as exc:
        raise FilesError(str(exc), applier.changed) from None
    except OSError as exc:
        raise FilesError(_os_error(exc), applier.changed) from None
    return Result(changed_files=applier.changed, diff=diff)


def _os_error(exc: OSError) -> str:
    reason = exc.strerror or errno.errorcode.get(exc.errno or 0, str(exc))
    return f"{exc.filename or '?'}: {reason}"
