"""module_utils/hostkit_files.py: a set of files, directories and links in one pass."""

from __future__ import annotations

import grp
import os
import pwd
import subprocess
from pathlib import Path

import pytest

from module_utils.hostkit_files import (
    Entry,
    FilesError,
    Purge,
    Requirement,
    SetCheck,
    apply_set,
    parse_entries,
    parse_mode,
    plan,
)

ME = pwd.getpwuid(os.getuid()).pw_name
MY_GROUP = grp.getgrgid(os.getgid()).gr_name


def run(argv: list[str]) -> tuple[int, str, str]:
    proc = subprocess.run(argv, capture_output=True, text=True, check=False)
    return proc.returncode, proc.stdout, proc.stderr


class Recorder:
    """A runner that records every command and answers with `rc`."""

    def __init__(self, rc: int = 0, err: str = "") -> None:
        self.calls: list[list[str]] = []
        self.rc, self.err = rc, err
        self.seen: dict[str, str] = {}

    def __call__(self, argv: list[str]) -> tuple[int, str, str]:
        self.calls.append(argv)
        for arg in argv:  # remember what the candidates held when the command ran
            if os.path.isfile(arg) and ".hostkit" in arg:
                self.seen[arg] = Path(arg).read_text()
        return self.rc, "", self.err


def entries(*items: dict) -> list[Entry]:
    return parse_entries(list(items))


def leftovers(root: Path) -> list[str]:
    return [str(p) for p in root.rglob("*.hostkit")]


def test_creates_directories_files_and_links_then_changes_nothing(tmp_path: Path) -> None:
    conf = tmp_path / "etc" / "app"
    spec = entries(
        {"path": str(conf / "conf.d"), "state": "directory", "owner": ME, "group": MY_GROUP,
         "mode": "0750"},
        {"path": str(conf / "conf.d" / "a.conf"), "content": "a = 1\n", "mode": "0640"},
        {"path": str(conf / "current"), "state": "link", "target": "conf.d/a.conf"},
    )
    result = apply_set(spec, run)
    assert result.changed_files == [str(conf / "conf.d"), str(conf / "conf.d" / "a.conf"),
                                    str(conf / "current")]
    # the missing parent was made with the entry's attributes, like `file state=directory`
    assert (conf.stat().st_mode & 0o777) == 0o750
    assert ((conf / "conf.d").stat().st_mode & 0o777) == 0o750
    assert (conf / "conf.d" / "a.conf").read_text() == "a = 1\n"
    assert ((conf / "conf.d" / "a.conf").stat().st_mode & 0o777) == 0o640
    assert os.readlink(conf / "current") == "conf.d/a.conf"
    assert apply_set(spec, run).changed_files == []
    assert [s for s in plan(spec) if s.changed] == []
    assert leftovers(tmp_path) == []


def test_new_file_without_mode_gets_0644_and_a_replaced_one_keeps_its_mode(tmp_path: Path) -> None:
    new, old = tmp_path / "new", tmp_path / "old"
    old.write_text("x\n")
    old.chmod(0o600)
    apply_set(entries({"path": str(new), "content": "n\n"},
                      {"path": str(old), "content": "y\n"}), run)
    assert (new.stat().st_mode & 0o777) == 0o644
    assert (old.stat().st_mode & 0o777) == 0o600
    assert old.read_text() == "y\n"


def test_content_change_replaces_the_file_by_rename(tmp_path: Path) -> None:
    path = tmp_path / "f.conf"
    path.write_text("old\n")
    inode = path.stat().st_ino
    result = apply_set(entries({"path": str(path), "content": "new\n"}), run)
    assert result.changed_files == [str(path)]
    assert path.read_text() == "new\n"
    assert path.stat().st_ino != inode  # a new file renamed over the old one
    assert result.diff == [{"before_header": str(path), "after_header": str(path),
                            "before": "old\n", "after": "new\n"}]


def test_mode_only_change_keeps_the_file(tmp_path: Path) -> None:
    path = tmp_path / "f.conf"
    path.write_text("same\n")
    path.chmod(0o600)
    inode = path.stat().st_ino
    result = apply_set(entries({"path": str(path), "content": "same\n", "mode": "0644"}), run)
    assert result.changed_files == [str(path)]
    assert path.stat().st_ino == inode
    assert (path.stat().st_mode & 0o777) == 0o644


def test_validate_sees_the_candidate_and_a_rejection_keeps_the_old_file(tmp_path: Path) -> None:
    good, bad = tmp_path / "good.conf", tmp_path / "bad.conf"
    bad.write_text("valid\n")
    spec = entries(
        {"path": str(good), "content": "valid\n", "validate": "grep -q ^valid %s"},
        {"path": str(bad), "content": "broken\n", "validate": "grep -q ^valid %s"},
    )
    with pytest.raises(FilesError) as err:
        apply_set(spec, run)
    assert f"{bad} failed to validate with 'grep -q ^valid %s' (exit status 1)" in str(err.value)
    assert err.value.changed_files == [str(good)]  # the entry before was applied, in order
    assert good.read_text() == "valid\n"
    assert bad.read_text() == "valid\n"
    assert leftovers(tmp_path) == []


def test_validate_command_gets_a_quoted_candidate_and_percent_escapes(tmp_path: Path) -> None:
    rec = Recorder()
    path = tmp_path / "f"
    apply_set(entries({"path": str(path), "content": "c\n",
                       "validate": "/bin/sh -c 'printf \"%%s\" \"$1\"' check %s"}), rec)
    assert rec.calls[0][:3] == ["/bin/sh", "-c", 'printf "%s" "$1"']
    assert rec.calls[0][3] == "check" and rec.calls[0][4].endswith(".hostkit")
    assert list(rec.seen.values()) == ["c\n"]


def test_set_check_runs_once_with_pairs_and_removals(tmp_path: Path) -> None:
    root = tmp_path / "apache"
    (root / "sites").mkdir(parents=True)
    (root / "sites" / "old.conf").write_text("old\n")
    (root / "sites" / "default.conf").write_text("default\n")
    tool = tmp_path / "tool"
    rec = Recorder()
    spec = entries(
        {"path": str(root / "main.conf"), "content": "main\n"},
        {"path": str(tool), "content": "#!/bin/sh\n", "mode": "0755"},
        {"path": str(root / "sites" / "a.conf"), "content": "a\n"},
        {"path": str(root / "sites" / "default.conf"), "state": "absent"},
    )
    result = apply_set(spec, rec, purges=[Purge(str(root / "sites"), ["*.conf"])],
                       set_check=SetCheck("checker --all", str(root)))
    # the entry outside the set first, then the held-back set, checked once
    assert result.changed_files[0] == str(tool)
    sites = root / "sites"
    assert set(result.changed_files[1:]) == {str(root / "main.conf"), str(sites / "a.conf"),
                                             str(sites / "default.conf"), str(sites / "old.conf")}
    assert len(rec.calls) == 1
    argv = rec.calls[0]
    assert argv[:2] == ["checker", "--all"]
    pairs = {argv[i + 1]: argv[i] for i in range(2, len(argv), 2)}  # dest -> candidate
    assert pairs[str(root / "sites" / "default.conf")] == "/dev/null"
    assert pairs[str(root / "sites" / "old.conf")] == "/dev/null"
    assert rec.seen[pairs[str(root / "main.conf")]] == "main\n"
    assert rec.seen[pairs[str(root / "sites" / "a.conf")]] == "a\n"
    assert sorted(p.name for p in (root / "sites").iterdir()) == ["a.conf"]
    assert leftovers(tmp_path) == []


def test_rejected_set_changes_nothing_under_its_root(tmp_path: Path) -> None:
    root = tmp_path / "conf"
    root.mkdir()
    (root / "live.conf").write_text("live\n")
    (root / "gone.conf").write_text("gone\n")
    helper = tmp_path / "helper"
    rec = Recorder(rc=1, err="AH00526: Syntax error\nInvalid command 'NoSuchDirective'")
    spec = entries(
        {"path": str(helper), "content": "new helper\n"},
        {"path": str(root / "live.conf"), "content": "NoSuchDirective on\n"},
        {"path": str(root / "new.conf"), "content": "new\n"},
        {"path": str(root / "gone.conf"), "state": "absent"},
    )
    with pytest.raises(FilesError) as err:
        apply_set(spec, rec, set_check=SetCheck("checker", str(root)))
    assert "Invalid command 'NoSuchDirective'" in str(err.value)
    assert str(root / "live.conf") in str(err.value)
    assert err.value.changed_files == [str(helper)]
    assert (root / "live.conf").read_text() == "live\n"
    assert (root / "gone.conf").read_text() == "gone\n"
    assert not (root / "new.conf").exists()
    assert leftovers(tmp_path) == []


def test_set_check_is_not_run_when_nothing_under_it_changes(tmp_path: Path) -> None:
    root = tmp_path / "conf"
    root.mkdir()
    (root / "a.conf").write_text("a\n")
    rec = Recorder(rc=1)
    result = apply_set(entries({"path": str(root / "a.conf"), "content": "a\n"},
                               {"path": str(tmp_path / "other"), "content": "o\n"}),
                       rec, set_check=SetCheck("checker", str(root)))
    assert result.changed_files == [str(tmp_path / "other")]
    assert rec.calls == []


def test_purge_removes_only_unnamed_matches(tmp_path: Path) -> None:
    sudoers = tmp_path / "sudoers.d"
    sudoers.mkdir()
    for name in ("hostkit-demo", "hostkit-gone", "README", "other-hostkit"):
        (sudoers / name).write_text(name)
    (sudoers / "hostkit-dir").mkdir()
    spec = entries({"path": str(sudoers / "hostkit-demo"), "content": "hostkit-demo"})
    purges = [Purge(str(sudoers), ["hostkit-*"]), Purge(str(tmp_path / "missing"), ["*"])]
    result = apply_set(spec, run, purges=purges)
    assert sorted(result.changed_files) == [str(sudoers / "hostkit-dir"),
                                            str(sudoers / "hostkit-gone")]
    assert sorted(p.name for p in sudoers.iterdir()) == ["README", "hostkit-demo", "other-hostkit"]


def test_force_false_leaves_an_existing_file_alone(tmp_path: Path) -> None:
    path = tmp_path / "runtime.json"
    path.write_text('{"written": "by the agent"}\n')
    path.chmod(0o600)
    spec = entries({"path": str(path), "content": "{}\n", "mode": "0644", "force": False})
    assert apply_set(spec, run).changed_files == []
    assert path.read_text() == '{"written": "by the agent"}\n'
    assert (path.stat().st_mode & 0o777) == 0o600
    path.unlink()
    assert apply_set(spec, run).changed_files == [str(path)]
    assert path.read_text() == "{}\n"


def test_check_mode_writes_nothing_and_says_what_would_change(tmp_path: Path) -> None:
    rec = Recorder()
    path = tmp_path / "d" / "f"
    old = tmp_path / "old"
    old.write_text("before\n")
    spec = entries({"path": str(tmp_path / "d"), "state": "directory"},
                   {"path": str(path), "content": "after\n", "validate": "false %s"},
                   {"path": str(old), "content": "after\n"})
    result = apply_set(spec, rec, check_mode=True)
    assert result.changed_files == [str(tmp_path / "d"), str(path), str(old)]
    assert not (tmp_path / "d").exists()
    assert old.read_text() == "before\n"
    assert rec.calls == []
    assert result.diff[2]["before"] == "before\n" and result.diff[2]["after"] == "after\n"


def test_absent_removes_files_links_and_trees(tmp_path: Path) -> None:
    (tmp_path / "tree" / "sub").mkdir(parents=True)
    (tmp_path / "tree" / "sub" / "f").write_text("f")
    (tmp_path / "link").symlink_to(tmp_path / "tree")
    spec = entries({"path": str(tmp_path / "link"), "state": "absent"},
                   {"path": str(tmp_path / "tree"), "state": "absent"},
                   {"path": str(tmp_path / "never"), "state": "absent"})
    assert apply_set(spec, run).changed_files == [str(tmp_path / "link"), str(tmp_path / "tree")]
    assert list(tmp_path.iterdir()) == []


def test_link_is_repointed_and_a_link_in_the_way_of_a_file_is_replaced(tmp_path: Path) -> None:
    (tmp_path / "current").symlink_to("releases/a")
    (tmp_path / "conf").symlink_to("/etc/hostname")
    spec = entries({"path": str(tmp_path / "current"), "state": "link", "target": "releases/b"},
                   {"path": str(tmp_path / "conf"), "content": "mine\n"})
    assert apply_set(spec, run).changed_files == [str(tmp_path / "current"), str(tmp_path / "conf")]
    assert os.readlink(tmp_path / "current") == "releases/b"
    assert not (tmp_path / "conf").is_symlink()
    assert (tmp_path / "conf").read_text() == "mine\n"
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("item, message", [
    ({"path": "relative/f", "content": ""}, "absolute path"),
    ({"path": "/x/f"}, "needs its content"),
    ({"path": "/x/d", "state": "directory", "content": "x"}, "only a file has content"),
    ({"path": "/x/l", "state": "link"}, "needs a target"),
    ({"path": "/x/f", "content": "", "target": "y"}, "needs a target"),
    ({"path": "/x/f", "content": "", "validate": "visudo -cf"}, "must contain %s"),
    ({"path": "/x/f", "state": "absent", "mode": "0644"}, "mode cannot be set"),
    ({"path": "/x/f", "content": "", "mode": "rw-r--r--"}, "not an octal mode"),
    ({"path": "/x/f", "state": "fifo"}, "state must be one of"),
])
def test_bad_entries_are_named(item: dict, message: str) -> None:
    with pytest.raises(FilesError, match=message) as err:
        parse_entries([item])
    assert "files[0]" in str(err.value)


def test_duplicate_paths_are_refused_unless_after_absent() -> None:
    with pytest.raises(FilesError, match=r"files\[1\] \(/x/f\): path is also entry files\[0\]"):
        parse_entries([{"path": "/x/f", "content": ""}, {"path": "/x//f", "state": "absent"}])
    assert len(parse_entries([{"path": "/x/d", "state": "absent"},
                              {"path": "/x/d", "state": "directory"}])) == 2


def test_after_absent_a_path_starts_from_nothing(tmp_path: Path) -> None:
    release = tmp_path / "r1.tmp"
    (release / "uploads").mkdir(parents=True)
    (release / "uploads" / "from-the-code.txt").write_text("x")
    (release / "index.php").write_text("<?php\n")
    # a fresh directory, and a link in place of a directory the code brings
    spec = entries({"path": str(release), "state": "absent"},
                   {"path": str(release), "state": "directory", "mode": "0755"},
                   {"path": str(release / "uploads"), "state": "absent"},
                   {"path": str(release / "uploads"), "state": "link",
                    "target": "../../shared/uploads"})
    result = apply_set(spec, run)
    assert result.changed_files == [str(release), str(release), str(release / "uploads")]
    assert sorted(p.name for p in release.iterdir()) == ["uploads"]
    assert os.readlink(release / "uploads") == "../../shared/uploads"
    # again: the directory is emptied and made again, the link is made again
    assert apply_set(spec, run).changed_files == [str(release), str(release),
                                                  str(release / "uploads")]


def test_no_path_again_after_absent_under_a_checked_set(tmp_path: Path) -> None:
    spec = entries({"path": str(tmp_path / "conf"), "state": "absent"},
                   {"path": str(tmp_path / "conf"), "state": "directory"})
    with pytest.raises(FilesError, match="cannot come again after an absent entry"):
        apply_set(spec, run, set_check=SetCheck("true", str(tmp_path)))


def test_problems_found_before_the_first_change(tmp_path: Path) -> None:
    first = tmp_path / "first"
    spec = entries({"path": str(first), "content": "1\n"},
                   {"path": str(tmp_path / "nodir" / "f"), "content": "2\n"})
    with pytest.raises(FilesError, match="directory .*nodir does not exist"):
        apply_set(spec, run)
    assert not first.exists()
    spec = entries({"path": str(first), "content": "1\n"},
                   {"path": str(tmp_path / "g"), "content": "", "owner": "no-such-user-hk"})
    with pytest.raises(FilesError, match="owner 'no-such-user-hk' does not exist"):
        apply_set(spec, run)
    assert not first.exists()
    (tmp_path / "isdir").mkdir()
    with pytest.raises(FilesError, match="wanted a file, found a directory"):
        apply_set(entries({"path": str(tmp_path / "isdir"), "content": ""}), run)


def test_parse_mode() -> None:
    assert parse_mode("0644", "x") == 0o644
    assert parse_mode("755", "x") == 0o755
    assert parse_mode(None, "x") is None
    with pytest.raises(FilesError):
        parse_mode("0999", "x")


def test_requirements_are_checked_before_anything_changes(tmp_path: Path) -> None:
    ruleset = tmp_path / "nftables.conf"
    dropins = tmp_path / "nftables.d"
    target = tmp_path / "web.nft"
    spec = entries({"path": str(target), "content": "tcp dport 80 accept\n"})
    needs = [Requirement(str(ruleset), r'include\s+"' + str(dropins) + "/",
                         "the ruleset does not include the drop-ins: apply common first"),
             Requirement(str(dropins), None, "the drop-in directory is missing")]
    with pytest.raises(FilesError, match=r"apply common first \(.*nftables.conf does not exist\)"):
        apply_set(spec, run, requirements=needs)
    ruleset.write_text("table inet hostkit {}\n")
    with pytest.raises(FilesError, match="apply common first .*does not match"):
        apply_set(spec, run, requirements=needs, check_mode=True)
    ruleset.write_text(f'table inet hostkit {{\n  include "{dropins}/*.nft"\n}}\n')
    with pytest.raises(FilesError, match="drop-in directory is missing"):
        apply_set(spec, run, requirements=needs)
    assert not target.exists()
    dropins.mkdir()
    assert apply_set(spec, run, requirements=needs).changed_files == [str(target)]
