#!/usr/bin/python3
"""libvstor ABI discipline: every symbol libvstor.so exports must be
  - versioned (name@@VSTOR_x.y) and listed in a node of lib/libvstor.sym,
  - declared in include/vstor.h,
  - documented in doc/vstor.3 (a ".SS name" entry, or ".B ...name(" in a
    synopsis); without doc/vstor.3, preceded in the header by a /* */ or
    /** */ comment (alone or heading a group of declarations),
and every function the header declares and every name in the .sym must
be exported (a stale entry hides a removed
symbol).  Nothing outside the vstor_ namespace is exported.
  abi-check.py LIBVSTOR.so libvstor.sym vstor.h [vstor.3]
Exit 0 if all hold, 1 otherwise (every problem is listed).
SPDX-License-Identifier: LGPL-2.1-or-later"""
import os
import re
import subprocess
import sys


def exported(lib):
    out = subprocess.run(["nm", "-D", "--defined-only", lib], check=True,
                         capture_output=True, text=True).stdout
    syms = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) < 3:
            continue
        kind, name = parts[1], parts[2]
        if kind == "A":  # the version node itself
            continue
        base, _, ver = name.partition("@")
        syms[base] = ver.lstrip("@")
    return syms


def sym_globals(path):
    text = re.sub(r"/\*.*?\*/", "", open(path).read(), flags=re.S)
    text = re.sub(r"#[^\n]*", "", text)
    names, nodes = set(), []
    for node, body in re.findall(r"(\w[\w.]*)\s*\{(.*?)\}", text, flags=re.S):
        nodes.append(node)
        m = re.search(r"global:(.*?)(local:|$)", body, flags=re.S)
        if m:
            names.update(n.strip() for n in m.group(1).split(";") if n.strip())
    return names, nodes


def header_decls(path):
    """Function name -> documented? (comment right above it or its group)."""
    lines = open(path).read().splitlines()
    decls = {}
    for i, line in enumerate(lines):
        m = re.match(r"^(?!\s*(typedef|#|\*|/\*))[\w\s\*]*?\b(vstor_\w+)\s*\(", line)
        if not m:
            continue
        name = m.group(2)
        j, documented = i - 1, False
        while j >= 0 and lines[j].strip():
            if lines[j].rstrip().endswith("*/"):
                documented = True
                break
            j -= 1
        decls[name] = documented
    return decls


def man_entries(path):
    text = open(path).read()
    ss = set(re.findall(r"^\.SS\s+\"?(vstor_\w+)", text, flags=re.M))
    b = set(re.findall(r"^\.B[IR]?\s+.*?\b(vstor_\w+)\s*\(", text, flags=re.M))
    return ss | b


def main(argv):
    if len(argv) not in (4, 5):
        print(__doc__)
        return 2
    lib, symfile, header = argv[1:4]
    man = argv[4] if len(argv) == 5 else None
    syms = exported(lib)
    listed, nodes = sym_globals(symfile)
    decls = header_decls(header)
    problems = []
    if not syms:
        problems.append(f"{lib} exports nothing")
    for name, ver in sorted(syms.items()):
        if not name.startswith("vstor_"):
            problems.append(f"{name}: exported outside the vstor_ namespace")
        if not ver:
            problems.append(f"{name}: exported without a symbol version")
        elif ver not in nodes:
            problems.append(f"{name}: version {ver} is not a node of {symfile}")
        if name not in listed:
            problems.append(f"{name}: exported but not in {symfile}")
        if name not in decls:
            problems.append(f"{name}: exported but not declared in {header}")
    for name in sorted(set(decls) - set(syms)):
        problems.append(f"{name}: declared in {header} but not exported")
    for name in sorted(listed - set(syms)):
        problems.append(f"{name}: listed in {symfile} but not exported (removed?)")
    if man and os.path.exists(man):
        documented = man_entries(man)
        where = man
        for name in sorted(set(syms) - documented):
            problems.append(f"{name}: exported but not documented in {man}")
    else:
        where = f"{header} comments (no man page given)"
        for name in sorted(syms):
            if name in decls and not decls[name]:
                problems.append(f"{name}: no comment above its declaration in {header}")
    for p in problems:
        print("FAIL:", p)
    print(f"{len(syms)} exported symbols checked against {symfile}, {header} and {where}: "
          f"{len(problems)} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
