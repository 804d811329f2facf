#!/usr/bin/env python3
"""The layering check: reads the #include lines of every file under src/ and
fails (exit 1, one line per finding) when the folders do not keep to their
layers.

  core  <  store  <  store/sqlite (the only SQLite code), store/pg (the only libpq code)
  core, store  <  conf, http  <  mod (module.h)  <  mod/<feature>  <  main.c
  ctl (atriumctl) uses core and the modules' *_wire.h headers only

Rules, each a finding when broken:
  1. a folder includes a folder it may not use (see ALLOWED below);
  2. the folders' includes form a cycle;
  3. core, conf, store or http include anything from mod/;
  4. a module includes another module's private header: the public header
     of mod/<x>/ is mod/<x>/<x>.h, every other header there is private;
  5. a module includes another module that its meson.build does not list
     as a dependency (mod_<x>_dep);
  6. sqlite3_...() is called outside src/store/sqlite/, or libpq's PQ...()
     outside src/store/pg/;
  7. a thread is detached (pthread_detach, PTHREAD_CREATE_DETACHED): every
     long-lived thread belongs to a module that starts and joins it.

usage: check-layers.py [--root DIR]   (DIR: a checkout; default: this one)
"""
import os
import re
import sys

# What each folder may include, besides itself. "mod/*" means every
# module folder; a module's use of another module is checked by rules 4-5.
ALLOWED = {
    "core": set(),
    "store": {"core"},
    "store/sqlite": {"store", "core"},
    "store/pg": {"store", "core"},
    "conf": {"core", "store"},
    "http": {"core", "store"},
    "mod": {"core", "store", "conf", "http"},
    "mod/*": {"core", "store", "conf", "http", "mod"},
    "main": {"core", "store", "store/sqlite", "store/pg", "conf", "http", "mod", "mod/*"},
    "ctl": {"core"},
}
LOWER = {"core", "store", "store/sqlite", "store/pg", "conf", "http"}

INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"')
SQLITE_CALL = re.compile(r"\bsqlite3_[a-z0-9_]+\s*\(")
LIBPQ_CALL = re.compile(r"\bPQ[a-zA-Z]+\s*\(")
DETACH = re.compile(r"\bpthread_detach\s*\(|\bPTHREAD_CREATE_DETACHED\b")


def folder_of(rel):
    """The layer folder of a path relative to src/ ("mod/qos/qos.c" -> "mod/qos")."""
    parts = rel.split("/")
    if len(parts) == 1:
        return "main" if parts[0] == "main.c" else "main"
    if parts[0] == "mod":
        return "mod" if len(parts) == 2 else "mod/" + parts[1]
    if parts[0] == "store" and len(parts) > 2:
        return "store/" + parts[1]
    return parts[0]


def allowed_for(folder):
    if folder.startswith("mod/"):
        return ALLOWED["mod/*"]
    return ALLOWED.get(folder, set())


def meson_module_deps(src, module):
    """The mod_<x>_dep names a module's meson.build lists."""
    path = os.path.join(src, "mod", module, "meson.build")
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError:
        return set()
    return set(re.findall(r"\bmod_([a-z0-9_]+)_dep\b", text)) - {module}


def strip_comments(text):
    text = re.sub(r"/\*.*?\*/", lambda m: "\n" * m.group(0).count("\n"), text, flags=re.S)
    text = re.sub(r"//[^\n]*", "", text)
    return re.sub(r'"(?:\\.|[^"\\\n])*"', '""', text)


def check(root):
    src = os.path.join(root, "src")
    findings = []
    graph = {}
    where = {}
    for dirpath, _, files in os.walk(src):
        for name in sorted(files):
            if not name.endswith((".c", ".h")):
                continue
            path = os.path.join(dirpath, name)
            rel = os.path.relpath(path, src).replace(os.sep, "/")
            folder = folder_of(rel)
            with open(path, encoding="utf-8", errors="replace") as f:
                text = f.read()
            code = strip_comments(text)
            for lineno, line in enumerate(text.splitlines(), 1):
                m = INCLUDE.match(line)
                if not m:
                    continue
                target = m.group(1)
                if "/" not in target:
                    continue  # a header beside the file
                tfolder = folder_of(target)
                if tfolder == folder:
                    continue
                graph.setdefault(folder, set()).add(tfolder)
                where.setdefault((folder, tfolder), f"{rel}:{lineno}")
                ok = allowed_for(folder)
                if folder == "ctl" and tfolder.startswith("mod/") and target.endswith("_wire.h"):
                    continue
                if folder in LOWER and tfolder.startswith("mod"):
                    findings.append(f"{rel}:{lineno}: {folder}/ includes {target}: the {folder} "
                                    f"layer knows no feature module")
                    continue
                if tfolder.startswith("mod/") and folder.startswith("mod/"):
                    mod_name = tfolder.split("/")[1]
                    public = f"mod/{mod_name}/{mod_name}.h"
                    if target != public:
                        findings.append(f"{rel}:{lineno}: includes {target}, a private header of "
                                        f"the {mod_name} module; use {public}")
                    elif mod_name not in meson_module_deps(src, folder.split("/")[1]):
                        findings.append(f"{rel}:{lineno}: uses the {mod_name} module, which "
                                        f"src/{folder}/meson.build does not list "
                                        f"(mod_{mod_name}_dep)")
                    continue
                if tfolder.startswith("mod/") and folder == "main":
                    mod_name = tfolder.split("/")[1]
                    if target != f"mod/{mod_name}/{mod_name}.h":
                        findings.append(f"{rel}:{lineno}: main.c includes {target}, a private "
                                        f"header of the {mod_name} module")
                    continue
                target_key = "mod/*" if tfolder.startswith("mod/") else tfolder
                if target_key not in ok and tfolder not in ok:
                    findings.append(f"{rel}:{lineno}: {folder}/ includes {target}: {folder} may "
                                    f"use only {', '.join(sorted(ok)) or 'nothing of the project'}")
            if not rel.startswith("store/sqlite/"):
                for lineno, line in enumerate(code.splitlines(), 1):
                    if SQLITE_CALL.search(line):
                        findings.append(f"{rel}:{lineno}: calls SQLite outside src/store/sqlite/ "
                                        f"(the store is an interface of operations)")
            if not rel.startswith("store/pg/"):
                for lineno, line in enumerate(code.splitlines(), 1):
                    if LIBPQ_CALL.search(line):
                        findings.append(f"{rel}:{lineno}: calls libpq outside src/store/pg/ "
                                        f"(the store is an interface of operations)")
            for lineno, line in enumerate(code.splitlines(), 1):
                if DETACH.search(line):
                    findings.append(f"{rel}:{lineno}: detaches a thread; a module must start and "
                                    f"join every thread it runs")
    # Cycles between folders.
    state = {}
    stack = []

    def visit(node):
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                cycle = stack[stack.index(nxt):] + [nxt]
                first = where.get((cycle[0], cycle[1]), "")
                findings.append(f"{first}: the folders include each other in a cycle: "
                                f"{' -> '.join(cycle)}")
            elif not state.get(nxt):
                visit(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if not state.get(node):
            visit(node)
    return findings


def main(argv):
    root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
    if len(argv) == 3 and argv[1] == "--root":
        root = argv[2]
    elif len(argv) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    findings = check(root)
    for f in findings:
        print(f)
    if findings:
        print(f"check-layers: {len(findings)} finding(s)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
