#!/usr/bin/env python3
"""Checks the include graph against the architecture (docs/architecture.md, "Layers").

lib/ is four layers that depend one way, core <- net <- connectors <- records: a file may
include headers of its own layer and of the layers below it, never above. A command's own
headers are included as "<command>/<name>.hpp" and only by that command (and its tests).
No file reaches itself through its includes (no include cycles).
Prints one line per violation and exits 1 if there is any; 0 and a summary otherwise.
"""
import os
import re
import sys

LAYERS = ["core", "net", "connectors", "records"]
INCLUDE = re.compile(r'^\s*#\s*include\s*[<"]([^>"]+)[>"]', re.M)


def main(root):
    header_layer = {}  # "envkit/x.hpp" -> layer
    files = {}  # path -> (kind, owner)
    for layer in LAYERS:
        inc = os.path.join(root, "lib", layer, "include", "envkit")
        for name in sorted(os.listdir(inc)):
            header_layer["envkit/" + name] = layer
            files[os.path.join(inc, name)] = ("lib", layer)
        src = os.path.join(root, "lib", layer, "src")
        for name in sorted(os.listdir(src)):
            files[os.path.join(src, name)] = ("lib", layer)
    tools = os.path.join(root, "tools")
    for tool in sorted(os.listdir(tools)):
        d = os.path.join(tools, tool)
        if os.path.isdir(d):
            for name in sorted(os.listdir(d)):
                if name.endswith((".cpp", ".hpp")):
                    files[os.path.join(d, name)] = ("tool", tool)
    for dirpath, _, names in os.walk(os.path.join(root, "tests", "unit")):
        owner = os.path.basename(dirpath)
        for name in names:
            if name.endswith((".cpp", ".hpp")):
                files[os.path.join(dirpath, name)] = ("test", owner)

    problems = []
    graph = {}
    for path, (kind, owner) in files.items():
        text = open(path, encoding="utf-8").read()
        rel = os.path.relpath(path, root)
        edges = []
        for inc in INCLUDE.findall(text):
            if inc in header_layer:
                target = header_layer[inc]
                edges.append(os.path.join(root, "lib", target, "include", inc))
                if kind == "lib" and LAYERS.index(target) > LAYERS.index(owner):
                    problems.append(f"{rel}: a {owner} file includes <{inc}> from {target}, a layer above it")
            elif "/" in inc and inc.split("/")[0] in os.listdir(tools):
                tool = inc.split("/")[0]
                edges.append(os.path.join(tools, inc))
                if kind == "lib":
                    problems.append(f"{rel}: the library includes \"{inc}\", a command's header")
                elif kind == "tool" and tool != owner:
                    problems.append(f"{rel}: {owner} includes \"{inc}\", another command's header")
                elif kind == "test" and owner not in (tool, "unit"):
                    problems.append(f"{rel}: a test of {owner} includes \"{inc}\"")
            else:
                local = os.path.join(os.path.dirname(path), inc)
                if os.path.exists(local):
                    edges.append(os.path.normpath(local))
        graph[path] = edges

    # Include cycles: a depth-first search that reports each back edge once.
    state = {}
    stack = []

    def visit(node):
        state[node] = 1
        stack.append(node)
        for nxt in graph.get(node, []):
            if state.get(nxt) == 1:
                cycle = stack[stack.index(nxt):] + [nxt]
                problems.append("include cycle: " + " -> ".join(os.path.relpath(c, root) for c in cycle))
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)

    for p in problems:
        print(p)
    if problems:
        return 1
    print(f"layers: {len(files)} files, {sum(len(e) for e in graph.values())} includes, "
          f"every one within its layer or below, no cycle")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "..")))
