#!/usr/bin/env python3
"""The layering check (scripts/check-layers.py) passes on this checkout and
fails on each kind of violation, planted one at a time in a small tree."""
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
SCRIPT = os.path.join(ROOT, "scripts", "check-layers.py")

# A tree that keeps to the layers.
CLEAN = {
    "src/core/log.h": "#pragma once\n",
    "src/core/log.c": '#include "core/log.h"\n',
    "src/store/store.h": '#pragma once\n#include "core/log.h"\n',
    "src/store/sqlite/sqlite.c": '#include "store/store.h"\nint f(void){return sqlite3_open(0,0);}\n',
    "src/store/pg/pg.c": '#include "store/store.h"\nvoid p(void){PQfinish(0);}\n',
    "src/conf/settings.h": '#pragma once\n#include "store/store.h"\n',
    "src/http/http.h": '#pragma once\n#include "core/log.h"\n',
    "src/mod/module.h": '#pragma once\n#include "http/http.h"\n#include "conf/settings.h"\n',
    "src/mod/alpha/alpha.h": '#pragma once\n#include "mod/module.h"\n',
    "src/mod/alpha/internal.h": "#pragma once\n",
    "src/mod/alpha/alpha.c": '#include "mod/alpha/alpha.h"\n#include "mod/alpha/internal.h"\n',
    "src/mod/alpha/meson.build": "mod_alpha_lib = static_library('a', dependencies: [mod_dep])\n",
    "src/mod/beta/beta.h": '#pragma once\n#include "mod/module.h"\n',
    "src/mod/beta/beta.c": '#include "mod/beta/beta.h"\n#include "mod/alpha/alpha.h"\n'
                           "/* pthread_detach in a comment is no finding */\n",
    "src/mod/beta/meson.build": "mod_beta_lib = static_library('b', dependencies: [mod_alpha_dep])\n",
    "src/ctl/ctl.c": '#include "core/log.h"\n',
    "src/main.c": '#include "mod/alpha/alpha.h"\n#include "store/store.h"\n',
}

# Each violation: (what it plants, a word the finding must contain).
VIOLATIONS = [
    ({"src/http/http.h": '#pragma once\n#include "mod/alpha/alpha.h"\n'}, "knows no feature"),
    ({"src/core/log.h": '#pragma once\n#include "conf/settings.h"\n'}, "may use only"),
    ({"src/store/store.h": '#pragma once\n#include "conf/settings.h"\n',
      "src/conf/settings.h": '#pragma once\n#include "store/store.h"\n'}, "cycle"),
    ({"src/mod/beta/beta.c": '#include "mod/alpha/internal.h"\n'}, "private header"),
    ({"src/mod/beta/meson.build": "mod_beta_lib = static_library('b', dependencies: [mod_dep])\n"},
     "does not list"),
    ({"src/mod/alpha/alpha.c": "int g(void){return sqlite3_exec(0,0,0,0,0);}\n"}, "SQLite"),
    ({"src/conf/settings.h": '#pragma once\nvoid q(void){PQclear(0);}\n'}, "libpq"),
    ({"src/store/pg/pg.c": '#include "conf/settings.h"\n'}, "may use only"),
    ({"src/mod/alpha/alpha.c": "void h(void){pthread_detach(pthread_self());}\n"}, "detaches"),
    ({"src/main.c": '#include "mod/alpha/internal.h"\n'}, "private"),
    ({"src/ctl/ctl.c": '#include "mod/alpha/alpha.h"\n'}, "may use only"),
]


def write_tree(base, files):
    for rel, text in files.items():
        path = os.path.join(base, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)


def run(root):
    return subprocess.run([sys.executable, SCRIPT, "--root", root], capture_output=True,
                          text=True, timeout=60)


def main():
    failures = []
    real = run(ROOT)
    if real.returncode != 0:
        failures.append("this checkout breaks the layers:\n" + real.stdout)
    with tempfile.TemporaryDirectory() as tmp:
        clean = os.path.join(tmp, "clean")
        write_tree(clean, CLEAN)
        r = run(clean)
        if r.returncode != 0:
            failures.append("the clean tree was refused:\n" + r.stdout)
        for i, (planted, word) in enumerate(VIOLATIONS):
            tree = os.path.join(tmp, f"bad{i}")
            write_tree(tree, {**CLEAN, **planted})
            r = run(tree)
            if r.returncode != 1 or word not in r.stdout:
                failures.append(f"violation {i} ({word!r}) not reported: rc={r.returncode}\n"
                                f"{r.stdout}{r.stderr}")
    for f in failures:
        print(f)
    print(f"{1 + 1 + len(VIOLATIONS) - len(failures)}/{2 + len(VIOLATIONS)} layering cases ok")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
