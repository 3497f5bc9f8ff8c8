"""Function templates for the repository generator, grouped by domain.

Each template is plain Python source for one function plus test cases (argument tuples and the
expected result computed by running the correct function, so the expectations are never typed by
hand). Names in {braces} are filled from the domain's vocabulary so that repositories differ in
naming while the logic stays checkable.
"""

DOMAINS = {
    "inventory": {
        "vocab": {"item": ["item", "product", "article", "good"], "qty": ["qty", "quantity", "count", "units"],
                  "stock": ["stock", "inventory", "store", "warehouse"]},
        "funcs": [
            ("total_{stock}_value", """
def total_{stock}_value({item}s):
    total = 0
    for {item} in {item}s:
        total += {item}['price'] * {item}['{qty}']
    return total
""", [([[{"price": 3, "{qty}": 2}, {"price": 5, "{qty}": 1}]],), ([[{"price": 10, "{qty}": 0}]],),
      ([[{"price": 2, "{qty}": 7}, {"price": 1, "{qty}": 1}, {"price": 4, "{qty}": 3}]],)]),
            ("restock_{item}s", """
def restock_{item}s(levels, minimum, amount):
    result = {{}}
    for name, level in levels.items():
        if level < minimum:
            result[name] = level + amount
        else:
            result[name] = level
    return result
""", [({"a": 1, "b": 9}, 5, 10), ({"x": 5}, 5, 3), ({"p": 0, "q": 4, "r": 6}, 4, 2)]),
            ("low_{stock}_{item}s", """
def low_{stock}_{item}s(levels, threshold):
    names = [name for name, level in levels.items() if level <= threshold]
    return sorted(names)
""", [({"a": 1, "b": 9, "c": 3}, 3), ({"x": 5}, 4), ({"p": 0, "q": 4, "r": 6}, 6)]),
            ("split_{qty}", """
def split_{qty}(total, parts):
    base = total // parts
    extra = total % parts
    return [base + 1 if i < extra else base for i in range(parts)]
""", [(10, 3), (7, 7), (9, 2), (5, 4)]),
        ],
    },
    "geometry": {
        "vocab": {"shape": ["rect", "box", "panel", "tile"], "pt": ["point", "pos", "coord", "vertex"]},
        "funcs": [
            ("{shape}_area", """
def {shape}_area(width, height):
    if width < 0 or height < 0:
        raise ValueError('negative size')
    return width * height
""", [(3, 4), (0, 5), (7, 1)]),
            ("{shape}_perimeter", """
def {shape}_perimeter(width, height):
    return 2 * (width + height)
""", [(3, 4), (1, 1), (10, 0)]),
            ("manhattan_{pt}_distance", """
def manhattan_{pt}_distance(a, b):
    return abs(a[0] - b[0]) + abs(a[1] - b[1])
""", [((0, 0), (3, 4)), ((1, 5), (4, 1)), ((-2, 3), (2, -3))]),
            ("{pt}s_inside", """
def {pt}s_inside({pt}s, width, height):
    count = 0
    for x, y in {pt}s:
        if 0 <= x < width and 0 <= y < height:
            count += 1
    return count
""", [([(0, 0), (5, 5), (2, 9)], 6, 6), ([(3, 3)], 3, 3), ([(1, 1), (0, 2), (2, 0)], 3, 3)]),
            ("bounding_{shape}", """
def bounding_{shape}({pt}s):
    xs = [p[0] for p in {pt}s]
    ys = [p[1] for p in {pt}s]
    return (min(xs), min(ys), max(xs), max(ys))
""", [([(1, 2), (3, -1), (0, 5)],), ([(4, 4)],), ([(-3, 2), (7, 8)],)]),
        ],
    },
    "text": {
        "vocab": {"word": ["word", "token", "term"], "text": ["text", "line", "sentence", "phrase"]},
        "funcs": [
            ("count_{word}s", """
def count_{word}s({text}):
    return len([w for w in {text}.split() if w])
""", [("the quick brown fox",), ("",), ("  a  b ",)]),
            ("longest_{word}", """
def longest_{word}({text}):
    best = ''
    for w in {text}.split():
        if len(w) > len(best):
            best = w
    return best
""", [("a bb ccc dd",), ("same size word",), ("x",)]),
            ("capitalize_{word}s", """
def capitalize_{word}s({text}):
    return ' '.join(w[:1].upper() + w[1:] for w in {text}.split(' '))
""", [("hello world",), ("a b c",), ("already Fine",)]),
            ("truncate_{text}", """
def truncate_{text}({text}, limit):
    if len({text}) <= limit:
        return {text}
    return {text}[:limit - 3] + '...'
""", [("short", 10), ("a longer sentence here", 10), ("exactly10!", 10)]),
            ("{word}_frequencies", """
def {word}_frequencies({text}):
    counts = {{}}
    for w in {text}.lower().split():
        counts[w] = counts.get(w, 0) + 1
    return counts
""", [("a b a",), ("The the THE cat",), ("one",)]),
        ],
    },
    "grades": {
        "vocab": {"score": ["score", "mark", "points", "grade"], "student": ["student", "pupil", "learner"]},
        "funcs": [
            ("average_{score}", """
def average_{score}({score}s):
    if not {score}s:
        return 0.0
    return sum({score}s) / len({score}s)
""", [([80, 90, 100],), ([],), ([55],), ([1, 2],)]),
            ("letter_for_{score}", """
def letter_for_{score}(value):
    if value >= 90:
        return 'A'
    if value >= 80:
        return 'B'
    if value >= 70:
        return 'C'
    return 'F'
""", [(95,), (90,), (85,), (70,), (12,)]),
            ("top_{student}s", """
def top_{student}s(results, n):
    ranked = sorted(results.items(), key=lambda kv: (-kv[1], kv[0]))
    return [name for name, _ in ranked[:n]]
""", [({"ann": 90, "bob": 70, "cy": 85}, 2), ({"z": 1}, 1), ({"a": 5, "b": 5, "c": 9}, 3)]),
            ("passing_{student}s", """
def passing_{student}s(results, cutoff):
    return sorted(name for name, value in results.items() if value >= cutoff)
""", [({"ann": 90, "bob": 50, "cy": 60}, 60), ({"z": 1}, 2), ({"a": 5, "b": 6}, 5)]),
        ],
    },
    "bank": {
        "vocab": {"acct": ["account", "wallet", "ledger"], "amt": ["amount", "sum", "value"]},
        "funcs": [
            ("apply_interest", """
def apply_interest(balance, rate_percent, years):
    for _ in range(years):
        balance = balance + balance * rate_percent / 100
    return round(balance, 2)
""", [(100, 10, 2), (50, 0, 5), (1000, 5, 1)]),
            ("{acct}_balance", """
def {acct}_balance(transactions):
    balance = 0
    for kind, {amt} in transactions:
        if kind == 'deposit':
            balance += {amt}
        elif kind == 'withdraw':
            balance -= {amt}
    return balance
""", [([("deposit", 10), ("withdraw", 3)],), ([],), ([("withdraw", 5), ("deposit", 1), ("deposit", 9)],)]),
            ("can_withdraw", """
def can_withdraw(balance, {amt}, overdraft=0):
    return {amt} <= balance + overdraft
""", [(10, 5), (10, 10), (10, 11), (10, 15, 5)]),
            ("split_bill", """
def split_bill(total, people, tip_percent):
    with_tip = total * (100 + tip_percent) / 100
    return round(with_tip / people, 2)
""", [(100, 4, 20), (30, 3, 0), (12.5, 2, 10)]),
        ],
    },
    "schedule": {
        "vocab": {"slot": ["slot", "meeting", "booking", "event"]},
        "funcs": [
            ("minutes_between", """
def minutes_between(start, end):
    sh, sm = start
    eh, em = end
    return (eh * 60 + em) - (sh * 60 + sm)
""", [((9, 0), (10, 30)), ((0, 0), (0, 1)), ((13, 45), (15, 15))]),
            ("{slot}s_overlap", """
def {slot}s_overlap(a, b):
    return a[0] < b[1] and b[0] < a[1]
""", [((1, 3), (2, 4)), ((1, 2), (2, 3)), ((5, 9), (1, 4)), ((0, 10), (3, 4))]),
            ("merge_{slot}s", """
def merge_{slot}s(intervals):
    merged = []
    for start, end in sorted(intervals):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged
""", [([(1, 3), (2, 6), (8, 10)],), ([(1, 4), (4, 5)],), ([(5, 6)],), ([(1, 10), (2, 3)],)]),
            ("free_{slot}_count", """
def free_{slot}_count(busy, day_start, day_end):
    free = 0
    for hour in range(day_start, day_end):
        if hour not in busy:
            free += 1
    return free
""", [({9, 10}, 9, 17), (set(), 8, 12), ({1, 2, 3}, 1, 4)]),
        ],
    },
    "stats": {
        "vocab": {"data": ["values", "samples", "data", "readings"]},
        "funcs": [
            ("median", """
def median({data}):
    ordered = sorted({data})
    n = len(ordered)
    mid = n // 2
    if n % 2 == 1:
        return ordered[mid]
    return (ordered[mid - 1] + ordered[mid]) / 2
""", [([3, 1, 2],), ([4, 1, 3, 2],), ([7],)]),
            ("value_range", """
def value_range({data}):
    return max({data}) - min({data})
""", [([3, 1, 2],), ([10, -5],), ([7],)]),
            ("moving_sum", """
def moving_sum({data}, window):
    return [sum({data}[i:i + window]) for i in range(len({data}) - window + 1)]
""", [([1, 2, 3, 4], 2), ([5, 5, 5], 3), ([1, 2, 3], 1)]),
            ("clamp_all", """
def clamp_all({data}, low, high):
    return [min(max(v, low), high) for v in {data}]
""", [([1, 5, 10], 2, 8), ([0], 0, 0), ([-3, 3], -1, 1)]),
            ("count_above", """
def count_above({data}, limit):
    return sum(1 for v in {data} if v > limit)
""", [([1, 5, 10], 5), ([], 0), ([3, 3, 4], 3)]),
        ],
    },
    "temperature": {
        "vocab": {"temp": ["temp", "temperature", "reading"]},
        "funcs": [
            ("celsius_to_fahrenheit", """
def celsius_to_fahrenheit(c):
    return c * 9 / 5 + 32
""", [(0,), (100,), (-40,), (37,)]),
            ("fahrenheit_to_celsius", """
def fahrenheit_to_celsius(f):
    return (f - 32) * 5 / 9
""", [(32,), (212,), (-40,)]),
            ("warmest_day", """
def warmest_day({temp}s):
    best = 0
    for i in range(1, len({temp}s)):
        if {temp}s[i] > {temp}s[best]:
            best = i
    return best
""", [([3, 9, 2],), ([5],), ([1, 1, 4, 4],)]),
            ("{temp}_trend", """
def {temp}_trend({temp}s):
    ups = 0
    downs = 0
    for prev, cur in zip({temp}s, {temp}s[1:]):
        if cur > prev:
            ups += 1
        elif cur < prev:
            downs += 1
    if ups > downs:
        return 'rising'
    if downs > ups:
        return 'falling'
    return 'flat'
""", [([1, 2, 3],), ([3, 2, 1],), ([1, 3, 1],), ([5],)]),
        ],
    },
}
