#!/usr/bin/env python3
# bookstore's own checks, independent of the commands they grade: the orders published
# against the rows stored, and the stock sold (an audit trigger's rows) against the stock left.
#
#   check.py orders PUBLISHED_IDS STORED_IDS   one id a line each; missing, doubled, unexpected
#   check.py stock MOVES_TSV STOCK_TSV INITIAL  item<TAB>old<TAB>new per committed write; item<TAB>stock
# Prints one JSON object; exit 0 when nothing is lost, doubled or oversold, 1 otherwise.
import collections, json, sys


def orders(published_path, stored_path):
    published = [l.strip() for l in open(published_path) if l.strip()]
    stored = collections.Counter(l.strip() for l in open(stored_path) if l.strip())
    pub = set(published)
    missing = sorted(i for i in pub if i not in stored)
    doubled = sorted(i for i, n in stored.items() if n > 1)
    unexpected = sorted(i for i in stored if i not in pub)
    out = {"published": len(published), "stored_rows": sum(stored.values()), "missing": len(missing),
           "doubled": len(doubled), "unexpected": len(unexpected),
           "examples": (missing + doubled + unexpected)[:5]}
    print(json.dumps(out))
    return 0 if not (missing or doubled or unexpected) and len(pub) == len(published) else 1


def stock(moves_path, stock_path, initial):
    initial = int(initial)
    sold = collections.Counter()
    for line in open(moves_path):
        if line.strip():
            item, old, new = line.rstrip("\n").split("\t")
            sold[item] += 1  # every committed write of the buy path is one sale handed out
    left = {}
    for line in open(stock_path):
        if line.strip():
            item, n = line.rstrip("\n").split("\t")
            left[item] = int(n)
    oversold = {i: sold[i] - initial for i in left if sold[i] > initial}
    unbalanced = {i: {"sold": sold[i], "taken": initial - left[i]} for i in left
                  if sold[i] != initial - left[i]}
    negative = {i: n for i, n in left.items() if n < 0}
    out = {"items": len(left), "initial": initial, "sold": sum(sold.values()),
           "left": sum(left.values()), "oversold": sum(oversold.values()),
           "unbalanced_items": len(unbalanced), "negative_items": len(negative),
           "detail": {"oversold": oversold, "unbalanced": unbalanced}}
    print(json.dumps(out))
    return 0 if not (oversold or unbalanced or negative) else 1


if __name__ == "__main__":
    what, args = sys.argv[1], sys.argv[2:]
    sys.exit({"orders": orders, "stock": stock}[what](*args))
