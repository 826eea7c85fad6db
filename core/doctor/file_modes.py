"""Check 1: the data home and the files that may hold cluster data or keys are the user's and
private (directories 0700, files 0600 or stricter), the kubeconfig (it holds credentials) is
readable by no one else, and config.toml is writable by no one else (it can turn on
show_secrets). Each finding's fix is the chmod (or chown) that mends it."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from tessera.core.doctor.check_result import FAIL, OK, SKIP, CheckResult, listed, quoted


def _problem(path: Path, st: os.stat_result, *, mask: int = 0o077) -> str | None:
    """What is wrong with one file or directory: another owner, or bits in ``mask`` set."""
    if st.st_uid != os.geteuid():
        return f"{path} is owned by uid {st.st_uid}, not you"
    if st.st_mode & mask:
        return f"{path} is {stat.S_IMODE(st.st_mode):04o}"
    return None


def _scan(paths: list[Path], *, tree: bool = False) -> tuple[list[str], list[Path], list[Path], int]:
    """(problems, paths to chmod, paths to chown, how many were looked at) for ``paths`` (each
    directory walked when ``tree``); missing paths are left out."""
    problems: list[str] = []
    chmod: list[Path] = []
    chown: list[Path] = []
    seen = 0
    for top in paths:
        walk = [top]
        if tree and top.is_dir():
            walk += sorted(top.rglob("*"))
        for path in walk:
            try:
                st = path.lstat() if path is not top else path.stat()
            except (FileNotFoundError, NotADirectoryError):
                continue
            if stat.S_ISLNK(st.st_mode):
                continue  # a link's own mode means nothing; what it points at is not ours to judge
            seen += 1
            problem = _problem(path, st)
            if problem:
                problems.append(problem)
                (chown if st.st_uid != os.geteuid() else chmod).append(path)
    return problems, chmod, chown, seen


def _fix(chmod: list[Path], chown: list[Path], *, recursive: Path | None = None, glob: Path | None = None) -> str:
    steps = []
    if chown:
        steps.append(f"sudo chown {'-R ' if recursive is not None else ''}{os.geteuid()} {' '.join(quoted(p) for p in chown)}")
    if recursive is not None and (chmod or chown):
        steps.append(f"chmod -R go-rwx {quoted(recursive)}")
    elif glob is not None and chmod:
        steps.append(f"chmod 600 {quoted(glob)}*")
    else:
        dirs = [p for p in chmod if p.is_dir()]
        files = [p for p in chmod if not p.is_dir()]
        if dirs:
            steps.append(f"chmod 700 {' '.join(quoted(p) for p in dirs)}")
        if files:
            steps.append(f"chmod 600 {' '.join(quoted(p) for p in files)}")
    return " && ".join(steps)


def _row(check: str, paths: list[Path], what: str, *, tree: bool = False, glob: bool = False,
         missing: str = "") -> CheckResult:
    problems, chmod, chown, seen = _scan(paths, tree=tree)
    if not seen:
        return CheckResult(check, OK, missing or f"no {what} yet")
    if problems:
        recursive = paths[0] if tree else None
        return CheckResult(check, FAIL, f"not private: {listed(problems)}",
                           _fix(chmod, chown, recursive=recursive, glob=paths[0] if glob else None))
    return CheckResult(check, OK, f"{what}: {seen} path{'' if seen == 1 else 's'}, yours and private")


def check_permissions(data_home: Path, store: Path, config_file: Path, kubeconfig: Path) -> list[CheckResult]:
    """The rows of check 1 (docs/doctor.md, "Permissions")."""
    from tessera.core import node_key
    from tessera.core.blobs.blob_store import DIRECTORY as BLOBS
    from tessera.core.peers.replica_files import peers_dir

    if not data_home.exists():
        return [CheckResult("permissions", SKIP, f"no data home yet at {data_home}: nothing is stored"),
                _config_row(config_file), _kubeconfig_row(kubeconfig)]
    if not data_home.is_dir():
        return [CheckResult("data home permissions", FAIL, f"the data home {data_home} is not a directory",
                            "export TESSERA_HOME=DIRECTORY (or move the file away)"),
                _config_row(config_file), _kubeconfig_row(kubeconfig)]
    rows = [
        _row("data home permissions", [data_home], "data home"),
        # its fix is ``chmod 600 tessera.db*``: SQLite makes -wal and -shm with the store's mode
        # when it next opens it (doctor's read-only opening too), so they are mended with it
        _row("store permissions", [store, store.with_name(store.name + "-wal"), store.with_name(store.name + "-shm")],
             "store files", glob=True, missing=f"no store yet at {store}"),
        _row("node key permissions", [node_key.key_path(store)], "node key",
             missing="no node key yet (made when this node first signs)"),
        _row("blobs permissions", [data_home / BLOBS], "blob files", tree=True, missing="no blobs"),
        _row("replicas permissions", [peers_dir(store)], "peers' replicas", tree=True, missing="no replicas"),
    ]
    return rows + [_config_row(config_file), _kubeconfig_row(kubeconfig)]


def _config_row(path: Path) -> CheckResult:
    try:
        st = path.stat()
    except (FileNotFoundError, NotADirectoryError):
        return CheckResult("config file permissions", OK, f"no config file ({path})")
    problem = _problem(path, st, mask=0o022)
    if problem:
        fix = f"sudo chown {os.geteuid()} {quoted(path)}" if st.st_uid != os.geteuid() else f"chmod go-w {quoted(path)}"
        return CheckResult("config file permissions", FAIL,
                           f"{problem}: others can change its settings (show_secrets)", fix)
    return CheckResult("config file permissions", OK, f"{path} is yours, writable by you alone")


def _kubeconfig_row(path: Path) -> CheckResult:
    try:
        st = path.stat()
    except (FileNotFoundError, NotADirectoryError):
        return CheckResult("kubeconfig permissions", SKIP, f"no kubeconfig at {path}")
    problem = _problem(path, st)
    if problem:
        fix = f"sudo chown {os.geteuid()} {quoted(path)}" if st.st_uid != os.geteuid() else f"chmod 600 {quoted(path)}"
        return CheckResult("kubeconfig permissions", FAIL, f"{problem}: it holds cluster credentials", fix)
    return CheckResult("kubeconfig permissions", OK, f"{path} is yours and private")
