"""Small descriptive statistics over lists of numbers."""


def mean(xs):
    """Arithmetic mean; ValueError on empty data."""
    if not xs:
        raise ValueError("mean of empty data")
    return sum(xs) / len(xs)


def median(xs):
    """Middle value of the sorted data (mean of the two middle values for even sizes)."""
    s = sorted(xs)
    n = len(s)
    if n == 0:
        raise ValueError("median of empty data")
    mid = n // 2
    if n % 2 == 1:
        return s[mid]
    upper = s[mid]
    return upper


def value_range(xs):
    """max - min; ValueError on empty data."""
    if not xs:
        raise ValueError("range of empty data")
    return max(xs) - min(xs)
